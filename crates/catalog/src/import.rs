//! Import and export: an import's checkpoints, the resolution at its end of the thumbnails it
//! deferred (staged because their photo was not in the catalog yet), and the pages `export` reads.
//! Units themselves are written by [`crate::import_unit`]. The SQL is written once for both
//! backends (`$N` placeholders are positional in SQLite too).

use serde::Serialize;

use crate::CatalogError;

/// What an imported object is to its photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Original,
    Thumbnail,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Original => "original",
            ObjectKind::Thumbnail => "thumbnail",
        }
    }
}

/// One object an import read and matched: its couple and photo by the app's (external) ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    pub kind: ObjectKind,
    pub couple: String,
    pub photo: String,
    /// The original's format (`jpeg`, `png`...), from its name; `None` for thumbnails.
    pub format: Option<String>,
    pub key: String,
    pub bytes: u64,
}

/// Where an import of one source stands: units `0..units_done` are staged; `cursor` is what the
/// source needs to continue (the last key listed); `summary` is the caller's running totals.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ImportCheckpoint {
    pub units_done: i64,
    pub cursor: Option<String>,
    pub summary: String,
}

/// What resolving the staged objects added to the catalog, and the orphans it left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ImportResolved {
    pub couples_added: u64,
    pub photos_added: u64,
    pub thumbnails_added: u64,
    /// Thumbnails whose original is in neither the import nor the catalog: never inserted.
    pub orphans: u64,
    /// The first orphans' keys, in key order.
    pub orphan_keys: Vec<String>,
}

/// One photo of the catalog with what a run recorded for it (no progress: pending).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportRow {
    /// The internal photo id: the page cursor (`--after`).
    pub photo_id: i64,
    pub couple: String,
    pub photo: String,
    pub original_key: String,
    pub state: Option<String>,
    pub webp_key: Option<String>,
    pub webp_bytes: Option<i64>,
    pub kept_reason: Option<String>,
    pub failure_reason: Option<String>,
    pub updated_at: Option<i64>,
}

pub(crate) const CHECKPOINT: &str =
    "SELECT units_done, cursor, summary FROM import_checkpoints WHERE source = $1";

pub(crate) const SAVE_CHECKPOINT: &str =
    "INSERT INTO import_checkpoints (source, units_done, cursor, summary, updated_at)
     VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (source) DO UPDATE SET units_done = excluded.units_done,
         cursor = excluded.cursor, summary = excluded.summary, updated_at = excluded.updated_at";

/// New couples of the staged originals, numbered after the highest id in the order of their
/// external ids (shorter first, so numeric ids keep their numeric order).
pub(crate) const ADD_COUPLES: &str = "INSERT INTO couples (id, ext_id, created_at)
     SELECT m.base + ROW_NUMBER() OVER (ORDER BY LENGTH(n.couple), n.couple), n.couple, $2
     FROM (SELECT DISTINCT s.couple FROM import_staging s
           WHERE s.source = $1 AND s.kind = 'original'
             AND NOT EXISTS (SELECT 1 FROM couples c WHERE c.ext_id = s.couple)) n
     CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS base FROM couples) m
     WHERE true";

/// New photos of the staged originals, numbered after the highest id, couple by couple.
pub(crate) const ADD_PHOTOS: &str =
    "INSERT INTO photos (id, couple_id, ext_id, original_key, format, bytes)
     SELECT m.base + ROW_NUMBER() OVER (ORDER BY c.id, LENGTH(s.photo), s.photo, s.key),
            c.id, s.photo, s.key, COALESCE(s.format, 'unknown'), s.bytes
     FROM import_staging s
     JOIN couples c ON c.ext_id = s.couple
     CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS base FROM photos) m
     WHERE s.source = $1 AND s.kind = 'original'
       AND NOT EXISTS (SELECT 1 FROM photos p WHERE p.original_key = s.key)
       AND NOT EXISTS (SELECT 1 FROM photos p WHERE p.couple_id = c.id AND p.ext_id = s.photo)
     ON CONFLICT DO NOTHING";

pub(crate) const ADD_THUMBNAILS: &str = "INSERT INTO thumbnails (photo_id, key, bytes)
     SELECT p.id, s.key, s.bytes
     FROM import_staging s
     JOIN couples c ON c.ext_id = s.couple
     JOIN photos p ON p.couple_id = c.id AND p.ext_id = s.photo
     WHERE s.source = $1 AND s.kind = 'thumbnail'
     ON CONFLICT DO NOTHING";

pub(crate) const ORPHANS: &str = "FROM import_staging s
     WHERE s.source = $1 AND s.kind = 'thumbnail'
       AND NOT EXISTS (SELECT 1 FROM couples c JOIN photos p ON p.couple_id = c.id
                       WHERE c.ext_id = s.couple AND p.ext_id = s.photo)";

pub(crate) const CLEAR_STAGING: &str = "DELETE FROM import_staging WHERE source = $1";
pub(crate) const CLEAR_CHECKPOINT: &str = "DELETE FROM import_checkpoints WHERE source = $1";

/// One page of the export ($1 run, $2 after photo id, $3 limit); external ids fall back to the
/// internal ones for rows added without them.
pub(crate) const EXPORT_PAGE: &str = "SELECT p.id AS photo_id,
            COALESCE(c.ext_id, CAST(c.id AS TEXT)) AS couple,
            COALESCE(p.ext_id, CAST(p.id AS TEXT)) AS photo,
            p.original_key, g.state, g.webp_key, g.webp_bytes, g.kept_reason, g.failure_reason,
            g.updated_at
     FROM photos p
     JOIN couples c ON c.id = p.couple_id
     LEFT JOIN photo_progress g ON g.run_id = $1 AND g.photo_id = p.id
     WHERE p.id > $2
     ORDER BY p.id
     LIMIT $3";

/// Import (issue 11): every [`crate::Catalog`] is one (a supertrait, so a
/// `dyn Catalog` has these methods), implemented once for both backends by
/// `shared_import_methods!`.
#[async_trait::async_trait]
pub trait CatalogImport {
    // An import writes each unit (inventory file, listing page,
    // manifest chunk) into the catalog in one transaction with its checkpoint; thumbnails whose
    // photo is not in the catalog yet are staged, and resolved when every unit is in.

    /// Where the import of `source` stands, or `None` when no import of it is under way.
    async fn import_checkpoint(
        &self,
        source: &str,
    ) -> Result<Option<crate::ImportCheckpoint>, CatalogError>;

    /// Begins unit number `unit` of `source`: one transaction, committed with its checkpoint
    /// ([`crate::ImportUnit::commit`]) or rolled back whole.
    async fn import_unit(
        &self,
        source: &str,
        unit: i64,
    ) -> Result<Box<dyn crate::ImportUnit>, CatalogError>;

    /// Records that `source`'s units below `checkpoint.units_done` are staged.
    async fn import_save_checkpoint(
        &self,
        source: &str,
        checkpoint: &crate::ImportCheckpoint,
    ) -> Result<(), CatalogError>;

    /// Resolves `source`'s staging area (the deferred thumbnails) into the catalog in one
    /// transaction (idempotent: what exists is not added again; orphan thumbnails are left out and
    /// listed, the first `orphan_samples` of them), then clears the staging area and the
    /// checkpoint.
    async fn import_resolve(
        &self,
        source: &str,
        orphan_samples: u32,
    ) -> Result<crate::ImportResolved, CatalogError>;
}

/// [`CatalogImport`] for a backend with a `pool` field and its unit type (a macro rather than a
/// generic function: the same code against each backend's pool).
macro_rules! shared_import_methods {
    ($catalog:ty, $unit:ty) => {
        #[async_trait::async_trait]
        impl crate::CatalogImport for $catalog {
            async fn import_unit(
                &self,
                source: &str,
                unit: i64,
            ) -> Result<Box<dyn crate::ImportUnit>, CatalogError> {
                <$unit>::begin(&self.pool, source, unit).await
            }

            async fn import_checkpoint(
                &self,
                source: &str,
            ) -> Result<Option<crate::ImportCheckpoint>, CatalogError> {
                Ok(sqlx::query_as(crate::import::CHECKPOINT)
                    .bind(source)
                    .fetch_optional(&self.pool)
                    .await?)
            }

            async fn import_save_checkpoint(
                &self,
                source: &str,
                checkpoint: &crate::ImportCheckpoint,
            ) -> Result<(), CatalogError> {
                sqlx::query(crate::import::SAVE_CHECKPOINT)
                    .bind(source)
                    .bind(checkpoint.units_done)
                    .bind(checkpoint.cursor.as_deref())
                    .bind(&checkpoint.summary)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            // Couples, then photos, then the thumbnails of photos that exist; the orphans
            // counted and listed; then the staging area and the checkpoint cleared.
            async fn import_resolve(
                &self,
                source: &str,
                orphan_samples: u32,
            ) -> Result<crate::ImportResolved, CatalogError> {
                use crate::import as q;
                let mut tx = self.pool.begin().await?;
                <$unit>::serialise(&mut tx).await?;
                // Statistics of what was staged, so that the joins below are planned for its size
                // (never analysed, it looks empty, and nested loops over it never end).
                sqlx::query("ANALYZE import_staging")
                    .execute(&mut *tx)
                    .await?;
                let couples = sqlx::query(q::ADD_COUPLES)
                    .bind(source)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let photos = sqlx::query(q::ADD_PHOTOS)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let thumbnails = sqlx::query(q::ADD_THUMBNAILS)
                    .bind(source)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let orphans: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {}", q::ORPHANS))
                    .bind(source)
                    .fetch_one(&mut *tx)
                    .await?;
                let orphan_keys: Vec<String> = sqlx::query_scalar(&format!(
                    "SELECT s.key {} ORDER BY s.key LIMIT $2",
                    q::ORPHANS
                ))
                .bind(source)
                .bind(i64::from(orphan_samples))
                .fetch_all(&mut *tx)
                .await?;
                for clear in [q::CLEAR_STAGING, q::CLEAR_CHECKPOINT] {
                    sqlx::query(clear).bind(source).execute(&mut *tx).await?;
                }
                tx.commit().await?;
                Ok(crate::ImportResolved {
                    couples_added: couples,
                    photos_added: photos,
                    thumbnails_added: thumbnails,
                    orphans: orphans.max(0) as u64,
                    orphan_keys,
                })
            }
        }
    };
}
pub(crate) use shared_import_methods;

/// Appends one object to a PostgreSQL `COPY ... FROM STDIN` text-format buffer (the batch
/// table's columns: kind, couple, photo, format, key, bytes).
pub(crate) fn push_copy_row(buf: &mut Vec<u8>, o: &StagedObject) {
    let field = push_copy_field;
    buf.extend_from_slice(o.kind.as_str().as_bytes());
    buf.push(b'\t');
    field(buf, &o.couple);
    buf.push(b'\t');
    field(buf, &o.photo);
    buf.push(b'\t');
    match &o.format {
        Some(f) => field(buf, f),
        None => buf.extend_from_slice(b"\\N"),
    }
    buf.push(b'\t');
    field(buf, &o.key);
    buf.push(b'\t');
    buf.extend_from_slice(o.bytes.to_string().as_bytes());
    buf.push(b'\n');
}

/// Appends one text value to a `COPY ... FROM STDIN` text-format buffer, escaping what that
/// format reserves (backslash, tab, newline, carriage return).
pub(crate) fn push_copy_field(buf: &mut Vec<u8>, value: &str) {
    for b in value.bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            _ => buf.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_rows_escape_what_copy_text_format_reserves() {
        let mut buf = Vec::new();
        let o = StagedObject {
            kind: ObjectKind::Thumbnail,
            couple: "a\tb".into(),
            photo: "c\\d".into(),
            format: None,
            key: "k\nl".into(),
            bytes: 7,
        };
        push_copy_row(&mut buf, &o);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "thumbnail\ta\\tb\tc\\\\d\t\\N\tk\\nl\t7\n"
        );
    }
}

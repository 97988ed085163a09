//! PostgreSQL's import unit ([`ImportUnit`]): the same outcome as SQLite's (couples, photos,
//! thumbnails, deferred thumbnails; one transaction with the checkpoint), written the way that
//! costs PostgreSQL least per object (issue 11, docs/import.md "Import at scale"):
//!
//! - each batch goes in with `COPY` straight into `photos` and `thumbnails`: new couples are
//!   added by one statement that answers their ids, photos are numbered here after the highest id
//!   (as the arbitrated statement numbers them), so each photo is resolved once, not once per
//!   thumbnail, and thumbnails are sorted into the primary key's order, (photo id, key), which
//!   appends them to its rightmost leaf. `COPY` inserts in bulk and without `ON CONFLICT`
//!   arbitration (a probe of every unique index, a speculative-insertion lock and an extra WAL
//!   record per row);
//! - `COPY` cannot skip a row that exists, so a batch runs inside a savepoint: on a duplicate key
//!   (objects imported before, a key twice in the batch) the savepoint is rolled back and the
//!   batch, and the rest of the unit, take the arbitrated path (`INSERT ... ON CONFLICT DO
//!   NOTHING` from temporary tables), which adds exactly what is missing. One savepoint per batch
//!   (a subtransaction: 20 in a unit of 1 M objects);
//! - thumbnails whose photo is not in the catalog yet are copied into `import_staging`.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

use crate::import::{
    push_copy_field, push_copy_row, ImportCheckpoint, ObjectKind, StagedObject, SAVE_CHECKPOINT,
};
use crate::import_unit::{batch_photos_sql, BatchAdded, ImportUnit, BATCH_COLUMNS, BATCH_COUPLES};
use crate::{now_ms, CatalogError};

/// The batch table (the originals of one batch): per connection, never shared, emptied after
/// each batch. Ids and keys in the collation of the catalog's columns (byte order, migration
/// 0015), without which its joins could not use their indexes.
const CREATE_BATCH: &str = r#"CREATE TEMP TABLE IF NOT EXISTS import_batch (
    kind TEXT NOT NULL, couple TEXT COLLATE "C" NOT NULL, photo TEXT COLLATE "C" NOT NULL,
    format TEXT, key TEXT COLLATE "C" NOT NULL, bytes BIGINT NOT NULL)"#;

/// Thumbnails on the arbitrated path (after a duplicate key in the unit): resolved to their photo,
/// inserted from here with `ON CONFLICT DO NOTHING`.
const CREATE_THUMBS: &str = r#"CREATE TEMP TABLE IF NOT EXISTS import_thumbs (
    photo_id BIGINT NOT NULL, key TEXT COLLATE "C" NOT NULL, bytes BIGINT NOT NULL)"#;

/// The batch's new photos, numbered after the highest id, couple by couple (as SQLite's
/// `BATCH_PHOTOS`), answering each new photo's (couple, photo) external ids and internal id.
/// A photo already in the catalog (by its key, or by its couple and id) is left out by
/// `ON CONFLICT` and answers nothing; its number is skipped (ids may have gaps).
const PHOTOS_RETURNING: &str = concat!(
    "WITH added AS (",
    batch_photos_sql!(),
    " RETURNING id, couple_id, ext_id)
     SELECT c.ext_id, a.ext_id, a.id FROM added a JOIN couples c ON c.id = a.couple_id"
);

/// The internal ids of photos named by (couple, photo) external ids ($1, $2: two arrays of the
/// same length); a photo not in the catalog answers nothing. Two index probes per photo.
const LOOKUP_PHOTOS: &str = r#"SELECT c.ext_id, p.ext_id, p.id
     FROM unnest($1::text[], $2::text[]) AS u(couple, photo)
     JOIN couples c ON c.ext_id = u.couple COLLATE "C"
     JOIN photos p ON p.couple_id = c.id AND p.ext_id = u.photo COLLATE "C""#;

/// New couples among $1 (external ids, in the order their ids are to follow: shorter first, so
/// numeric ids keep their numeric order), numbered after the highest id. $2: now. Answers each new
/// couple's external and internal id.
const NEW_COUPLES: &str = r#"INSERT INTO couples (id, ext_id, created_at)
     SELECT m.base + ROW_NUMBER() OVER (ORDER BY u.ord), u.couple, $2
     FROM unnest($1::text[]) WITH ORDINALITY AS u(couple, ord)
     CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS base FROM couples) m
     WHERE NOT EXISTS (SELECT 1 FROM couples c WHERE c.ext_id = u.couple COLLATE "C")
     RETURNING ext_id, id"#;

/// The internal ids of the couples named by $1 (external ids) that are in the catalog.
const LOOKUP_COUPLES: &str = r#"SELECT c.ext_id, c.id
     FROM unnest($1::text[]) AS u(couple)
     JOIN couples c ON c.ext_id = u.couple COLLATE "C""#;

const MAX_PHOTO_ID: &str = "SELECT COALESCE(MAX(id), 0) FROM photos";
const COPY_PHOTOS: &str =
    "COPY photos (id, couple_id, ext_id, original_key, format, bytes) FROM STDIN";
const COPY_THUMBNAILS: &str = "COPY thumbnails (photo_id, key, bytes) FROM STDIN";
const COPY_THUMBS: &str = "COPY import_thumbs (photo_id, key, bytes) FROM STDIN";
const INSERT_THUMBS: &str = "INSERT INTO thumbnails (photo_id, key, bytes)
     SELECT photo_id, key, bytes FROM import_thumbs ORDER BY photo_id, key
     ON CONFLICT DO NOTHING";
const COPY_DEFERRED: &str =
    "COPY import_staging (source, unit, kind, couple, photo, format, key, bytes) FROM STDIN";

/// PostgreSQL's SQLSTATE for a duplicate key (unique_violation).
const UNIQUE_VIOLATION: &str = "23505";

/// How PostgreSQL runs a unit's statements:
/// - every lookup into the catalog must be an index probe: each batch joins a few thousand rows
///   against a catalog of millions, and left to itself the planner hashes the whole `photos`
///   table for every batch (O(n²) over an import); with hash and merge joins off, a batch costs
///   O(batch × log catalog). The batch table is analysed after each load so that it drives the
///   joins;
/// - JIT compilation is off: it cost ~30 ms a statement, and index probes do not gain from it;
/// - the unit's commit does not wait for its WAL to reach disk (`synchronous_commit = off`).
///   Safe: a unit lost to a server crash is lost with its checkpoint (the same transaction), so
///   the import resumes before it; and the import's final resolution commits with the server's
///   own setting, which flushes the WAL of every unit before it (WAL is written in order), so an
///   import that reports success has every unit on disk.
const UNIT_SETTINGS: [&str; 4] = [
    "SET LOCAL enable_hashjoin = off",
    "SET LOCAL enable_mergejoin = off",
    "SET LOCAL jit = off",
    "SET LOCAL synchronous_commit = off",
];

/// Serialises the import transactions (units and the final resolution) of every process writing
/// one PostgreSQL catalog: a transaction-level advisory lock, released at commit or rollback.
/// Without it, two imports running at once (two sources, or the same one started twice) each
/// number their new couples and photos from the same `MAX(id)` (a duplicate key error, or photos
/// silently left out by `ON CONFLICT DO NOTHING` and their thumbnails then orphaned), and the
/// counters' triggers see only their own uncommitted photos, so a couple that both give its first
/// photos counts twice in `couples_with_photos`. (The key is an arbitrary constant: "recast
/// import" in no particular encoding.)
const IMPORT_LOCK: &str = "SELECT pg_advisory_xact_lock(7201120110)";

pub(crate) struct PgUnit {
    tx: Transaction<'static, Postgres>,
    source: String,
    unit: i64,
    /// Photos and thumbnails go straight in with `COPY` until one is found to exist already.
    copy_rows: bool,
}

impl PgUnit {
    pub(crate) async fn begin(
        pool: &PgPool,
        source: &str,
        unit: i64,
    ) -> Result<Box<dyn ImportUnit>, CatalogError> {
        let mut tx = pool.begin().await?;
        Self::serialise(&mut tx).await?;
        for statement in [CREATE_BATCH, CREATE_THUMBS].iter().chain(&UNIT_SETTINGS) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        Ok(Box::new(PgUnit {
            tx,
            source: source.to_owned(),
            unit,
            copy_rows: true,
        }))
    }

    /// Waits until no other import transaction writes the catalog ([`IMPORT_LOCK`]).
    pub(crate) async fn serialise(
        tx: &mut Transaction<'static, Postgres>,
    ) -> Result<(), CatalogError> {
        sqlx::query(IMPORT_LOCK).execute(&mut **tx).await?;
        Ok(())
    }

    /// Sends `rows` (COPY text format) with `statement`; answers the rows copied.
    async fn copy(&mut self, statement: &str, rows: &[u8]) -> Result<u64, sqlx::Error> {
        let mut copy = self.tx.copy_in_raw(statement).await?;
        copy.send(rows).await?;
        copy.finish().await
    }

    async fn execute(&mut self, statement: &str) -> Result<u64, CatalogError> {
        Ok(sqlx::query(statement)
            .execute(&mut *self.tx)
            .await?
            .rows_affected())
    }

    /// Adds the batch's originals (new couples, new photos); answers (couples, photos) added and
    /// the ids of the photos added, by couple then photo external id.
    async fn add_originals(
        &mut self,
        originals: &[&StagedObject],
    ) -> Result<(u64, u64, PhotoIds), CatalogError> {
        let mut buf = Vec::with_capacity(originals.len() * 96);
        for o in originals {
            push_copy_row(&mut buf, o);
        }
        self.copy(&format!("COPY {BATCH_COLUMNS} FROM STDIN"), &buf)
            .await?;
        self.execute("ANALYZE import_batch").await?;
        let couples = sqlx::query(BATCH_COUPLES)
            .bind(now_ms())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let added: Vec<(String, String, i64)> = sqlx::query_as(PHOTOS_RETURNING)
            .fetch_all(&mut *self.tx)
            .await?;
        self.execute("TRUNCATE import_batch").await?;
        let photos = added.len() as u64;
        let mut ids = PhotoIds::default();
        for (couple, photo, id) in added {
            ids.insert(couple, photo, id);
        }
        Ok((couples, photos, ids))
    }

    /// Adds to `ids` the photos of `thumbnails` that are in the catalog and not in `ids` yet.
    async fn look_up(
        &mut self,
        thumbnails: &[&StagedObject],
        ids: &mut PhotoIds,
    ) -> Result<(), CatalogError> {
        let mut wanted: HashMap<&str, Vec<&str>> = HashMap::new();
        for t in thumbnails {
            if ids.get(&t.couple, &t.photo).is_none() {
                let photos = wanted.entry(&t.couple).or_default();
                if !photos.contains(&t.photo.as_str()) {
                    photos.push(&t.photo);
                }
            }
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let (couples, photos): (Vec<&str>, Vec<&str>) = wanted
            .iter()
            .flat_map(|(c, ps)| ps.iter().map(move |p| (*c, *p)))
            .unzip();
        let found: Vec<(String, String, i64)> = sqlx::query_as(LOOKUP_PHOTOS)
            .bind(&couples)
            .bind(&photos)
            .fetch_all(&mut *self.tx)
            .await?;
        for (couple, photo, id) in found {
            ids.insert(couple, photo, id);
        }
        Ok(())
    }

    /// The batch through `COPY` (the unit's fast path): new couples, then photos numbered here
    /// after the highest id (as `PHOTOS_RETURNING` numbers them), then thumbnails. A duplicate
    /// key fails it with unique_violation (the caller then rolls it back).
    async fn add_copied(
        &mut self,
        originals: &[&StagedObject],
        thumbnails: &[&StagedObject],
    ) -> Result<BatchAdded, CatalogError> {
        let mut added = BatchAdded::default();
        let mut ids = PhotoIds::default();
        if !originals.is_empty() {
            let couples = self.couple_ids(originals, &mut added).await?;
            let base: i64 = sqlx::query_scalar(MAX_PHOTO_ID)
                .fetch_one(&mut *self.tx)
                .await?;
            let mut photos = Vec::with_capacity(originals.len());
            for o in originals {
                // Every couple was either added or found just above, in this transaction.
                let couple = couples.get(o.couple.as_str()).ok_or_else(|| {
                    CatalogError::Corrupt(format!("couple {:?} neither added nor found", o.couple))
                })?;
                photos.push((*couple, *o));
            }
            photos.sort_unstable_by(|(a, x), (b, y)| {
                (*a, x.photo.chars().count(), &x.photo, &x.key).cmp(&(
                    *b,
                    y.photo.chars().count(),
                    &y.photo,
                    &y.key,
                ))
            });
            let mut rows = Vec::with_capacity(photos.len() * 96);
            for (n, (couple_id, o)) in photos.into_iter().enumerate() {
                let id = base + 1 + n as i64;
                rows.extend_from_slice(format!("{id}\t{couple_id}\t").as_bytes());
                push_copy_field(&mut rows, &o.photo);
                rows.push(b'\t');
                push_copy_field(&mut rows, &o.key);
                rows.push(b'\t');
                push_copy_field(&mut rows, o.format.as_deref().unwrap_or("unknown"));
                rows.extend_from_slice(format!("\t{}\n", o.bytes).as_bytes());
                ids.insert(o.couple.clone(), o.photo.clone(), id);
            }
            added.photos = self.copy(COPY_PHOTOS, &rows).await?;
        }
        self.add_thumbnails(thumbnails, &mut ids, &mut added, true)
            .await?;
        Ok(added)
    }

    /// The internal ids of the originals' couples, the new ones added (counted in `added`).
    async fn couple_ids(
        &mut self,
        originals: &[&StagedObject],
        added: &mut BatchAdded,
    ) -> Result<HashMap<String, i64>, CatalogError> {
        let mut names: Vec<&str> = originals.iter().map(|o| o.couple.as_str()).collect();
        names.sort_unstable_by(|a, b| (a.chars().count(), *a).cmp(&(b.chars().count(), *b)));
        names.dedup();
        let new: Vec<(String, i64)> = sqlx::query_as(NEW_COUPLES)
            .bind(&names)
            .bind(now_ms())
            .fetch_all(&mut *self.tx)
            .await?;
        added.couples = new.len() as u64;
        let mut ids: HashMap<String, i64> = new.into_iter().collect();
        let known: Vec<&str> = names
            .into_iter()
            .filter(|n| !ids.contains_key(*n))
            .collect();
        if !known.is_empty() {
            let found: Vec<(String, i64)> = sqlx::query_as(LOOKUP_COUPLES)
                .bind(&known)
                .fetch_all(&mut *self.tx)
                .await?;
            ids.extend(found);
        }
        Ok(ids)
    }

    /// The batch through the arbitrated statements (after a duplicate key in the unit): what
    /// exists already is left out.
    async fn add_arbitrated(
        &mut self,
        originals: &[&StagedObject],
        thumbnails: &[&StagedObject],
    ) -> Result<BatchAdded, CatalogError> {
        let mut added = BatchAdded::default();
        let mut ids = PhotoIds::default();
        if !originals.is_empty() {
            (added.couples, added.photos, ids) = self.add_originals(originals).await?;
        }
        self.add_thumbnails(thumbnails, &mut ids, &mut added, false)
            .await?;
        Ok(added)
    }

    /// Adds the thumbnails whose photo is in `ids` or in the catalog (straight `COPY`, or the
    /// arbitrated insert), in the primary key's order, and defers the others to `import_staging`.
    async fn add_thumbnails(
        &mut self,
        thumbnails: &[&StagedObject],
        ids: &mut PhotoIds,
        added: &mut BatchAdded,
        copy: bool,
    ) -> Result<(), CatalogError> {
        if thumbnails.is_empty() {
            return Ok(());
        }
        self.look_up(thumbnails, ids).await?;
        let mut resolved = Vec::with_capacity(thumbnails.len());
        let mut deferred = Vec::new();
        for t in thumbnails {
            match ids.get(&t.couple, &t.photo) {
                Some(id) => resolved.push((id, *t)),
                None => {
                    push_copy_field(&mut deferred, &self.source);
                    deferred.extend_from_slice(format!("\t{}\t", self.unit).as_bytes());
                    push_copy_row(&mut deferred, t);
                    added.deferred += 1;
                }
            }
        }
        // In the primary key's order, (photo_id, key): appended to its rightmost leaf.
        resolved.sort_unstable_by(|a, b| (a.0, &a.1.key).cmp(&(b.0, &b.1.key)));
        let mut rows = Vec::with_capacity(resolved.len() * 48);
        for (id, t) in resolved {
            rows.extend_from_slice(format!("{id}\t").as_bytes());
            push_copy_field(&mut rows, &t.key);
            rows.extend_from_slice(format!("\t{}\n", t.bytes).as_bytes());
        }
        if !rows.is_empty() {
            added.thumbnails = if copy {
                self.copy(COPY_THUMBNAILS, &rows).await?
            } else {
                self.copy(COPY_THUMBS, &rows).await?;
                let n = self.execute(INSERT_THUMBS).await?;
                self.execute("TRUNCATE import_thumbs").await?;
                n
            };
        }
        if !deferred.is_empty() {
            self.copy(COPY_DEFERRED, &deferred).await?;
        }
        Ok(())
    }
}

/// Whether the database refused a row for a duplicate key.
fn is_unique_violation(e: &CatalogError) -> bool {
    matches!(e, CatalogError::Database(sqlx::Error::Database(d))
        if d.code().as_deref() == Some(UNIQUE_VIOLATION))
}

/// Internal photo ids by couple and photo external ids.
#[derive(Default)]
struct PhotoIds(HashMap<String, HashMap<String, i64>>);

impl PhotoIds {
    fn insert(&mut self, couple: String, photo: String, id: i64) {
        self.0.entry(couple).or_default().insert(photo, id);
    }

    fn get(&self, couple: &str, photo: &str) -> Option<i64> {
        self.0.get(couple).and_then(|p| p.get(photo)).copied()
    }
}

#[async_trait]
impl ImportUnit for PgUnit {
    async fn add(&mut self, batch: &[StagedObject]) -> Result<BatchAdded, CatalogError> {
        let (originals, thumbnails): (Vec<&StagedObject>, Vec<&StagedObject>) =
            batch.iter().partition(|o| o.kind == ObjectKind::Original);
        if self.copy_rows {
            self.execute("SAVEPOINT import_copy").await?;
            match self.add_copied(&originals, &thumbnails).await {
                Ok(added) => {
                    self.execute("RELEASE SAVEPOINT import_copy").await?;
                    return Ok(added);
                }
                Err(e) if is_unique_violation(&e) => {
                    tracing::debug!(
                        "import: a row exists already; the unit takes the arbitrated path"
                    );
                    self.execute("ROLLBACK TO SAVEPOINT import_copy").await?;
                    self.execute("RELEASE SAVEPOINT import_copy").await?;
                    self.copy_rows = false;
                }
                Err(e) => return Err(e),
            }
        }
        self.add_arbitrated(&originals, &thumbnails).await
    }

    async fn commit(self: Box<Self>, checkpoint: &ImportCheckpoint) -> Result<(), CatalogError> {
        let mut tx = self.tx;
        sqlx::query(SAVE_CHECKPOINT)
            .bind(&self.source)
            .bind(checkpoint.units_done)
            .bind(checkpoint.cursor.as_deref())
            .bind(&checkpoint.summary)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

//! PostgreSQL's import unit ([`ImportUnit`]): the same outcome as SQLite's (couples, photos,
//! thumbnails, deferred thumbnails; one transaction with the checkpoint), written the way that
//! costs PostgreSQL least per object (issue 11, docs/import.md "Import at scale"):
//!
//! - only the batch's originals go through the temporary batch table, to number new couples and
//!   photos; the photos' `INSERT` returns the ids it gave, so each photo is resolved once, not
//!   once per thumbnail (photos of the batch already in the catalog are looked up once each);
//! - thumbnails are sent straight into `thumbnails` with `COPY` (sorted by key, the primary key's
//!   order), which inserts rows in bulk and without `ON CONFLICT` arbitration (a probe of the key
//!   index, a speculative-insertion lock and an extra WAL record per row). `COPY` cannot skip a
//!   thumbnail that exists, so it runs inside a savepoint: on a duplicate key (the same objects
//!   imported again) the savepoint is rolled back and the batch, and the rest of the unit, take
//!   the arbitrated path (`INSERT ... ON CONFLICT DO NOTHING` from a temporary table), which adds
//!   exactly what is missing;
//! - thumbnails whose photo is not in the catalog yet are copied into `import_staging`.

use std::collections::HashMap;

use async_trait::async_trait;
use sqlx::{PgPool, Postgres, Transaction};

use crate::import::{
    push_copy_field, push_copy_row, ImportCheckpoint, ObjectKind, StagedObject, SAVE_CHECKPOINT,
};
use crate::import_unit::{BatchAdded, ImportUnit, BATCH_COLUMNS, BATCH_COUPLES};
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
const PHOTOS_RETURNING: &str = "WITH added AS (
         INSERT INTO photos (id, couple_id, ext_id, original_key, format, bytes)
         SELECT m.base + ROW_NUMBER() OVER (ORDER BY c.id, LENGTH(b.photo), b.photo, b.key),
                c.id, b.photo, b.key, COALESCE(b.format, 'unknown'), b.bytes
         FROM import_batch b
         JOIN couples c ON c.ext_id = b.couple
         CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS base FROM photos) m
         WHERE b.kind = 'original'
         ON CONFLICT DO NOTHING
         RETURNING id, couple_id, ext_id)
     SELECT c.ext_id, a.ext_id, a.id FROM added a JOIN couples c ON c.id = a.couple_id";

/// The internal ids of photos named by (couple, photo) external ids ($1, $2: two arrays of the
/// same length); a photo not in the catalog answers nothing. Two index probes per photo.
const LOOKUP_PHOTOS: &str = r#"SELECT c.ext_id, p.ext_id, p.id
     FROM unnest($1::text[], $2::text[]) AS u(couple, photo)
     JOIN couples c ON c.ext_id = u.couple COLLATE "C"
     JOIN photos p ON p.couple_id = c.id AND p.ext_id = u.photo COLLATE "C""#;

const COPY_THUMBNAILS: &str = "COPY thumbnails (photo_id, key, bytes) FROM STDIN";
const COPY_THUMBS: &str = "COPY import_thumbs (photo_id, key, bytes) FROM STDIN";
const INSERT_THUMBS: &str = "INSERT INTO thumbnails (photo_id, key, bytes)
     SELECT photo_id, key, bytes FROM import_thumbs ORDER BY key
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
    /// Thumbnails go straight in with `COPY` until one is found to exist already.
    copy_thumbnails: bool,
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
            copy_thumbnails: true,
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

    /// Inserts thumbnails (COPY text rows: photo id, key, bytes; sorted by key); answers how many
    /// were added. Straight `COPY` while the unit has met no duplicate; else, or when this batch
    /// holds one, the arbitrated insert.
    async fn add_thumbnails(&mut self, rows: &[u8]) -> Result<u64, CatalogError> {
        if self.copy_thumbnails {
            self.execute("SAVEPOINT import_thumbnails").await?;
            match self.copy(COPY_THUMBNAILS, rows).await {
                Ok(n) => {
                    self.execute("RELEASE SAVEPOINT import_thumbnails").await?;
                    return Ok(n);
                }
                Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some(UNIQUE_VIOLATION) => {
                    self.execute("ROLLBACK TO SAVEPOINT import_thumbnails")
                        .await?;
                    self.execute("RELEASE SAVEPOINT import_thumbnails").await?;
                    self.copy_thumbnails = false;
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.copy(COPY_THUMBS, rows).await?;
        let added = self.execute(INSERT_THUMBS).await?;
        self.execute("TRUNCATE import_thumbs").await?;
        Ok(added)
    }
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
        let (originals, mut thumbnails): (Vec<&StagedObject>, Vec<&StagedObject>) =
            batch.iter().partition(|o| o.kind == ObjectKind::Original);
        let mut added = BatchAdded::default();
        let mut ids = PhotoIds::default();
        if !originals.is_empty() {
            (added.couples, added.photos, ids) = self.add_originals(&originals).await?;
        }
        if thumbnails.is_empty() {
            return Ok(added);
        }
        self.look_up(&thumbnails, &mut ids).await?;
        thumbnails.sort_unstable_by(|a, b| a.key.cmp(&b.key));
        let mut rows = Vec::with_capacity(thumbnails.len() * 48);
        let mut deferred = Vec::new();
        for t in thumbnails {
            match ids.get(&t.couple, &t.photo) {
                Some(id) => {
                    rows.extend_from_slice(id.to_string().as_bytes());
                    rows.push(b'\t');
                    push_copy_field(&mut rows, &t.key);
                    rows.push(b'\t');
                    rows.extend_from_slice(t.bytes.to_string().as_bytes());
                    rows.push(b'\n');
                }
                None => {
                    push_copy_field(&mut deferred, &self.source);
                    deferred.push(b'\t');
                    deferred.extend_from_slice(self.unit.to_string().as_bytes());
                    deferred.push(b'\t');
                    push_copy_row(&mut deferred, t);
                    added.deferred += 1;
                }
            }
        }
        if !rows.is_empty() {
            added.thumbnails = self.add_thumbnails(&rows).await?;
        }
        if !deferred.is_empty() {
            self.copy(COPY_DEFERRED, &deferred).await?;
        }
        Ok(added)
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

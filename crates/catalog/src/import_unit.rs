//! One unit of an import (inventory file, listing page, manifest chunk) written straight into the
//! catalog in one transaction: batch after batch of objects go into a temporary table of the
//! connection, and four set-based statements turn each batch into couples, photos and
//! thumbnails; thumbnails whose photo is not in the catalog yet are deferred to `import_staging`
//! (their original may come in a later unit). The unit's checkpoint is saved in the same
//! transaction, so a unit is in the catalog whole with its checkpoint, or not at all: a killed or
//! refused unit leaves nothing to discard.
//!
//! This module holds the trait, the statements both backends share, and SQLite's unit (batch
//! table filled by multi-row inserts). PostgreSQL's unit, [`crate::import_pg`], numbers couples and
//! photos with the same statements and copies thumbnails straight into their table.

use async_trait::async_trait;
use serde::Serialize;
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::import::{ImportCheckpoint, StagedObject, SAVE_CHECKPOINT};
use crate::{now_ms, CatalogError};

/// What one batch added to the catalog, and the thumbnails it deferred to the end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BatchAdded {
    pub couples: u64,
    pub photos: u64,
    pub thumbnails: u64,
    /// Thumbnails whose photo is not in the catalog yet: staged, resolved at the end.
    pub deferred: u64,
}

/// A unit being imported: one open transaction. Dropped without [`ImportUnit::commit`] (an
/// error in the unit, a killed process), it rolls back and leaves the catalog as it was.
#[async_trait]
pub trait ImportUnit: Send {
    /// Adds one batch of the unit's objects to the catalog (what exists is not added again).
    async fn add(&mut self, batch: &[StagedObject]) -> Result<BatchAdded, CatalogError>;

    /// Saves the checkpoint (the units before `checkpoint.units_done` are imported) and commits
    /// the unit with it.
    async fn commit(self: Box<Self>, checkpoint: &ImportCheckpoint) -> Result<(), CatalogError>;
}

/// The batch table: per connection, never shared, emptied after each batch.
const CREATE_BATCH: &str = "CREATE TEMP TABLE IF NOT EXISTS import_batch (
    kind TEXT NOT NULL, couple TEXT NOT NULL, photo TEXT NOT NULL, format TEXT,
    key TEXT NOT NULL, bytes BIGINT NOT NULL)";

pub(crate) const BATCH_COLUMNS: &str = "import_batch (kind, couple, photo, format, key, bytes)";

/// The batch's new couples, numbered after the highest id in the order of their external ids
/// (shorter first, so numeric ids keep their numeric order). $1: now.
pub(crate) const BATCH_COUPLES: &str = "INSERT INTO couples (id, ext_id, created_at)
     SELECT m.base + ROW_NUMBER() OVER (ORDER BY LENGTH(n.couple), n.couple), n.couple, $1
     FROM (SELECT DISTINCT b.couple FROM import_batch b
           WHERE b.kind = 'original'
             AND NOT EXISTS (SELECT 1 FROM couples c WHERE c.ext_id = b.couple)) n
     CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS base FROM couples) m
     WHERE true";

/// The batch's new photos, numbered after the highest id, couple by couple. A photo already in
/// the catalog (by its key, or by its couple and id) is left out by `ON CONFLICT`, an index probe
/// per row; its number is skipped (ids may have gaps). `NOT EXISTS` anti-joins here were planned
/// as hashes of the whole `photos` table per batch.
macro_rules! batch_photos_sql {
    () => {
        "INSERT INTO photos (id, couple_id, ext_id, original_key, format, bytes)
     SELECT m.base + ROW_NUMBER() OVER (ORDER BY c.id, LENGTH(b.photo), b.photo, b.key),
            c.id, b.photo, b.key, COALESCE(b.format, 'unknown'), b.bytes
     FROM import_batch b
     JOIN couples c ON c.ext_id = b.couple
     CROSS JOIN (SELECT COALESCE(MAX(id), 0) AS base FROM photos) m
     WHERE b.kind = 'original'
     ON CONFLICT DO NOTHING"
    };
}
pub(crate) use batch_photos_sql;

/// SQLite runs it as it is; PostgreSQL's unit adds `RETURNING` ([`crate::import_pg`]).
const BATCH_PHOTOS: &str = batch_photos_sql!();

/// The batch's thumbnails of photos in the catalog (SQLite; PostgreSQL's unit,
/// [`crate::import_pg`], resolves each photo once and copies its thumbnails in).
const BATCH_THUMBNAILS: &str = "INSERT INTO thumbnails (photo_id, key, bytes)
     SELECT p.id, b.key, b.bytes
     FROM import_batch b
     JOIN couples c ON c.ext_id = b.couple
     JOIN photos p ON p.couple_id = c.id AND p.ext_id = b.photo
     WHERE b.kind = 'thumbnail'
     ON CONFLICT DO NOTHING";

/// The batch's thumbnails of photos not in the catalog (yet), staged for the end. $1 source,
/// $2 unit.
const BATCH_DEFER: &str =
    "INSERT INTO import_staging (source, unit, kind, couple, photo, format, key, bytes)
     SELECT $1, $2, b.kind, b.couple, b.photo, b.format, b.key, b.bytes
     FROM import_batch b
     WHERE b.kind = 'thumbnail'
       AND NOT EXISTS (SELECT 1 FROM couples c JOIN photos p ON p.couple_id = c.id
                       WHERE c.ext_id = b.couple AND p.ext_id = b.photo)";

/// Rows per multi-row INSERT into SQLite's batch table (6 values each; SQLite binds at most
/// 32,766 values per statement).
const SQLITE_ROWS_PER_INSERT: usize = 5000;

/// Runs the statements that resolve the batch table's couples and photos, in one transaction
/// `$tx`; answers (couples, photos).
macro_rules! resolve_photos {
    ($tx:expr) => {{
        let couples = sqlx::query(BATCH_COUPLES)
            .bind(now_ms())
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        let photos = sqlx::query(BATCH_PHOTOS)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        (couples, photos)
    }};
}

/// Saves the checkpoint in the unit's transaction and commits.
macro_rules! commit_unit {
    ($self:expr, $checkpoint:expr) => {{
        let mut tx = $self.tx;
        sqlx::query(SAVE_CHECKPOINT)
            .bind(&$self.source)
            .bind($checkpoint.units_done)
            .bind($checkpoint.cursor.as_deref())
            .bind(&$checkpoint.summary)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }};
}

pub(crate) struct SqliteUnit {
    tx: Transaction<'static, Sqlite>,
    source: String,
    unit: i64,
}

impl SqliteUnit {
    pub(crate) async fn begin(
        pool: &SqlitePool,
        source: &str,
        unit: i64,
    ) -> Result<Box<dyn ImportUnit>, CatalogError> {
        let mut tx = pool.begin().await?;
        sqlx::query(CREATE_BATCH).execute(&mut *tx).await?;
        Ok(Box::new(SqliteUnit {
            tx,
            source: source.to_owned(),
            unit,
        }))
    }

    /// Nothing to wait for: SQLite lets one writer at a time.
    pub(crate) async fn serialise(
        _tx: &mut Transaction<'static, Sqlite>,
    ) -> Result<(), CatalogError> {
        Ok(())
    }
}

#[async_trait]
impl ImportUnit for SqliteUnit {
    async fn add(&mut self, batch: &[StagedObject]) -> Result<BatchAdded, CatalogError> {
        for chunk in batch.chunks(SQLITE_ROWS_PER_INSERT) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(format!("INSERT INTO {BATCH_COLUMNS} "));
            q.push_values(chunk, |mut b, o| {
                b.push_bind(o.kind.as_str())
                    .push_bind(&o.couple)
                    .push_bind(&o.photo)
                    .push_bind(o.format.as_deref())
                    .push_bind(&o.key)
                    .push_bind(o.bytes as i64);
            });
            q.build().execute(&mut *self.tx).await?;
        }
        let (couples, photos) = resolve_photos!(self.tx);
        let thumbnails = sqlx::query(BATCH_THUMBNAILS)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let deferred = sqlx::query(BATCH_DEFER)
            .bind(&self.source)
            .bind(self.unit)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        let added = BatchAdded {
            couples,
            photos,
            thumbnails,
            deferred,
        };
        sqlx::query("DELETE FROM import_batch")
            .execute(&mut *self.tx)
            .await?;
        Ok(added)
    }

    async fn commit(self: Box<Self>, checkpoint: &ImportCheckpoint) -> Result<(), CatalogError> {
        commit_unit!(self, checkpoint)
    }
}

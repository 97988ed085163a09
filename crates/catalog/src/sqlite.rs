//! The catalog on SQLite: one file, shared by every process that opens it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use recast_core::{CoupleId, PhotoId, PhotoState, Tally};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use crate::rows::{group_sweep, push_progress_values, state_of, SweepRow};
use crate::sql_write::sweepable_states;
use crate::{
    now_ms, CatalogError, FleetView, Heartbeat, JobAttempt, ProgressUpdate, Run, SweepItem,
};

/// How long a statement waits for another process's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per multi-row INSERT while seeding (SQLite binds at most 32,766 values per statement).
const SEED_ROWS_PER_INSERT: usize = 500;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

impl SqliteCatalog {
    pub async fn open(url: &str) -> Result<SqliteCatalog, CatalogError> {
        let bad = |reason: String| CatalogError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| bad("expected sqlite://PATH".into()))?;
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if path.is_empty() {
            return Err(bad("no file path".into()));
        }
        if let Some(dir) = std::path::Path::new(path)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
        {
            std::fs::create_dir_all(dir)
                .map_err(|e| bad(format!("cannot create {}: {e}", dir.display())))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let applied = sqlx::query_as(crate::schema::APPLIED_CHECKSUMS)
            .fetch_all(&pool)
            .await;
        if !crate::schema::is_current(applied, &MIGRATOR) {
            MIGRATOR.run(&pool).await?;
        }
        Ok(SqliteCatalog { pool })
    }

    /// Opens an existing catalog read-only: nothing is created, migrated or written, and a write
    /// fails. Its schema must be up to date.
    ///
    /// A read-only connection to a WAL database still creates the `-wal` and `-shm` files beside
    /// it when they are absent (and, unable to checkpoint, leaves them). So when no `-wal` file is
    /// there — no process has the catalog open and all of it is in the main file — the file is
    /// opened `immutable`: read without locks or side files, leaving the folder byte-for-byte as
    /// it was. Should a writer open it meanwhile and checkpoint, such a read can fail or be
    /// stale; run the command again. When a `-wal` file is there (a process has the catalog
    /// open), the connection is `mode=ro` and reads through the existing WAL.
    pub async fn open_read_only(url: &str) -> Result<SqliteCatalog, CatalogError> {
        let bad = |reason: String| CatalogError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let path = url
            .strip_prefix("sqlite://")
            .ok_or_else(|| bad("expected sqlite://PATH".into()))?;
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        if !std::path::Path::new(path).is_file() {
            return Err(bad(format!("no catalog file at {path}")));
        }
        // No journal mode is set: the file's own (WAL) stays, and nothing is written to set it.
        let in_use = std::path::Path::new(&format!("{path}-wal")).exists();
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .immutable(!in_use)
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        let applied = sqlx::query_scalar(crate::schema::APPLIED_VERSIONS)
            .fetch_all(&pool)
            .await;
        crate::schema::check_applied(applied, &MIGRATOR)?;
        Ok(SqliteCatalog { pool })
    }
}

crate::fleet::shared_fleet_methods!(SqliteCatalog);
crate::counters::shared_counter_methods!(SqliteCatalog, "");

crate::import::shared_import_methods!(SqliteCatalog, crate::import_unit::SqliteUnit);

crate::sql_read::read_methods!(SqliteCatalog);
crate::sql_write::write_methods!(SqliteCatalog, Sqlite, SEED_ROWS_PER_INSERT);

/// The statements SQLite says its own way (see `sql_write`).
impl SqliteCatalog {
    async fn dialect_record(
        &self,
        run: &Run,
        couple: CoupleId,
        updates: &[ProgressUpdate],
        attempt: Option<&JobAttempt>,
        tally: &Tally,
    ) -> Result<HashMap<PhotoId, PhotoState>, CatalogError> {
        // An attempt of a couple also ends its worker's lease on the couple.
        let statements = u64::from(!updates.is_empty()) + 2 * u64::from(attempt.is_some());
        tally.db(statements);
        let mut tx = self.pool.begin().await?;
        let mut states = HashMap::new();
        if !updates.is_empty() {
            let mut q = QueryBuilder::<Sqlite>::new(crate::sql_write::INSERT_PROGRESS);
            push_progress_values(&mut q, run, couple, updates, now_ms());
            q.push(crate::sql_write::ON_PROGRESS_CONFLICT);
            let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
            for (photo, state) in rows {
                states.insert(PhotoId(photo), state_of(&state)?);
            }
        }
        if let Some(a) = attempt {
            let mut q = QueryBuilder::<Sqlite>::new("");
            crate::sql_write::push_attempt(&mut q, a, statements);
            q.build().execute(&mut *tx).await?;
            sqlx::query(crate::fleet::RELEASE)
                .bind(run.id.0)
                .bind(couple.0)
                .bind(&a.worker)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(states)
    }

    /// Claims with `UPDATE ... RETURNING` (SQLite has one writer at a time, so no row lock is
    /// needed), then reads the claimed photos' keys in the same transaction.
    async fn dialect_claim_sweep(
        &self,
        run: &Run,
        owner: &str,
        max_photos: u32,
        lease: Duration,
        tally: &Tally,
    ) -> Result<Vec<SweepItem>, CatalogError> {
        tally.db(2);
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let claimed: Vec<(i64,)> = sqlx::query_as(&format!(
            "UPDATE photo_progress SET sweep_owner = $1, sweep_until = $2
             WHERE run_id = $3 AND photo_id IN (
                 SELECT photo_id FROM photo_progress
                 WHERE run_id = $3 AND state IN ({sweepable})
                   AND (sweep_owner IS NULL OR sweep_until < $4)
                   AND sweep_blocked IS NULL
                 ORDER BY photo_id LIMIT $5)
             RETURNING photo_id",
            sweepable = sweepable_states(run)
        ))
        .bind(owner)
        .bind(now.saturating_add(lease.as_millis() as i64))
        .bind(run.id.0)
        .bind(now)
        .bind(i64::from(max_photos))
        .fetch_all(&mut *tx)
        .await?;
        if claimed.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT pp.photo_id, pp.state, pp.kept_reason, p.original_key, t.key
             FROM photo_progress pp JOIN photos p ON p.id = pp.photo_id
             LEFT JOIN thumbnails t ON t.photo_id = pp.photo_id
             WHERE pp.run_id = ",
        );
        q.push_bind(run.id.0).push(" AND pp.photo_id IN (");
        let mut ids = q.separated(", ");
        for (id,) in &claimed {
            ids.push_bind(*id);
        }
        q.push(") ORDER BY pp.photo_id, t.key");
        let rows: Vec<SweepRow> = q.build_query_as().fetch_all(&mut *tx).await?;
        tx.commit().await?;
        group_sweep(rows)
    }

    /// Three statements in one transaction: SQLite has no data-modifying CTEs.
    async fn dialect_heartbeat(
        &self,
        beat: &Heartbeat<'_>,
        tally: &Tally,
    ) -> Result<FleetView, CatalogError> {
        let mut tx = self.pool.begin().await?;
        tally.db(2);
        sqlx::query(crate::fleet::BEAT)
            .bind(beat.run_name)
            .bind(beat.worker)
            .bind(beat.started_at_ms)
            .bind(beat.now_ms)
            .execute(&mut *tx)
            .await?;
        if let Some(s) = beat.sample {
            tally.db(1);
            let mut q = QueryBuilder::new("");
            crate::fleet::push_sample_insert(&mut q, beat, s);
            q.build().execute(&mut *tx).await?;
        }
        let view: crate::fleet::ViewTuple = sqlx::query_as(crate::fleet::FLEET_VIEW)
            .bind(beat.run_name)
            .bind(beat.worker)
            .bind(beat.stale_cutoff())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(crate::fleet::view_from(view))
    }

    /// Folds the WAL back into the file and empties it before the last connection goes, so that
    /// a closed catalog is one file whatever the timing of the connections' own close.
    async fn close_pool(&self) {
        if !self.pool.is_closed() {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        self.pool.close().await;
    }
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_catalog_reopens_without_migrating_and_keeps_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = super::SqliteCatalog::open(&url).await.unwrap();
        crate::conformance::seed(&catalog).await;
        // Opening again re-runs no migration and keeps the data.
        let again = super::SqliteCatalog::open(&url).await.unwrap();
        use crate::Catalog;
        assert!(again.max_ids().await.unwrap().0 .0 > 0);
    }

    #[tokio::test]
    async fn sqlite_catalog_opens_read_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let missing = super::SqliteCatalog::open_read_only(&url)
            .await
            .unwrap_err();
        assert!(missing.to_string().contains("no catalog file"), "{missing}");
        assert!(!dir.path().join("catalog.db").exists(), "nothing created");
        let rw = super::SqliteCatalog::open(&url).await.unwrap();
        let ro = super::SqliteCatalog::open_read_only(&url).await.unwrap();
        crate::conformance_fleet::read_only_reads_and_refuses_writes(&rw, &ro).await;
        // A file that is not a recast catalog is refused with a reason.
        let other = dir.path().join("other.db");
        let plain = super::SqliteCatalog::open(&format!("sqlite://{}", other.display()))
            .await
            .unwrap();
        sqlx::query("DROP TABLE _sqlx_migrations")
            .execute(&plain.pool)
            .await
            .unwrap();
        let err = super::SqliteCatalog::open_read_only(&format!("sqlite://{}", other.display()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no recast schema"), "{err}");
    }
}

crate::tail::tail_methods!(SqliteCatalog);

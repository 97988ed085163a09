//! The catalog on SQLite: one file, shared by every process that opens it.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use recast_core::{
    CatalogTotals, CoupleId, JobPhoto, PhotoId, PhotoState, RunId, RunSettings, Tally,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};

use crate::rows::{
    attempt_bucket, catalog_totals, group_audit, group_jobs, group_sweep, progress_bucket,
    progress_row, push_progress_values, sample_photo, sample_points, state_of, state_totals,
    AttemptBucketRow, AuditRow, JobRow, ProgressBucketRow, ProgressTuple, SampleRow, StateTuple,
    SweepRow, TotalsRow,
};
use crate::{
    now_ms, AttemptBucket, AuditPhoto, Catalog, CatalogError, Checkpoint, CoupleJob, FleetView,
    Heartbeat, JobAttempt, Lease, NewCouple, ProgressBucket, ProgressRow, ProgressUpdate, Run,
    RunStatus, SamplePhoto, SweepItem, WorkerInfo, WorkerSample, WorkerSpan,
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

    fn run_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Run, CatalogError> {
        let name: String = row.get("name");
        let settings: String = row.get("settings");
        let settings: RunSettings =
            serde_json::from_str(&settings).map_err(|source| CatalogError::Settings {
                run: name.clone(),
                source,
            })?;
        Ok(Run {
            id: RunId(row.get("id")),
            name,
            settings,
            created_at_ms: row.get("created_at"),
        })
    }
}

crate::fleet::shared_fleet_methods!(SqliteCatalog);
crate::counters::shared_counter_methods!(SqliteCatalog, "");

crate::import::shared_import_methods!(SqliteCatalog, crate::import_unit::SqliteUnit);

#[async_trait]
impl Catalog for SqliteCatalog {
    async fn add_couples(&self, couples: &[NewCouple]) -> Result<(), CatalogError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in couples.chunks(SEED_ROWS_PER_INSERT) {
            QueryBuilder::<Sqlite>::new("INSERT INTO couples (id, created_at) ")
                .push_values(chunk, |mut b, c| {
                    b.push_bind(c.id.0).push_bind(now);
                })
                .build()
                .execute(&mut *tx)
                .await?;
        }
        let photos: Vec<_> = couples
            .iter()
            .flat_map(|c| c.photos.iter().map(move |p| (c.id, p)))
            .collect();
        for chunk in photos.chunks(SEED_ROWS_PER_INSERT) {
            QueryBuilder::<Sqlite>::new(
                "INSERT INTO photos (id, couple_id, original_key, format, bytes, width, height) ",
            )
            .push_values(chunk, |mut b, (couple, p)| {
                b.push_bind(p.id.0)
                    .push_bind(couple.0)
                    .push_bind(&p.original_key)
                    .push_bind(&p.format)
                    .push_bind(p.bytes as i64)
                    .push_bind(p.width.map(i64::from))
                    .push_bind(p.height.map(i64::from));
            })
            .build()
            .execute(&mut *tx)
            .await?;
        }
        let thumbs: Vec<_> = photos
            .iter()
            .flat_map(|(_, p)| p.thumbnails.iter().map(move |t| (p.id, t)))
            .collect();
        for chunk in thumbs.chunks(SEED_ROWS_PER_INSERT) {
            QueryBuilder::<Sqlite>::new("INSERT INTO thumbnails (photo_id, key, bytes) ")
                .push_values(chunk, |mut b, (photo, t)| {
                    b.push_bind(photo.0)
                        .push_bind(&t.key)
                        .push_bind(t.bytes as i64);
                })
                .build()
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn max_ids(&self) -> Result<(CoupleId, PhotoId), CatalogError> {
        let row = sqlx::query(
            "SELECT (SELECT coalesce(max(id), 0) FROM couples) AS c, (SELECT coalesce(max(id), 0) FROM photos) AS p",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((CoupleId(row.get("c")), PhotoId(row.get("p"))))
    }

    async fn ensure_run(
        &self,
        name: &str,
        settings: &RunSettings,
    ) -> Result<(Run, bool), CatalogError> {
        let json = serde_json::to_string(settings).expect("settings serialise");
        let created = sqlx::query("INSERT INTO runs (name, settings, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(json)
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected()
            == 1;
        Ok((self.run(Some(name)).await?, created))
    }

    async fn run(&self, name: Option<&str>) -> Result<Run, CatalogError> {
        let row = match name {
            Some(n) => {
                sqlx::query("SELECT id, name, settings, created_at FROM runs WHERE name = ?")
                    .bind(n)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query(
                    "SELECT id, name, settings, created_at FROM runs ORDER BY id DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?
            }
        };
        let row =
            row.ok_or_else(|| CatalogError::NoSuchRun(name.unwrap_or("(latest)").to_owned()))?;
        Self::run_from_row(&row)
    }

    async fn checkpoint(&self, run: &Run) -> Result<Checkpoint, CatalogError> {
        let row = sqlx::query(
            "SELECT last_couple_id, enqueued, finished FROM producer_checkpoints WHERE run_id = ?",
        )
        .bind(run.id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map_or_else(Checkpoint::default, |r| Checkpoint {
            last_couple: Some(CoupleId(r.get("last_couple_id"))),
            enqueued: r.get::<i64, _>("enqueued") as u64,
            finished: r.get::<i64, _>("finished") != 0,
        }))
    }

    async fn save_checkpoint(
        &self,
        run: &Run,
        last: CoupleId,
        added: u64,
        tally: &Tally,
    ) -> Result<(), CatalogError> {
        tally.db(1);
        sqlx::query(
            "INSERT INTO producer_checkpoints (run_id, last_couple_id, enqueued, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (run_id) DO UPDATE SET
               enqueued = CASE WHEN excluded.last_couple_id > last_couple_id
                               THEN enqueued + excluded.enqueued ELSE enqueued END,
               last_couple_id = max(last_couple_id, excluded.last_couple_id),
               updated_at = excluded.updated_at",
        )
        .bind(run.id.0)
        .bind(last.0)
        .bind(added as i64)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn finish_checkpoint(&self, run: &Run) -> Result<(), CatalogError> {
        sqlx::query(
            "INSERT INTO producer_checkpoints (run_id, last_couple_id, enqueued, finished, updated_at) VALUES (?, 0, 0, 1, ?)
             ON CONFLICT (run_id) DO UPDATE SET finished = 1, updated_at = excluded.updated_at",
        )
        .bind(run.id.0)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn couples_after(
        &self,
        after: Option<CoupleId>,
        limit: u32,
        tally: &Tally,
    ) -> Result<Vec<CoupleJob>, CatalogError> {
        tally.db(1);
        let rows = sqlx::query_as::<_, JobRow>(
            "SELECT c.id AS couple_id, p.id AS photo_id, p.original_key, t.key AS thumb_key
             FROM (SELECT id FROM couples WHERE id > ? ORDER BY id LIMIT ?) c
             LEFT JOIN photos p ON p.couple_id = c.id
             LEFT JOIN thumbnails t ON t.photo_id = p.id
             ORDER BY c.id, p.id, t.key",
        )
        .bind(after.map_or(i64::MIN, |c| c.0))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(group_jobs(rows))
    }

    async fn couple_photos(
        &self,
        couple: CoupleId,
        tally: &Tally,
    ) -> Result<Vec<JobPhoto>, CatalogError> {
        tally.db(1);
        let rows = sqlx::query_as::<_, JobRow>(
            "SELECT p.couple_id, p.id AS photo_id, p.original_key, t.key AS thumb_key
             FROM photos p LEFT JOIN thumbnails t ON t.photo_id = p.id
             WHERE p.couple_id = ? ORDER BY p.id, t.key",
        )
        .bind(couple.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(group_jobs(rows).pop().map(|j| j.photos).unwrap_or_default())
    }

    async fn progress(
        &self,
        run: &Run,
        couple: CoupleId,
        tally: &Tally,
    ) -> Result<HashMap<PhotoId, ProgressRow>, CatalogError> {
        tally.db(1);
        let rows = sqlx::query_as::<_, ProgressTuple>(
            "SELECT photo_id, state, webp_key, webp_bytes, webp_crc32c, failure_reason
             FROM photo_progress WHERE run_id = ? AND couple_id = ?",
        )
        .bind(run.id.0)
        .bind(couple.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(progress_row)
            .map(|r| r.map(|r| (r.photo, r)))
            .collect()
    }

    async fn record(
        &self,
        run: &Run,
        couple: CoupleId,
        updates: &[ProgressUpdate],
        attempt: Option<&JobAttempt>,
        tally: &Tally,
    ) -> Result<HashMap<PhotoId, PhotoState>, CatalogError> {
        // An attempt of a couple also ends its worker's lease on the couple.
        let statements = u64::from(!updates.is_empty()) + 2 * u64::from(attempt.is_some());
        if statements == 0 {
            return Ok(HashMap::new());
        }
        tally.db(statements);
        let mut tx = self.pool.begin().await?;
        let mut states = HashMap::new();
        if !updates.is_empty() {
            let now = now_ms();
            let mut q = QueryBuilder::<Sqlite>::new(
                "INSERT INTO photo_progress (run_id, photo_id, couple_id, state, webp_key, webp_bytes, webp_crc32c,
                                             failure_reason, failure_detail, created_at, updated_at, kept_reason) ",
            );
            push_progress_values(&mut q, run, couple, updates, now);
            // A photo recorded before (by a duplicate or earlier attempt) keeps its row: the no-op
            // update only makes RETURNING report the state it is in.
            q.push(
                " ON CONFLICT (run_id, photo_id) DO UPDATE SET updated_at = photo_progress.updated_at
                  RETURNING photo_id, state",
            );
            let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(&mut *tx).await?;
            for (photo, state) in rows {
                states.insert(PhotoId(photo), state_of(&state)?);
            }
        }
        if let Some(a) = attempt {
            insert_attempt(a, statements).execute(&mut *tx).await?;
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

    async fn claim_sweep(
        &self,
        run: &Run,
        owner: &str,
        max_photos: u32,
        lease: std::time::Duration,
        tally: &Tally,
    ) -> Result<Vec<SweepItem>, CatalogError> {
        tally.db(2);
        let now = now_ms();
        let sweepable = sweepable_states(run);
        let mut tx = self.pool.begin().await?;
        let claimed: Vec<(i64,)> = sqlx::query_as(&format!(
            "UPDATE photo_progress SET sweep_owner = ?, sweep_until = ?
             WHERE run_id = ? AND photo_id IN (
                 SELECT photo_id FROM photo_progress
                 WHERE run_id = ? AND state IN ({sweepable})
                   AND (sweep_owner IS NULL OR sweep_until < ?)
                   AND sweep_blocked IS NULL
                 ORDER BY photo_id LIMIT ?)
             RETURNING photo_id"
        ))
        .bind(owner)
        .bind(now.saturating_add(lease.as_millis() as i64))
        .bind(run.id.0)
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

    async fn sweep_backlog(&self, run: &Run, tally: &Tally) -> Result<u64, CatalogError> {
        tally.db(1);
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM photo_progress WHERE run_id = ? AND state IN ({}) AND sweep_blocked IS NULL",
            sweepable_states(run)
        ))
        .bind(run.id.0)
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    async fn advance(
        &self,
        run: &Run,
        moves: &[(PhotoId, PhotoState)],
        tally: &Tally,
    ) -> Result<(), CatalogError> {
        if moves.is_empty() {
            return Ok(());
        }
        tally.db(1);
        let mut q = QueryBuilder::<Sqlite>::new(
            "UPDATE photo_progress SET state = v.column2, updated_at = ",
        );
        q.push_bind(now_ms());
        q.push(" FROM (");
        q.push_values(moves, |mut b, (photo, state)| {
            b.push_bind(photo.0).push_bind(state.as_str());
        });
        q.push(") AS v WHERE photo_progress.run_id = ");
        q.push_bind(run.id.0);
        q.push(
            " AND photo_progress.photo_id = v.column1
              AND ((photo_progress.state = 'switched' AND v.column2 IN ('thumbs_gone', 'done'))
                OR (photo_progress.state = 'thumbs_gone' AND v.column2 = 'done'))",
        );
        q.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn record_attempt(&self, a: &JobAttempt, tally: &Tally) -> Result<(), CatalogError> {
        tally.db(1);
        insert_attempt(a, 1).execute(&self.pool).await?;
        Ok(())
    }

    async fn status(&self, run: &Run) -> Result<RunStatus, CatalogError> {
        self.counted_status(run).await
    }

    async fn repair_counters(&self, run: &Run) -> Result<(), CatalogError> {
        self.repair_run_counters(run).await
    }

    async fn recount(&self, run: &Run) -> Result<RunStatus, CatalogError> {
        let mut status = RunStatus {
            run: run.name.clone(),
            originals: run.settings.originals,
            ..RunStatus::default()
        };
        let rows = sqlx::query_as::<_, StateTuple>(
            "SELECT coalesce(pp.state, 'pending') AS state, count(*) AS photos, coalesce(sum(p.bytes), 0) AS original_bytes,
                    sum(coalesce(t.n, 0)) AS thumbnails, sum(coalesce(t.b, 0)) AS thumbnail_bytes,
                    sum(coalesce(pp.webp_bytes, 0)) AS webp_bytes,
                    sum(CASE WHEN pp.kept_reason IS NOT NULL THEN 1 ELSE 0 END) AS kept,
                    sum(CASE WHEN pp.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END) AS kept_bytes
             FROM photos p
             LEFT JOIN (SELECT photo_id, count(*) AS n, sum(bytes) AS b FROM thumbnails GROUP BY photo_id) t
                    ON t.photo_id = p.id
             LEFT JOIN photo_progress pp ON pp.run_id = ? AND pp.photo_id = p.id
             GROUP BY 1",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        status.by_state.extend(rows.into_iter().map(state_totals));
        for r in sqlx::query(
            "SELECT failure_reason, count(*) AS n FROM photo_progress WHERE run_id = ? AND state = 'failed' GROUP BY 1",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?
        {
            status.failures.insert(r.get("failure_reason"), r.get::<i64, _>("n") as u64);
        }
        let kept: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kept_reason, count(*) FROM photo_progress WHERE run_id = ? AND kept_reason IS NOT NULL GROUP BY 1",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        status
            .kept
            .extend(kept.into_iter().map(|(r, n)| (r, n as u64)));
        let r = sqlx::query(
            "SELECT (SELECT count(*) FROM couples) AS couples_total,
                    count(*) AS attempts,
                    count(DISTINCT CASE WHEN outcome = 'complete' THEN couple_id END) AS complete,
                    coalesce(sum(s3_get), 0) AS s3_get, coalesce(sum(s3_put), 0) AS s3_put,
                    coalesce(sum(s3_delete_requests), 0) AS s3_delete_requests,
                    coalesce(sum(s3_deleted_objects), 0) AS s3_deleted_objects,
                    coalesce(sum(sqs_requests), 0) AS sqs_requests,
                    coalesce(sum(db_statements), 0) AS db_statements,
                    min(started_at) AS first_started, max(finished_at) AS last_finished
             FROM job_attempts WHERE run_id = ?",
        )
        .bind(run.id.0)
        .fetch_one(&self.pool)
        .await?;
        let n = |c: &str| r.get::<i64, _>(c) as u64;
        status.couples_total = n("couples_total");
        status.attempts = n("attempts");
        status.couples_complete = n("complete");
        status.requests = recast_core::TallySnapshot {
            s3_get: n("s3_get"),
            s3_put: n("s3_put"),
            s3_delete_requests: n("s3_delete_requests"),
            s3_deleted_objects: n("s3_deleted_objects"),
            sqs_requests: n("sqs_requests"),
            db_statements: n("db_statements"),
        };
        status.first_started_ms = r.get("first_started");
        status.last_finished_ms = r.get("last_finished");
        let cp = self.checkpoint(run).await?;
        status.couples_enqueued = cp.enqueued;
        status.producer_finished = cp.finished;
        status.oldest_unfinished_enqueued_ms = self.oldest_open(run).await?;
        status.sweep_blocked = crate::RunTail::sweep_blocked(self, run).await?;
        Ok(status)
    }

    async fn all_progress(&self, run: &Run) -> Result<Vec<ProgressRow>, CatalogError> {
        let rows = sqlx::query_as::<_, ProgressTuple>(
            "SELECT photo_id, state, webp_key, webp_bytes, webp_crc32c, failure_reason
             FROM photo_progress WHERE run_id = ? ORDER BY photo_id",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(progress_row).collect()
    }

    async fn set_budgets(
        &self,
        run_name: &str,
        budgets: &recast_core::BudgetOverrides,
    ) -> Result<recast_core::Budgets, CatalogError> {
        self.fleet_set_budgets(run_name, budgets).await
    }

    async fn budgets(&self, run_name: &str) -> Result<recast_core::Budgets, CatalogError> {
        self.fleet_budgets(run_name).await
    }

    async fn heartbeat(
        &self,
        beat: &Heartbeat<'_>,
        tally: &Tally,
    ) -> Result<FleetView, CatalogError> {
        // Three statements in one transaction: SQLite has no data-modifying CTEs.
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

    async fn deregister(
        &self,
        beat: &Heartbeat<'_>,
        reason: &str,
        tally: &Tally,
    ) -> Result<(), CatalogError> {
        self.fleet_deregister(beat, reason, tally).await
    }

    async fn workers(&self, run_name: &str) -> Result<Vec<WorkerInfo>, CatalogError> {
        self.fleet_workers(run_name).await
    }

    async fn samples(&self, run_name: &str) -> Result<Vec<WorkerSample>, CatalogError> {
        self.fleet_samples(run_name).await
    }

    async fn lease_couple(
        &self,
        run: &Run,
        couple: CoupleId,
        owner: &str,
        lease: Duration,
        stale_after: Duration,
        tally: &Tally,
    ) -> Result<Lease, CatalogError> {
        self.fleet_lease_couple(run, couple, owner, lease, stale_after, tally)
            .await
    }

    async fn release_couple(
        &self,
        run: &Run,
        couple: CoupleId,
        owner: &str,
        tally: &Tally,
    ) -> Result<(), CatalogError> {
        self.fleet_release_couple(run, couple, owner, tally).await
    }

    async fn totals(&self) -> Result<CatalogTotals, CatalogError> {
        self.counted_totals().await
    }

    async fn recount_totals(&self) -> Result<CatalogTotals, CatalogError> {
        let row: TotalsRow = sqlx::query_as(
            "SELECT (SELECT count(DISTINCT couple_id) FROM photos),
                    (SELECT count(*) FROM photos), (SELECT coalesce(sum(bytes), 0) FROM photos),
                    (SELECT count(*) FROM thumbnails), (SELECT coalesce(sum(bytes), 0) FROM thumbnails),
                    (SELECT coalesce(sum(width * height), 0) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL),
                    (SELECT count(*) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(catalog_totals(row))
    }

    async fn sample_photos(&self, n: u32, seed: u64) -> Result<Vec<SamplePhoto>, CatalogError> {
        let (count, min, max): (i64, Option<i64>, Option<i64>) =
            sqlx::query_as(crate::counters::PHOTO_ID_RANGE)
                .fetch_one(&self.pool)
                .await?;
        let columns = "SELECT id, original_key, bytes, width, height FROM photos";
        if count <= i64::from(n) {
            let rows: Vec<SampleRow> = sqlx::query_as(&format!("{columns} ORDER BY id"))
                .fetch_all(&self.pool)
                .await?;
            return Ok(rows.into_iter().map(sample_photo).collect());
        }
        let (Some(min), Some(max)) = (min, max) else {
            return Ok(Vec::new());
        };
        let mut picked = std::collections::BTreeMap::new();
        for point in sample_points(min, max, n, seed) {
            if picked.len() == n as usize {
                break;
            }
            let row: Option<SampleRow> =
                sqlx::query_as(&format!("{columns} WHERE id >= ? ORDER BY id LIMIT 1"))
                    .bind(point)
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(row) = row {
                picked.insert(row.0, row);
            }
        }
        Ok(picked.into_values().map(sample_photo).collect())
    }

    async fn attempt_series(
        &self,
        run: &Run,
        bucket_ms: i64,
    ) -> Result<Vec<AttemptBucket>, CatalogError> {
        let bucket = bucket_ms.max(1);
        let rows: Vec<AttemptBucketRow> = sqlx::query_as(
            "SELECT (finished_at / ?) * ? AS b, count(*),
                    sum(CASE WHEN outcome = 'retry' THEN 1 ELSE 0 END),
                    sum(CASE WHEN outcome = 'complete' THEN photos ELSE 0 END),
                    sum(s3_get), sum(s3_put), sum(s3_delete_requests), sum(s3_deleted_objects),
                    sum(sqs_requests), sum(db_statements)
             FROM job_attempts WHERE run_id = ? GROUP BY b ORDER BY b",
        )
        .bind(bucket)
        .bind(bucket)
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(attempt_bucket).collect())
    }

    async fn progress_series(
        &self,
        run: &Run,
        bucket_ms: i64,
    ) -> Result<Vec<ProgressBucket>, CatalogError> {
        let bucket = bucket_ms.max(1);
        let rows: Vec<ProgressBucketRow> = sqlx::query_as(
            "SELECT b, sum(recorded), sum(failed), sum(kept), sum(done) FROM (
                 SELECT (created_at / ?) * ? AS b, 1 AS recorded,
                        CASE WHEN state = 'failed' THEN 1 ELSE 0 END AS failed,
                        CASE WHEN kept_reason IS NOT NULL THEN 1 ELSE 0 END AS kept, 0 AS done
                 FROM photo_progress WHERE run_id = ?
                 UNION ALL
                 SELECT (updated_at / ?) * ?, 0, 0, 0, 1
                 FROM photo_progress WHERE run_id = ? AND state = 'done'
             ) GROUP BY b ORDER BY b",
        )
        .bind(bucket)
        .bind(bucket)
        .bind(run.id.0)
        .bind(bucket)
        .bind(bucket)
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(progress_bucket).collect())
    }

    async fn worker_spans(&self, run: &Run) -> Result<Vec<WorkerSpan>, CatalogError> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT worker, min(started_at), max(finished_at), count(*) FROM job_attempts
             WHERE run_id = ? AND outcome <> 'producer' GROUP BY worker ORDER BY worker",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(worker, first, last, n)| WorkerSpan {
                worker,
                first_started_ms: first,
                last_finished_ms: last,
                attempts: n as u64,
            })
            .collect())
    }

    async fn audit_photos(
        &self,
        run: &Run,
        after: Option<PhotoId>,
        limit: u32,
    ) -> Result<Vec<AuditPhoto>, CatalogError> {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT p.id, p.couple_id, p.original_key, coalesce(pp.state, 'pending'), pp.webp_key,
                    pp.webp_bytes, pp.webp_crc32c, pp.kept_reason, pp.failure_reason, t.key
             FROM (SELECT id, couple_id, original_key FROM photos WHERE id > ? ORDER BY id LIMIT ?) p
             LEFT JOIN photo_progress pp ON pp.run_id = ? AND pp.photo_id = p.id
             LEFT JOIN thumbnails t ON t.photo_id = p.id
             ORDER BY p.id, t.key",
        )
        .bind(after.map_or(i64::MIN, |p| p.0))
        .bind(i64::from(limit))
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        group_audit(rows)
    }

    async fn close(&self) {
        // Fold the WAL back into the file and empty it before the last connection goes, so that a
        // closed catalog is one file whatever the timing of the connections' own close.
        if !self.pool.is_closed() {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await;
        }
        self.pool.close().await;
    }
}

/// The states a sweep has work for under the run's policy, as an SQL list.
pub(crate) fn sweepable_states(run: &Run) -> &'static str {
    match run.settings.originals {
        recast_core::OriginalsPolicy::Keep => "'switched'",
        recast_core::OriginalsPolicy::Delete => "'switched', 'thumbs_gone'",
    }
}

/// The INSERT of an attempt row; `own_statements` are the statements of the call writing it,
/// added to the attempt's count.
fn insert_attempt(
    a: &JobAttempt,
    own_statements: u64,
) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments<'_>> {
    let r = &a.requests;
    sqlx::query(
        "INSERT INTO job_attempts (run_id, couple_id, worker, outcome, photos, s3_get, s3_put, s3_delete_requests,
                                   s3_deleted_objects, sqs_requests, db_statements, started_at, finished_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(a.run.0)
    .bind(a.couple.map(|c| c.0))
    .bind(&a.worker)
    .bind(&a.outcome)
    .bind(i64::from(a.photos))
    .bind(r.s3_get as i64)
    .bind(r.s3_put as i64)
    .bind(r.s3_delete_requests as i64)
    .bind(r.s3_deleted_objects as i64)
    .bind(r.sqs_requests as i64)
    .bind((r.db_statements + own_statements) as i64)
    .bind(a.started_at_ms)
    .bind(a.finished_at_ms)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_catalog_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = super::SqliteCatalog::open(&url).await.unwrap();
        crate::conformance::run_all(&catalog).await;
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
        crate::conformance::read_only_reads_and_refuses_writes(&rw, &ro).await;
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

//! The catalog on PostgreSQL: the fleet's shared database. The same semantics as SQLite; where
//! PostgreSQL can do a job's writes in one statement (data-modifying CTEs), it does.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use recast_core::{
    CatalogTotals, CoupleId, JobPhoto, PhotoId, PhotoState, RunId, RunSettings, Tally,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::rows::{
    attempt_bucket, catalog_totals, group_audit, group_jobs, group_sweep, progress_bucket,
    progress_row, push_progress_values, sample_photo, sample_points, state_of, state_totals,
    AttemptBucketRow, AuditRow, JobRow, ProgressBucketRow, ProgressTuple, SampleRow, StateTuple,
    SweepRow, TotalsRow,
};
use crate::sqlite::sweepable_states;
use crate::{
    now_ms, AttemptBucket, AuditPhoto, Catalog, CatalogError, Checkpoint, CoupleJob, FleetView,
    Heartbeat, JobAttempt, Lease, NewCouple, ProgressBucket, ProgressRow, ProgressUpdate, Run,
    RunStatus, SamplePhoto, SweepItem, WorkerInfo, WorkerSample, WorkerSpan,
};

/// How long to wait for a pooled connection before the operation fails (and the job is retried).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Rows per multi-row INSERT while seeding (PostgreSQL binds at most 65,535 values per statement).
const SEED_ROWS_PER_INSERT: usize = 1000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgCatalog {
    pool: PgPool,
}

impl PgCatalog {
    pub async fn open(url: &str, pool_size: u32) -> Result<PgCatalog, CatalogError> {
        let options: PgConnectOptions =
            url.parse().map_err(|e: sqlx::Error| CatalogError::BadUrl {
                url: redact_password(url),
                reason: e.to_string(),
            })?;
        let pool = PgPoolOptions::new()
            .max_connections(pool_size.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let applied = sqlx::query_as(crate::schema::APPLIED_CHECKSUMS)
            .fetch_all(&pool)
            .await;
        if !crate::schema::is_current(applied, &MIGRATOR) {
            MIGRATOR.run(&pool).await?;
        }
        Ok(PgCatalog { pool })
    }

    /// Opens the catalog with sessions that refuse writes (`default_transaction_read_only`), and
    /// without migrating it: its schema must be up to date.
    pub async fn open_read_only(url: &str) -> Result<PgCatalog, CatalogError> {
        let options: PgConnectOptions =
            url.parse().map_err(|e: sqlx::Error| CatalogError::BadUrl {
                url: redact_password(url),
                reason: e.to_string(),
            })?;
        let options = options.options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        let applied = sqlx::query_scalar(crate::schema::APPLIED_VERSIONS)
            .fetch_all(&pool)
            .await;
        crate::schema::check_applied(applied, &MIGRATOR)?;
        Ok(PgCatalog { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// A database URL as it may be shown: without its password.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

fn run_from_row(
    (id, name, settings, created): (i64, String, String, i64),
) -> Result<Run, CatalogError> {
    let settings: RunSettings =
        serde_json::from_str(&settings).map_err(|source| CatalogError::Settings {
            run: name.clone(),
            source,
        })?;
    Ok(Run {
        id: RunId(id),
        name,
        settings,
        created_at_ms: created,
    })
}

/// Appends `INSERT INTO job_attempts ... VALUES (...)` for `a`, its statement count raised by
/// `own_statements`.
fn push_attempt(q: &mut QueryBuilder<'_, Postgres>, a: &JobAttempt, own_statements: u64) {
    let r = a.requests;
    q.push(
        "INSERT INTO job_attempts (run_id, couple_id, worker, outcome, photos, s3_get, s3_put, s3_delete_requests,
                                   s3_deleted_objects, sqs_requests, db_statements, started_at, finished_at) ",
    );
    q.push_values([a], |mut b, a| {
        b.push_bind(a.run.0)
            .push_bind(a.couple.map(|c| c.0))
            .push_bind(a.worker.clone())
            .push_bind(a.outcome.clone())
            .push_bind(i64::from(a.photos))
            .push_bind(r.s3_get as i64)
            .push_bind(r.s3_put as i64)
            .push_bind(r.s3_delete_requests as i64)
            .push_bind(r.s3_deleted_objects as i64)
            .push_bind(r.sqs_requests as i64)
            .push_bind((r.db_statements + own_statements) as i64)
            .push_bind(a.started_at_ms)
            .push_bind(a.finished_at_ms);
    });
}

crate::fleet::shared_fleet_methods!(PgCatalog);
crate::counters::shared_counter_methods!(
    PgCatalog,
    "LOCK TABLE catalog_counters, run_state_counters, run_reason_counters, run_attempt_counters, run_complete_couples IN EXCLUSIVE MODE"
);

crate::import::shared_import_methods!(PgCatalog, crate::import_unit::PgUnit);

#[async_trait]
impl Catalog for PgCatalog {
    async fn add_couples(&self, couples: &[NewCouple]) -> Result<(), CatalogError> {
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        for chunk in couples.chunks(SEED_ROWS_PER_INSERT) {
            QueryBuilder::<Postgres>::new("INSERT INTO couples (id, created_at) ")
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
            QueryBuilder::<Postgres>::new(
                "INSERT INTO photos (id, couple_id, original_key, format, bytes, width, height) ",
            )
            .push_values(chunk, |mut b, (couple, p)| {
                b.push_bind(p.id.0)
                    .push_bind(couple.0)
                    .push_bind(p.original_key.clone())
                    .push_bind(p.format.clone())
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
            QueryBuilder::<Postgres>::new("INSERT INTO thumbnails (photo_id, key, bytes) ")
                .push_values(chunk, |mut b, (photo, t)| {
                    b.push_bind(photo.0)
                        .push_bind(t.key.clone())
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
        let (c, p): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT coalesce(max(id), 0) FROM couples), (SELECT coalesce(max(id), 0) FROM photos)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((CoupleId(c), PhotoId(p)))
    }

    async fn ensure_run(
        &self,
        name: &str,
        settings: &RunSettings,
    ) -> Result<(Run, bool), CatalogError> {
        let json = serde_json::to_string(settings).expect("settings serialise");
        let created = sqlx::query(
            "INSERT INTO runs (name, settings, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
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
        let row: Option<(i64, String, String, i64)> = match name {
            Some(n) => {
                sqlx::query_as("SELECT id, name, settings, created_at FROM runs WHERE name = $1")
                    .bind(n)
                    .fetch_optional(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_as(
                    "SELECT id, name, settings, created_at FROM runs ORDER BY id DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?
            }
        };
        run_from_row(
            row.ok_or_else(|| CatalogError::NoSuchRun(name.unwrap_or("(latest)").to_owned()))?,
        )
    }

    async fn checkpoint(&self, run: &Run) -> Result<Checkpoint, CatalogError> {
        let row: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT last_couple_id, enqueued, finished FROM producer_checkpoints WHERE run_id = $1",
        )
        .bind(run.id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(
            row.map_or_else(Checkpoint::default, |(last, enqueued, finished)| {
                Checkpoint {
                    last_couple: Some(CoupleId(last)),
                    enqueued: enqueued as u64,
                    finished: finished != 0,
                }
            }),
        )
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
            "INSERT INTO producer_checkpoints AS c (run_id, last_couple_id, enqueued, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (run_id) DO UPDATE SET
               enqueued = CASE WHEN excluded.last_couple_id > c.last_couple_id
                               THEN c.enqueued + excluded.enqueued ELSE c.enqueued END,
               last_couple_id = GREATEST(c.last_couple_id, excluded.last_couple_id),
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
            "INSERT INTO producer_checkpoints (run_id, last_couple_id, enqueued, finished, updated_at) VALUES ($1, 0, 0, 1, $2)
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
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT c.id, p.id, p.original_key, t.key
             FROM (SELECT id FROM couples WHERE id > $1 ORDER BY id LIMIT $2) c
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
        let rows: Vec<JobRow> = sqlx::query_as(
            "SELECT p.couple_id, p.id, p.original_key, t.key
             FROM photos p LEFT JOIN thumbnails t ON t.photo_id = p.id
             WHERE p.couple_id = $1 ORDER BY p.id, t.key",
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
        let rows: Vec<ProgressTuple> = sqlx::query_as(
            "SELECT photo_id, state, webp_key, webp_bytes, webp_crc32c, failure_reason
             FROM photo_progress WHERE run_id = $1 AND couple_id = $2",
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
        if updates.is_empty() && attempt.is_none() {
            return Ok(HashMap::new());
        }
        tally.db(1);
        let mut q = QueryBuilder::<Postgres>::new("");
        if !updates.is_empty() {
            q.push(
                "WITH recorded AS (INSERT INTO photo_progress AS pp (run_id, photo_id, couple_id, state, webp_key,
                     webp_bytes, webp_crc32c, failure_reason, failure_detail, created_at, updated_at, kept_reason) ",
            );
            push_progress_values(&mut q, run, couple, updates, now_ms());
            // A photo recorded before keeps its row; the no-op update makes RETURNING report it.
            q.push(" ON CONFLICT (run_id, photo_id) DO UPDATE SET updated_at = pp.updated_at RETURNING photo_id, state)");
            if let Some(a) = attempt {
                q.push(", attempt AS (");
                push_attempt(&mut q, a, 1);
                q.push("), ");
                push_release(&mut q, run, couple, a);
            }
            q.push(" SELECT photo_id, state FROM recorded");
            let rows: Vec<(i64, String)> = q.build_query_as().fetch_all(&self.pool).await?;
            rows.into_iter()
                .map(|(p, s)| Ok((PhotoId(p), state_of(&s)?)))
                .collect()
        } else {
            let a = attempt.expect("checked above");
            q.push("WITH ");
            push_release(&mut q, run, couple, a);
            q.push(" ");
            push_attempt(&mut q, a, 1);
            q.build().execute(&self.pool).await?;
            Ok(HashMap::new())
        }
    }

    async fn claim_sweep(
        &self,
        run: &Run,
        owner: &str,
        max_photos: u32,
        lease: Duration,
        tally: &Tally,
    ) -> Result<Vec<SweepItem>, CatalogError> {
        tally.db(1);
        let now = now_ms();
        let rows: Vec<SweepRow> = sqlx::query_as(&format!(
            "WITH candidates AS (
                 SELECT photo_id FROM photo_progress
                 WHERE run_id = $1 AND state IN ({states})
                   AND (sweep_owner IS NULL OR sweep_until < $3)
                   AND sweep_blocked IS NULL
                 ORDER BY photo_id LIMIT $4
                 FOR UPDATE SKIP LOCKED),
             claimed AS (
                 UPDATE photo_progress pp SET sweep_owner = $2, sweep_until = $5
                 FROM candidates c WHERE pp.run_id = $1 AND pp.photo_id = c.photo_id
                 RETURNING pp.photo_id, pp.state, pp.kept_reason)
             SELECT c.photo_id, c.state, c.kept_reason, p.original_key, t.key
             FROM claimed c JOIN photos p ON p.id = c.photo_id
             LEFT JOIN thumbnails t ON t.photo_id = c.photo_id
             ORDER BY c.photo_id, t.key",
            states = sweepable_states(run)
        ))
        .bind(run.id.0)
        .bind(owner)
        .bind(now)
        .bind(i64::from(max_photos))
        .bind(now.saturating_add(lease.as_millis() as i64))
        .fetch_all(&self.pool)
        .await?;
        group_sweep(rows)
    }

    async fn sweep_backlog(&self, run: &Run, tally: &Tally) -> Result<u64, CatalogError> {
        tally.db(1);
        let (n,): (i64,) = sqlx::query_as(&format!(
            "SELECT count(*) FROM photo_progress WHERE run_id = $1 AND state IN ({}) AND sweep_blocked IS NULL",
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
        let mut q = QueryBuilder::<Postgres>::new(
            "UPDATE photo_progress pp SET state = v.state, updated_at = ",
        );
        q.push_bind(now_ms());
        q.push(" FROM (");
        q.push_values(moves, |mut b, (photo, state)| {
            b.push_bind(photo.0).push_bind(state.as_str());
        });
        q.push(") AS v(photo_id, state) WHERE pp.run_id = ");
        q.push_bind(run.id.0);
        q.push(
            " AND pp.photo_id = v.photo_id
              AND ((pp.state = 'switched' AND v.state IN ('thumbs_gone', 'done'))
                OR (pp.state = 'thumbs_gone' AND v.state = 'done'))",
        );
        q.build().execute(&self.pool).await?;
        Ok(())
    }

    async fn record_attempt(&self, a: &JobAttempt, tally: &Tally) -> Result<(), CatalogError> {
        tally.db(1);
        let mut q = QueryBuilder::<Postgres>::new("");
        push_attempt(&mut q, a, 1);
        q.build().execute(&self.pool).await?;
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
        let rows: Vec<StateTuple> = sqlx::query_as(
            "SELECT coalesce(pp.state, 'pending'), count(*), coalesce(sum(p.bytes), 0)::bigint,
                    coalesce(sum(t.n), 0)::bigint, coalesce(sum(t.b), 0)::bigint,
                    coalesce(sum(pp.webp_bytes), 0)::bigint,
                    count(pp.kept_reason),
                    coalesce(sum(CASE WHEN pp.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END), 0)::bigint
             FROM photos p
             LEFT JOIN (SELECT photo_id, count(*) AS n, sum(bytes) AS b FROM thumbnails GROUP BY photo_id) t
                    ON t.photo_id = p.id
             LEFT JOIN photo_progress pp ON pp.run_id = $1 AND pp.photo_id = p.id
             GROUP BY 1",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        status.by_state.extend(rows.into_iter().map(state_totals));
        let failures: Vec<(String, i64)> = sqlx::query_as(
            "SELECT failure_reason, count(*) FROM photo_progress WHERE run_id = $1 AND state = 'failed' GROUP BY 1",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        status
            .failures
            .extend(failures.into_iter().map(|(r, n)| (r, n as u64)));
        let kept: Vec<(String, i64)> = sqlx::query_as(
            "SELECT kept_reason, count(*) FROM photo_progress WHERE run_id = $1 AND kept_reason IS NOT NULL GROUP BY 1",
        )
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        status
            .kept
            .extend(kept.into_iter().map(|(r, n)| (r, n as u64)));
        #[allow(clippy::type_complexity)]
        let r: (i64, i64, i64, i64, i64, i64, i64, i64, i64, Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM couples), count(*),
                    count(DISTINCT CASE WHEN outcome = 'complete' THEN couple_id END),
                    coalesce(sum(s3_get), 0)::bigint, coalesce(sum(s3_put), 0)::bigint,
                    coalesce(sum(s3_delete_requests), 0)::bigint, coalesce(sum(s3_deleted_objects), 0)::bigint,
                    coalesce(sum(sqs_requests), 0)::bigint, coalesce(sum(db_statements), 0)::bigint,
                    min(started_at), max(finished_at)
             FROM job_attempts WHERE run_id = $1",
        )
        .bind(run.id.0)
        .fetch_one(&self.pool)
        .await?;
        status.couples_total = r.0 as u64;
        status.attempts = r.1 as u64;
        status.couples_complete = r.2 as u64;
        status.requests = recast_core::TallySnapshot {
            s3_get: r.3 as u64,
            s3_put: r.4 as u64,
            s3_delete_requests: r.5 as u64,
            s3_deleted_objects: r.6 as u64,
            sqs_requests: r.7 as u64,
            db_statements: r.8 as u64,
        };
        status.first_started_ms = r.9;
        status.last_finished_ms = r.10;
        let cp = self.checkpoint(run).await?;
        status.couples_enqueued = cp.enqueued;
        status.producer_finished = cp.finished;
        status.oldest_unfinished_enqueued_ms = self.oldest_open(run).await?;
        status.sweep_blocked = crate::RunTail::sweep_blocked(self, run).await?;
        Ok(status)
    }

    async fn all_progress(&self, run: &Run) -> Result<Vec<ProgressRow>, CatalogError> {
        let rows: Vec<ProgressTuple> = sqlx::query_as(
            "SELECT photo_id, state, webp_key, webp_bytes, webp_crc32c, failure_reason
             FROM photo_progress WHERE run_id = $1 ORDER BY photo_id",
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
        // One statement: the beat and the sample ride on the read as data-modifying CTEs.
        tally.db(1);
        let mut q = QueryBuilder::<Postgres>::new("WITH beat AS (");
        q.push("INSERT INTO workers (run_name, name, started_at, heartbeat_at) VALUES (")
            .push_bind(beat.run_name.to_owned())
            .push(", ")
            .push_bind(beat.worker.to_owned())
            .push(", ")
            .push_bind(beat.started_at_ms)
            .push(", ")
            .push_bind(beat.now_ms)
            .push(
                ") ON CONFLICT (run_name, name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                   stopped_at = NULL, stop_reason = NULL)",
            );
        if let Some(s) = beat.sample {
            q.push(", sample AS (");
            crate::fleet::push_sample_insert(&mut q, beat, s);
            q.push(")");
        }
        q.push(" SELECT (SELECT count(*) FROM workers WHERE run_name = ")
            .push_bind(beat.run_name.to_owned())
            .push(" AND name <> ")
            .push_bind(beat.worker.to_owned())
            .push(" AND stopped_at IS NULL AND heartbeat_at >= ")
            .push_bind(beat.stale_cutoff())
            .push(
                "), b.s3_deletes_per_min, b.s3_puts_per_sec, b.s3_gets_per_sec, b.max_in_flight
             FROM (SELECT 1 AS one) AS one LEFT JOIN run_budgets b ON b.run_name = ",
            )
            .push_bind(beat.run_name.to_owned());
        let view: crate::fleet::ViewTuple = q.build_query_as().fetch_one(&self.pool).await?;
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
                    (SELECT count(*) FROM photos), (SELECT coalesce(sum(bytes), 0)::bigint FROM photos),
                    (SELECT count(*) FROM thumbnails), (SELECT coalesce(sum(bytes), 0)::bigint FROM thumbnails),
                    (SELECT coalesce(sum(width * height), 0)::bigint FROM photos WHERE width IS NOT NULL AND height IS NOT NULL),
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
                sqlx::query_as(&format!("{columns} WHERE id >= $1 ORDER BY id LIMIT 1"))
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
        let rows: Vec<AttemptBucketRow> = sqlx::query_as(
            "SELECT (finished_at / $1) * $1 AS b, count(*),
                    count(*) FILTER (WHERE outcome = 'retry'),
                    coalesce(sum(photos) FILTER (WHERE outcome = 'complete'), 0)::bigint,
                    sum(s3_get)::bigint, sum(s3_put)::bigint, sum(s3_delete_requests)::bigint,
                    sum(s3_deleted_objects)::bigint, sum(sqs_requests)::bigint, sum(db_statements)::bigint
             FROM job_attempts WHERE run_id = $2 GROUP BY b ORDER BY b",
        )
        .bind(bucket_ms.max(1))
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
        let rows: Vec<ProgressBucketRow> = sqlx::query_as(
            "SELECT b, sum(recorded)::bigint, sum(failed)::bigint, sum(kept)::bigint, sum(done)::bigint FROM (
                 SELECT (created_at / $1) * $1 AS b, 1 AS recorded,
                        CASE WHEN state = 'failed' THEN 1 ELSE 0 END AS failed,
                        CASE WHEN kept_reason IS NOT NULL THEN 1 ELSE 0 END AS kept, 0 AS done
                 FROM photo_progress WHERE run_id = $2
                 UNION ALL
                 SELECT (updated_at / $1) * $1, 0, 0, 0, 1
                 FROM photo_progress WHERE run_id = $2 AND state = 'done'
             ) AS steps GROUP BY b ORDER BY b",
        )
        .bind(bucket_ms.max(1))
        .bind(run.id.0)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(progress_bucket).collect())
    }

    async fn worker_spans(&self, run: &Run) -> Result<Vec<WorkerSpan>, CatalogError> {
        let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
            "SELECT worker, min(started_at), max(finished_at), count(*) FROM job_attempts
             WHERE run_id = $1 AND outcome <> 'producer' GROUP BY worker ORDER BY worker",
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
             FROM (SELECT id, couple_id, original_key FROM photos WHERE id > $1 ORDER BY id LIMIT $2) p
             LEFT JOIN photo_progress pp ON pp.run_id = $3 AND pp.photo_id = p.id
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
        self.pool.close().await;
    }
}

#[cfg(test)]
mod server_tests {
    #[tokio::test]
    async fn postgres_catalog_passes_the_conformance_suite() {
        let url = crate::conformance::fresh_postgres().await;
        let catalog = super::PgCatalog::open(&url, 4).await.unwrap();
        crate::conformance::run_all(&catalog).await;
        // Opening again re-runs no migration and keeps the data.
        let again = super::PgCatalog::open(&url, 2).await.unwrap();
        use crate::Catalog;
        assert!(again.max_ids().await.unwrap().0 .0 > 0);
    }

    #[tokio::test]
    async fn postgres_catalog_opens_read_only() {
        let url = crate::conformance::fresh_postgres().await;
        let rw = super::PgCatalog::open(&url, 2).await.unwrap();
        let ro = super::PgCatalog::open_read_only(&url).await.unwrap();
        crate::conformance::read_only_reads_and_refuses_writes(&rw, &ro).await;
        // A database without recast's schema is refused with a reason, and left as it was.
        let empty = crate::conformance::fresh_postgres().await;
        let err = super::PgCatalog::open_read_only(&empty).await.unwrap_err();
        assert!(err.to_string().contains("no recast schema"), "{err}");
    }
}

/// `released AS (DELETE ...)`: the CTE that ends the attempt's worker's lease on the couple.
fn push_release<'a>(
    q: &mut QueryBuilder<'a, Postgres>,
    run: &Run,
    couple: CoupleId,
    a: &JobAttempt,
) {
    q.push("released AS (DELETE FROM couple_leases WHERE run_id = ")
        .push_bind(run.id.0)
        .push(" AND couple_id = ")
        .push_bind(couple.0)
        .push(" AND owner = ")
        .push_bind(a.worker.clone())
        .push(")");
}

crate::tail::tail_methods!(PgCatalog);

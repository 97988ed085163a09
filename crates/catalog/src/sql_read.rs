//! The catalog's reads ([`crate::CatalogRead`]), one body of SQL for both backends: the
//! statements are written in the dialect both accept (`$N` placeholders, `CAST(... AS BIGINT)`
//! where PostgreSQL's `sum` would return `numeric`, `CASE` rather than `FILTER`), and
//! `read_methods!` implements the trait on each backend's pool.

pub(crate) const RUN_BY_NAME: &str =
    "SELECT id, name, settings, created_at FROM runs WHERE name = $1";
pub(crate) const LATEST_RUN: &str =
    "SELECT id, name, settings, created_at FROM runs ORDER BY id DESC LIMIT 1";
pub(crate) const CHECKPOINT: &str =
    "SELECT last_couple_id, enqueued, finished FROM producer_checkpoints WHERE run_id = $1";

/// The run's photos by state with their bytes, thumbnails and WebPs, by a scan.
pub(crate) const RECOUNT_STATES: &str =
    "SELECT coalesce(pp.state, 'pending'), count(*), CAST(coalesce(sum(p.bytes), 0) AS BIGINT),
            CAST(coalesce(sum(t.n), 0) AS BIGINT), CAST(coalesce(sum(t.b), 0) AS BIGINT),
            CAST(coalesce(sum(pp.webp_bytes), 0) AS BIGINT),
            count(pp.kept_reason),
            CAST(coalesce(sum(CASE WHEN pp.kept_reason IS NOT NULL THEN p.bytes ELSE 0 END), 0) AS BIGINT)
     FROM photos p
     LEFT JOIN (SELECT photo_id, count(*) AS n, sum(bytes) AS b FROM thumbnails GROUP BY photo_id) t
            ON t.photo_id = p.id
     LEFT JOIN photo_progress pp ON pp.run_id = $1 AND pp.photo_id = p.id
     GROUP BY 1";
pub(crate) const RECOUNT_FAILURES: &str =
    "SELECT failure_reason, count(*) FROM photo_progress WHERE run_id = $1 AND state = 'failed' GROUP BY 1";
pub(crate) const RECOUNT_KEPT: &str =
    "SELECT kept_reason, count(*) FROM photo_progress WHERE run_id = $1 AND kept_reason IS NOT NULL GROUP BY 1";
pub(crate) const RECOUNT_ATTEMPTS: &str = "SELECT (SELECT count(*) FROM couples) AS couples_total,
            count(*) AS attempts,
            count(DISTINCT CASE WHEN outcome = 'complete' THEN couple_id END) AS couples_complete,
            CAST(coalesce(sum(s3_get), 0) AS BIGINT) AS s3_get,
            CAST(coalesce(sum(s3_put), 0) AS BIGINT) AS s3_put,
            CAST(coalesce(sum(s3_delete_requests), 0) AS BIGINT) AS s3_delete_requests,
            CAST(coalesce(sum(s3_deleted_objects), 0) AS BIGINT) AS s3_deleted_objects,
            CAST(coalesce(sum(sqs_requests), 0) AS BIGINT) AS sqs_requests,
            CAST(coalesce(sum(db_statements), 0) AS BIGINT) AS db_statements,
            min(started_at) AS first_started, max(finished_at) AS last_finished
     FROM job_attempts WHERE run_id = $1";

pub(crate) const ALL_PROGRESS: &str =
    "SELECT photo_id, state, webp_key, webp_bytes, webp_crc32c, failure_reason
     FROM photo_progress WHERE run_id = $1 ORDER BY photo_id";

pub(crate) const RECOUNT_TOTALS: &str = "SELECT (SELECT count(DISTINCT couple_id) FROM photos),
            (SELECT count(*) FROM photos), (SELECT CAST(coalesce(sum(bytes), 0) AS BIGINT) FROM photos),
            (SELECT count(*) FROM thumbnails), (SELECT CAST(coalesce(sum(bytes), 0) AS BIGINT) FROM thumbnails),
            (SELECT CAST(coalesce(sum(width * height), 0) AS BIGINT) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL),
            (SELECT count(*) FROM photos WHERE width IS NOT NULL AND height IS NOT NULL)";

pub(crate) const SAMPLE_ALL: &str =
    "SELECT id, original_key, bytes, width, height FROM photos ORDER BY id";
pub(crate) const SAMPLE_AT: &str =
    "SELECT id, original_key, bytes, width, height FROM photos WHERE id >= $1 ORDER BY id LIMIT 1";

/// Attempts by bucket of $1 ms.
pub(crate) const ATTEMPT_SERIES: &str = "SELECT (finished_at / $1) * $1 AS b, count(*),
            CAST(sum(CASE WHEN outcome = 'retry' THEN 1 ELSE 0 END) AS BIGINT),
            CAST(sum(CASE WHEN outcome = 'complete' THEN photos ELSE 0 END) AS BIGINT),
            CAST(sum(s3_get) AS BIGINT), CAST(sum(s3_put) AS BIGINT),
            CAST(sum(s3_delete_requests) AS BIGINT), CAST(sum(s3_deleted_objects) AS BIGINT),
            CAST(sum(sqs_requests) AS BIGINT), CAST(sum(db_statements) AS BIGINT)
     FROM job_attempts WHERE run_id = $2 GROUP BY b ORDER BY b";

/// Photos first recorded and done by bucket of $1 ms.
pub(crate) const PROGRESS_SERIES: &str = "SELECT b, CAST(sum(recorded) AS BIGINT),
            CAST(sum(failed) AS BIGINT), CAST(sum(kept) AS BIGINT), CAST(sum(done) AS BIGINT) FROM (
         SELECT (created_at / $1) * $1 AS b, 1 AS recorded,
                CASE WHEN state = 'failed' THEN 1 ELSE 0 END AS failed,
                CASE WHEN kept_reason IS NOT NULL THEN 1 ELSE 0 END AS kept, 0 AS done
         FROM photo_progress WHERE run_id = $2
         UNION ALL
         SELECT (updated_at / $1) * $1, 0, 0, 0, 1
         FROM photo_progress WHERE run_id = $2 AND state = 'done'
     ) AS steps GROUP BY b ORDER BY b";

pub(crate) const WORKER_SPANS: &str =
    "SELECT worker, min(started_at), max(finished_at), count(*) FROM job_attempts
     WHERE run_id = $1 AND outcome <> 'producer' GROUP BY worker ORDER BY worker";

/// A page of photos ($1 after, $2 limit) with the run's ($3) progress and their thumbnails.
pub(crate) const AUDIT_PAGE: &str =
    "SELECT p.id, p.couple_id, p.original_key, coalesce(pp.state, 'pending'), pp.webp_key,
            pp.webp_bytes, pp.webp_crc32c, pp.kept_reason, pp.failure_reason, t.key
     FROM (SELECT id, couple_id, original_key FROM photos WHERE id > $1 ORDER BY id LIMIT $2) p
     LEFT JOIN photo_progress pp ON pp.run_id = $3 AND pp.photo_id = p.id
     LEFT JOIN thumbnails t ON t.photo_id = p.id
     ORDER BY p.id, t.key";

/// The attempts' totals of a run as `RECOUNT_ATTEMPTS` reads them.
#[derive(sqlx::FromRow)]
pub(crate) struct AttemptTotals {
    pub couples_total: i64,
    pub attempts: i64,
    pub couples_complete: i64,
    pub s3_get: i64,
    pub s3_put: i64,
    pub s3_delete_requests: i64,
    pub s3_deleted_objects: i64,
    pub sqs_requests: i64,
    pub db_statements: i64,
    pub first_started: Option<i64>,
    pub last_finished: Option<i64>,
}

impl AttemptTotals {
    /// Fills the attempt-derived part of a recounted status.
    pub(crate) fn apply(self, status: &mut crate::RunStatus) {
        let n = |v: i64| v as u64;
        status.couples_total = n(self.couples_total);
        status.attempts = n(self.attempts);
        status.couples_complete = n(self.couples_complete);
        status.requests = recast_core::TallySnapshot {
            s3_get: n(self.s3_get),
            s3_put: n(self.s3_put),
            s3_delete_requests: n(self.s3_delete_requests),
            s3_deleted_objects: n(self.s3_deleted_objects),
            sqs_requests: n(self.sqs_requests),
            db_statements: n(self.db_statements),
        };
        status.first_started_ms = self.first_started;
        status.last_finished_ms = self.last_finished;
    }
}

/// A run's row.
#[derive(sqlx::FromRow)]
pub(crate) struct RunRow {
    pub id: i64,
    pub name: String,
    pub settings: String,
    pub created_at: i64,
}

impl RunRow {
    pub(crate) fn into_run(self) -> Result<crate::Run, crate::CatalogError> {
        let settings = serde_json::from_str(&self.settings).map_err(|source| {
            crate::CatalogError::Settings {
                run: self.name.clone(),
                source,
            }
        })?;
        Ok(crate::Run {
            id: recast_core::RunId(self.id),
            name: self.name,
            settings,
            created_at_ms: self.created_at,
        })
    }
}

/// [`crate::CatalogRead`] for a backend with a `pool` field and a `close_pool` of its own (SQLite
/// folds its WAL back first).
macro_rules! read_methods {
    ($catalog:ty) => {
        #[async_trait::async_trait]
        impl crate::CatalogRead for $catalog {
            async fn run(&self, name: Option<&str>) -> Result<crate::Run, CatalogError> {
                let row: Option<crate::sql_read::RunRow> = match name {
                    Some(n) => {
                        sqlx::query_as(crate::sql_read::RUN_BY_NAME)
                            .bind(n)
                            .fetch_optional(&self.pool)
                            .await?
                    }
                    None => {
                        sqlx::query_as(crate::sql_read::LATEST_RUN)
                            .fetch_optional(&self.pool)
                            .await?
                    }
                };
                row.ok_or_else(|| CatalogError::NoSuchRun(name.unwrap_or("(latest)").to_owned()))?
                    .into_run()
            }

            async fn checkpoint(
                &self,
                run: &crate::Run,
            ) -> Result<crate::Checkpoint, CatalogError> {
                let row: Option<(i64, i64, i64)> = sqlx::query_as(crate::sql_read::CHECKPOINT)
                    .bind(run.id.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(
                    row.map_or_else(crate::Checkpoint::default, |(last, enqueued, finished)| {
                        crate::Checkpoint {
                            last_couple: Some(recast_core::CoupleId(last)),
                            enqueued: enqueued as u64,
                            finished: finished != 0,
                        }
                    }),
                )
            }

            async fn status(&self, run: &crate::Run) -> Result<crate::RunStatus, CatalogError> {
                self.counted_status(run).await
            }

            async fn recount(&self, run: &crate::Run) -> Result<crate::RunStatus, CatalogError> {
                use crate::sql_read as q;
                let mut status = crate::RunStatus {
                    run: run.name.clone(),
                    originals: run.settings.originals,
                    ..crate::RunStatus::default()
                };
                let rows: Vec<crate::rows::StateTuple> = sqlx::query_as(q::RECOUNT_STATES)
                    .bind(run.id.0)
                    .fetch_all(&self.pool)
                    .await?;
                status
                    .by_state
                    .extend(rows.into_iter().map(crate::rows::state_totals));
                for (into, sql) in [
                    (&mut status.failures, q::RECOUNT_FAILURES),
                    (&mut status.kept, q::RECOUNT_KEPT),
                ] {
                    let counts: Vec<(String, i64)> = sqlx::query_as(sql)
                        .bind(run.id.0)
                        .fetch_all(&self.pool)
                        .await?;
                    into.extend(counts.into_iter().map(|(r, n)| (r, n as u64)));
                }
                let attempts: q::AttemptTotals = sqlx::query_as(q::RECOUNT_ATTEMPTS)
                    .bind(run.id.0)
                    .fetch_one(&self.pool)
                    .await?;
                attempts.apply(&mut status);
                let cp = crate::CatalogRead::checkpoint(self, run).await?;
                status.couples_enqueued = cp.enqueued;
                status.producer_finished = cp.finished;
                status.oldest_unfinished_enqueued_ms = self.oldest_open(run).await?;
                status.sweep_blocked = crate::RunTail::sweep_blocked(self, run).await?;
                Ok(status)
            }

            async fn all_progress(
                &self,
                run: &crate::Run,
            ) -> Result<Vec<crate::ProgressRow>, CatalogError> {
                let rows: Vec<crate::rows::ProgressTuple> =
                    sqlx::query_as(crate::sql_read::ALL_PROGRESS)
                        .bind(run.id.0)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(crate::rows::progress_row).collect()
            }

            async fn budgets(&self, run_name: &str) -> Result<recast_core::Budgets, CatalogError> {
                self.fleet_budgets(run_name).await
            }

            async fn workers(
                &self,
                run_name: &str,
            ) -> Result<Vec<crate::WorkerInfo>, CatalogError> {
                self.fleet_workers(run_name).await
            }

            async fn samples(
                &self,
                run_name: &str,
            ) -> Result<Vec<crate::WorkerSample>, CatalogError> {
                self.fleet_samples(run_name).await
            }

            async fn totals(&self) -> Result<recast_core::CatalogTotals, CatalogError> {
                self.counted_totals().await
            }

            async fn recount_totals(&self) -> Result<recast_core::CatalogTotals, CatalogError> {
                let row: crate::rows::TotalsRow = sqlx::query_as(crate::sql_read::RECOUNT_TOTALS)
                    .fetch_one(&self.pool)
                    .await?;
                Ok(crate::rows::catalog_totals(row))
            }

            async fn sample_photos(
                &self,
                n: u32,
                seed: u64,
            ) -> Result<Vec<crate::SamplePhoto>, CatalogError> {
                use crate::rows::{sample_photo, sample_points, SampleRow};
                let (count, min, max): (i64, Option<i64>, Option<i64>) =
                    sqlx::query_as(crate::counters::PHOTO_ID_RANGE)
                        .fetch_one(&self.pool)
                        .await?;
                if count <= i64::from(n) {
                    let rows: Vec<SampleRow> = sqlx::query_as(crate::sql_read::SAMPLE_ALL)
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
                    let row: Option<SampleRow> = sqlx::query_as(crate::sql_read::SAMPLE_AT)
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
                run: &crate::Run,
                bucket_ms: i64,
            ) -> Result<Vec<crate::AttemptBucket>, CatalogError> {
                let rows: Vec<crate::rows::AttemptBucketRow> =
                    sqlx::query_as(crate::sql_read::ATTEMPT_SERIES)
                        .bind(bucket_ms.max(1))
                        .bind(run.id.0)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(crate::rows::attempt_bucket).collect())
            }

            async fn progress_series(
                &self,
                run: &crate::Run,
                bucket_ms: i64,
            ) -> Result<Vec<crate::ProgressBucket>, CatalogError> {
                let rows: Vec<crate::rows::ProgressBucketRow> =
                    sqlx::query_as(crate::sql_read::PROGRESS_SERIES)
                        .bind(bucket_ms.max(1))
                        .bind(run.id.0)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(crate::rows::progress_bucket).collect())
            }

            async fn worker_spans(
                &self,
                run: &crate::Run,
            ) -> Result<Vec<crate::WorkerSpan>, CatalogError> {
                let rows: Vec<(String, i64, i64, i64)> =
                    sqlx::query_as(crate::sql_read::WORKER_SPANS)
                        .bind(run.id.0)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(worker, first, last, n)| crate::WorkerSpan {
                        worker,
                        first_started_ms: first,
                        last_finished_ms: last,
                        attempts: n as u64,
                    })
                    .collect())
            }

            async fn audit_photos(
                &self,
                run: &crate::Run,
                after: Option<recast_core::PhotoId>,
                limit: u32,
            ) -> Result<Vec<crate::AuditPhoto>, CatalogError> {
                let rows: Vec<crate::rows::AuditRow> = sqlx::query_as(crate::sql_read::AUDIT_PAGE)
                    .bind(after.map_or(i64::MIN, |p| p.0))
                    .bind(i64::from(limit))
                    .bind(run.id.0)
                    .fetch_all(&self.pool)
                    .await?;
                crate::rows::group_audit(rows)
            }

            async fn export_page(
                &self,
                run: &crate::Run,
                after: i64,
                limit: u32,
            ) -> Result<Vec<crate::ExportRow>, CatalogError> {
                Ok(sqlx::query_as(crate::import::EXPORT_PAGE)
                    .bind(run.id.0)
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn close(&self) {
                self.close_pool().await
            }
        }
    };
}
pub(crate) use read_methods;

//! The catalog's writes and hot-path reads ([`crate::Catalog`]), one body of SQL for both
//! backends, in the dialect both accept. Only three statements truly differ and stay with their
//! backend as `dialect_*` methods: `record` (one data-modifying CTE on PostgreSQL, a transaction
//! of two or three statements on SQLite), `claim_sweep` (`FOR UPDATE SKIP LOCKED` against
//! `UPDATE ... RETURNING` under SQLite's single writer) and `heartbeat` (one CTE against three
//! statements).

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::JobAttempt;

pub(crate) const MAX_IDS: &str =
    "SELECT (SELECT coalesce(max(id), 0) FROM couples), (SELECT coalesce(max(id), 0) FROM photos)";
pub(crate) const ENSURE_RUN: &str =
    "INSERT INTO runs (name, settings, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING";
pub(crate) const SAVE_CHECKPOINT: &str =
    "INSERT INTO producer_checkpoints AS c (run_id, last_couple_id, enqueued, updated_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (run_id) DO UPDATE SET
       enqueued = CASE WHEN excluded.last_couple_id > c.last_couple_id
                       THEN c.enqueued + excluded.enqueued ELSE c.enqueued END,
       last_couple_id = CASE WHEN excluded.last_couple_id > c.last_couple_id
                             THEN excluded.last_couple_id ELSE c.last_couple_id END,
       updated_at = excluded.updated_at";
pub(crate) const FINISH_CHECKPOINT: &str =
    "INSERT INTO producer_checkpoints (run_id, last_couple_id, enqueued, finished, updated_at) VALUES ($1, 0, 0, 1, $2)
     ON CONFLICT (run_id) DO UPDATE SET finished = 1, updated_at = excluded.updated_at";
/// Couples after $1 (at most $2), with their photos and thumbnail keys.
pub(crate) const COUPLES_AFTER: &str = "SELECT c.id, p.id, p.original_key, t.key
     FROM (SELECT id FROM couples WHERE id > $1 ORDER BY id LIMIT $2) c
     LEFT JOIN photos p ON p.couple_id = c.id
     LEFT JOIN thumbnails t ON t.photo_id = p.id
     ORDER BY c.id, p.id, t.key";
pub(crate) const COUPLE_PHOTOS: &str = "SELECT p.couple_id, p.id, p.original_key, t.key
     FROM photos p LEFT JOIN thumbnails t ON t.photo_id = p.id
     WHERE p.couple_id = $1 ORDER BY p.id, t.key";
pub(crate) const PROGRESS: &str =
    "SELECT photo_id, state, webp_key, webp_bytes, webp_crc32c, failure_reason
     FROM photo_progress WHERE run_id = $1 AND couple_id = $2";
/// The head of the multi-row INSERT of progress rows (values by `push_progress_values`).
pub(crate) const INSERT_PROGRESS: &str =
    "INSERT INTO photo_progress AS pp (run_id, photo_id, couple_id, state, webp_key, webp_bytes,
         webp_crc32c, failure_reason, failure_detail, created_at, updated_at, kept_reason) ";
/// A photo recorded before (by a duplicate or an earlier attempt) keeps its row: the no-op
/// update only makes RETURNING report the state it is in.
pub(crate) const ON_PROGRESS_CONFLICT: &str =
    " ON CONFLICT (run_id, photo_id) DO UPDATE SET updated_at = pp.updated_at RETURNING photo_id, state";

/// The states a sweep has work for under the run's policy, as an SQL list.
pub(crate) fn sweepable_states(run: &crate::Run) -> &'static str {
    match run.settings.originals {
        recast_core::OriginalsPolicy::Keep => "'switched'",
        recast_core::OriginalsPolicy::Delete => "'switched', 'thumbs_gone'",
    }
}

/// Appends `INSERT INTO job_attempts ... VALUES (...)` for `a`, its statement count raised by
/// `own_statements` (those of the call that writes it).
pub(crate) fn push_attempt<'a, DB>(
    q: &mut QueryBuilder<'a, DB>,
    a: &JobAttempt,
    own_statements: u64,
) where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
{
    let r = a.requests;
    q.push(
        "INSERT INTO job_attempts (run_id, couple_id, worker, outcome, photos, s3_get, s3_put, s3_delete_requests,
                                   s3_deleted_objects, sqs_requests, db_statements, started_at, finished_at) ",
    );
    q.push_values([a], |mut b, a| {
        b.push_bind(a.run.0)
            .push_bind(a.couple.map(|c| c.0))
            .push_bind(a.worker.clone())
            .push_bind(a.outcome.as_str().to_owned())
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

/// [`crate::Catalog`] for a backend with a `pool` field of database `$db`, its `dialect_*`
/// methods, and `$seed_rows` rows per multi-row INSERT (its limit of bound values).
macro_rules! write_methods {
    ($catalog:ty, $db:ty, $seed_rows:expr) => {
        #[async_trait::async_trait]
        impl crate::Catalog for $catalog {
            async fn add_couples(&self, couples: &[crate::NewCouple]) -> Result<(), CatalogError> {
                let now = now_ms();
                let mut tx = self.pool.begin().await?;
                for chunk in couples.chunks($seed_rows) {
                    QueryBuilder::<$db>::new("INSERT INTO couples (id, created_at) ")
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
                for chunk in photos.chunks($seed_rows) {
                    QueryBuilder::<$db>::new(
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
                for chunk in thumbs.chunks($seed_rows) {
                    QueryBuilder::<$db>::new("INSERT INTO thumbnails (photo_id, key, bytes) ")
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

            async fn max_ids(
                &self,
            ) -> Result<(recast_core::CoupleId, recast_core::PhotoId), CatalogError> {
                let (c, p): (i64, i64) = sqlx::query_as(crate::sql_write::MAX_IDS)
                    .fetch_one(&self.pool)
                    .await?;
                Ok((recast_core::CoupleId(c), recast_core::PhotoId(p)))
            }

            async fn ensure_run(
                &self,
                name: &str,
                settings: &recast_core::RunSettings,
            ) -> Result<(crate::Run, bool), CatalogError> {
                let json = serde_json::to_string(settings).expect("settings serialise");
                let created = sqlx::query(crate::sql_write::ENSURE_RUN)
                    .bind(name)
                    .bind(json)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    == 1;
                Ok((crate::CatalogRead::run(self, Some(name)).await?, created))
            }

            async fn save_checkpoint(
                &self,
                run: &crate::Run,
                last: recast_core::CoupleId,
                added: u64,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                tally.db(1);
                sqlx::query(crate::sql_write::SAVE_CHECKPOINT)
                    .bind(run.id.0)
                    .bind(last.0)
                    .bind(added as i64)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn finish_checkpoint(&self, run: &crate::Run) -> Result<(), CatalogError> {
                sqlx::query(crate::sql_write::FINISH_CHECKPOINT)
                    .bind(run.id.0)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn couples_after(
                &self,
                after: Option<recast_core::CoupleId>,
                limit: u32,
                tally: &Tally,
            ) -> Result<Vec<crate::CoupleJob>, CatalogError> {
                tally.db(1);
                let rows: Vec<crate::rows::JobRow> =
                    sqlx::query_as(crate::sql_write::COUPLES_AFTER)
                        .bind(after.map_or(i64::MIN, |c| c.0))
                        .bind(i64::from(limit))
                        .fetch_all(&self.pool)
                        .await?;
                Ok(crate::rows::group_jobs(rows))
            }

            async fn couple_photos(
                &self,
                couple: recast_core::CoupleId,
                tally: &Tally,
            ) -> Result<Vec<recast_core::JobPhoto>, CatalogError> {
                tally.db(1);
                let rows: Vec<crate::rows::JobRow> =
                    sqlx::query_as(crate::sql_write::COUPLE_PHOTOS)
                        .bind(couple.0)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(crate::rows::group_jobs(rows)
                    .pop()
                    .map(|j| j.photos)
                    .unwrap_or_default())
            }

            async fn progress(
                &self,
                run: &crate::Run,
                couple: recast_core::CoupleId,
                tally: &Tally,
            ) -> Result<
                std::collections::HashMap<recast_core::PhotoId, crate::ProgressRow>,
                CatalogError,
            > {
                tally.db(1);
                let rows: Vec<crate::rows::ProgressTuple> =
                    sqlx::query_as(crate::sql_write::PROGRESS)
                        .bind(run.id.0)
                        .bind(couple.0)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter()
                    .map(crate::rows::progress_row)
                    .map(|r| r.map(|r| (r.photo, r)))
                    .collect()
            }

            async fn record(
                &self,
                run: &crate::Run,
                couple: recast_core::CoupleId,
                updates: &[crate::ProgressUpdate],
                attempt: Option<&crate::JobAttempt>,
                tally: &Tally,
            ) -> Result<
                std::collections::HashMap<recast_core::PhotoId, recast_core::PhotoState>,
                CatalogError,
            > {
                if updates.is_empty() && attempt.is_none() {
                    return Ok(std::collections::HashMap::new());
                }
                self.dialect_record(run, couple, updates, attempt, tally)
                    .await
            }

            async fn claim_sweep(
                &self,
                run: &crate::Run,
                owner: &str,
                max_photos: u32,
                lease: std::time::Duration,
                tally: &Tally,
            ) -> Result<Vec<crate::SweepItem>, CatalogError> {
                self.dialect_claim_sweep(run, owner, max_photos, lease, tally)
                    .await
            }

            async fn sweep_backlog(&self, run: &crate::Run, tally: &Tally) -> Result<u64, CatalogError> {
                tally.db(1);
                let (n,): (i64,) = sqlx::query_as(&format!(
                    "SELECT count(*) FROM photo_progress
                     WHERE run_id = $1 AND state IN ({}) AND sweep_blocked IS NULL",
                    crate::sql_write::sweepable_states(run)
                ))
                .bind(run.id.0)
                .fetch_one(&self.pool)
                .await?;
                Ok(n as u64)
            }

            async fn advance(
                &self,
                run: &crate::Run,
                moves: &[(recast_core::PhotoId, recast_core::PhotoState)],
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                if moves.is_empty() {
                    return Ok(());
                }
                tally.db(1);
                // VALUES' columns are column1, column2 on both databases.
                let mut q = QueryBuilder::<$db>::new(
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

            async fn record_attempt(
                &self,
                a: &crate::JobAttempt,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                tally.db(1);
                let mut q = QueryBuilder::<$db>::new("");
                crate::sql_write::push_attempt(&mut q, a, 1);
                q.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn repair_counters(&self, run: &crate::Run) -> Result<(), CatalogError> {
                self.repair_run_counters(run).await
            }

            async fn set_budgets(
                &self,
                run_name: &str,
                budgets: &recast_core::BudgetOverrides,
            ) -> Result<recast_core::Budgets, CatalogError> {
                self.fleet_set_budgets(run_name, budgets).await
            }

            async fn heartbeat(
                &self,
                beat: &crate::Heartbeat<'_>,
                tally: &Tally,
            ) -> Result<crate::FleetView, CatalogError> {
                self.dialect_heartbeat(beat, tally).await
            }

            async fn deregister(
                &self,
                beat: &crate::Heartbeat<'_>,
                reason: &str,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                self.fleet_deregister(beat, reason, tally).await
            }

            async fn lease_couple(
                &self,
                run: &crate::Run,
                couple: recast_core::CoupleId,
                owner: &str,
                lease: std::time::Duration,
                stale_after: std::time::Duration,
                tally: &Tally,
            ) -> Result<crate::Lease, CatalogError> {
                self.fleet_lease_couple(run, couple, owner, lease, stale_after, tally)
                    .await
            }

            async fn release_couple(
                &self,
                run: &crate::Run,
                couple: recast_core::CoupleId,
                owner: &str,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                self.fleet_release_couple(run, couple, owner, tally).await
            }
        }
    };
}
pub(crate) use write_methods;

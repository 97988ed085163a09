//! The fleet's tables — worker registry, budgets, samples and couple leases — in SQL that both
//! backends run as written (`$N` placeholders are positional in SQLite too). The heartbeat differs:
//! PostgreSQL folds its writes into one statement, SQLite runs them in one transaction.

use recast_core::{BudgetOverrides, Budgets};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{Heartbeat, WorkerSample};

/// Stores the budgets given; NULL (not given) keeps what is stored.
pub(crate) const SET_BUDGETS: &str =
    "INSERT INTO run_budgets (run_name, s3_deletes_per_min, s3_puts_per_sec, s3_gets_per_sec, max_in_flight, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (run_name) DO UPDATE SET
         s3_deletes_per_min = COALESCE(excluded.s3_deletes_per_min, run_budgets.s3_deletes_per_min),
         s3_puts_per_sec = COALESCE(excluded.s3_puts_per_sec, run_budgets.s3_puts_per_sec),
         s3_gets_per_sec = COALESCE(excluded.s3_gets_per_sec, run_budgets.s3_gets_per_sec),
         max_in_flight = COALESCE(excluded.max_in_flight, run_budgets.max_in_flight),
         updated_at = excluded.updated_at";

/// The live workers of a run other than one ($1 run, $2 worker, $3 stale cutoff) and the run's
/// stored budgets (NULLs when none are stored).
pub(crate) const FLEET_VIEW: &str = "SELECT (SELECT count(*) FROM workers
             WHERE run_name = $1 AND name <> $2 AND stopped_at IS NULL AND heartbeat_at >= $3),
            b.s3_deletes_per_min, b.s3_puts_per_sec, b.s3_gets_per_sec, b.max_in_flight
     FROM (SELECT 1 AS one) AS one LEFT JOIN run_budgets b ON b.run_name = $1";

pub(crate) const BUDGETS: &str =
    "SELECT s3_deletes_per_min, s3_puts_per_sec, s3_gets_per_sec, max_in_flight
     FROM run_budgets WHERE run_name = $1";

/// Registers a worker or renews its heartbeat ($1 run, $2 worker, $3 started, $4 now).
pub(crate) const BEAT: &str =
    "INSERT INTO workers (run_name, name, started_at, heartbeat_at) VALUES ($1, $2, $3, $4)
     ON CONFLICT (run_name, name) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
         stopped_at = NULL, stop_reason = NULL";

pub(crate) const DEREGISTER: &str =
    "UPDATE workers SET stopped_at = $3, heartbeat_at = $3, stop_reason = $4
     WHERE run_name = $1 AND name = $2";

pub(crate) const WORKERS: &str =
    "SELECT name, started_at, heartbeat_at, stopped_at, stop_reason FROM workers
     WHERE run_name = $1 ORDER BY name";

pub(crate) const SAMPLES: &str =
    "SELECT worker, at, interval_ms, jobs, photos, failed, bytes_in, bytes_out, s3_get, s3_put,
            s3_delete_requests, s3_deleted_objects, sqs_requests, db_statements, throttles,
            limiter_wait_ms, in_flight, concurrency
     FROM worker_samples WHERE run_name = $1 ORDER BY at, worker";

/// Takes a couple's lease ($1 run, $2 couple, $3 owner, $4 until, $5 now, $6 stale cutoff) if it
/// is free, ended, ours, or held by a worker that is gone; returns nothing when refused.
pub(crate) const LEASE: &str =
    "INSERT INTO couple_leases AS l (run_id, couple_id, owner, until) VALUES ($1, $2, $3, $4)
     ON CONFLICT (run_id, couple_id) DO UPDATE SET owner = excluded.owner, until = excluded.until
     WHERE l.until < $5 OR l.owner = excluded.owner
        OR NOT EXISTS (SELECT 1 FROM workers w WHERE w.name = l.owner AND w.stopped_at IS NULL
                       AND w.heartbeat_at >= $6)
     RETURNING owner, until";

pub(crate) const LEASE_HOLDER: &str =
    "SELECT owner, until FROM couple_leases WHERE run_id = $1 AND couple_id = $2";

pub(crate) const RELEASE: &str =
    "DELETE FROM couple_leases WHERE run_id = $1 AND couple_id = $2 AND owner = $3";

/// A row of [`SAMPLES`].
#[derive(sqlx::FromRow)]
pub(crate) struct SampleRow {
    worker: String,
    at: i64,
    interval_ms: i64,
    jobs: i64,
    photos: i64,
    failed: i64,
    bytes_in: i64,
    bytes_out: i64,
    s3_get: i64,
    s3_put: i64,
    s3_delete_requests: i64,
    s3_deleted_objects: i64,
    sqs_requests: i64,
    db_statements: i64,
    throttles: i64,
    limiter_wait_ms: i64,
    in_flight: i64,
    concurrency: i64,
}

pub(crate) fn sample_from(t: SampleRow) -> WorkerSample {
    let u = |v: i64| v.max(0) as u64;
    WorkerSample {
        worker: t.worker,
        at_ms: t.at,
        interval_ms: t.interval_ms,
        jobs: u(t.jobs),
        photos: u(t.photos),
        failed: u(t.failed),
        bytes_in: u(t.bytes_in),
        bytes_out: u(t.bytes_out),
        requests: recast_core::TallySnapshot {
            s3_get: u(t.s3_get),
            s3_put: u(t.s3_put),
            s3_delete_requests: u(t.s3_delete_requests),
            s3_deleted_objects: u(t.s3_deleted_objects),
            sqs_requests: u(t.sqs_requests),
            db_statements: u(t.db_statements),
        },
        throttles: u(t.throttles),
        limiter_wait_ms: u(t.limiter_wait_ms),
        in_flight: u(t.in_flight),
        concurrency: u(t.concurrency),
    }
}

/// A row of [`FLEET_VIEW`]: other live workers and the stored budgets.
pub(crate) type ViewTuple = (i64, Option<i64>, Option<i64>, Option<i64>, Option<i64>);

pub(crate) fn view_from(t: ViewTuple) -> crate::FleetView {
    crate::FleetView {
        live_workers: u32::try_from(t.0.max(0))
            .unwrap_or(u32::MAX)
            .saturating_add(1),
        budgets: stored_budgets(Some((t.1, t.2, t.3, t.4))),
    }
}

pub(crate) type BudgetTuple = (Option<i64>, Option<i64>, Option<i64>, Option<i64>);

pub(crate) fn stored_budgets(t: Option<BudgetTuple>) -> Budgets {
    let (d, p, g, f) = t.unwrap_or_default();
    let u = |v: Option<i64>| v.map(|v| v.max(0) as u64);
    BudgetOverrides {
        s3_deletes_per_min: u(d),
        s3_puts_per_sec: u(p),
        s3_gets_per_sec: u(g),
        max_in_flight: u(f),
    }
    .or_defaults()
}

/// Budgets as bound to [`SET_BUDGETS`].
pub(crate) fn budget_binds(b: &BudgetOverrides) -> [Option<i64>; 4] {
    let i = |v: Option<u64>| v.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
    [
        i(b.s3_deletes_per_min),
        i(b.s3_puts_per_sec),
        i(b.s3_gets_per_sec),
        i(b.max_in_flight),
    ]
}

/// An INSERT of the heartbeat's sample into `worker_samples`.
pub(crate) fn push_sample_insert<'a, DB>(
    q: &mut QueryBuilder<'a, DB>,
    beat: &Heartbeat<'_>,
    s: &WorkerSample,
) where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
{
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    q.push(
        "INSERT INTO worker_samples (run_name, worker, at, interval_ms, jobs, photos, failed, bytes_in,
             bytes_out, s3_get, s3_put, s3_delete_requests, s3_deleted_objects, sqs_requests,
             db_statements, throttles, limiter_wait_ms, in_flight, concurrency) ",
    );
    let r = &s.requests;
    q.push_values(std::iter::once(s), |mut b, s| {
        b.push_bind(beat.run_name.to_owned())
            .push_bind(beat.worker.to_owned())
            .push_bind(s.at_ms)
            .push_bind(s.interval_ms)
            .push_bind(i(s.jobs))
            .push_bind(i(s.photos))
            .push_bind(i(s.failed))
            .push_bind(i(s.bytes_in))
            .push_bind(i(s.bytes_out))
            .push_bind(i(r.s3_get))
            .push_bind(i(r.s3_put))
            .push_bind(i(r.s3_delete_requests))
            .push_bind(i(r.s3_deleted_objects))
            .push_bind(i(r.sqs_requests))
            .push_bind(i(r.db_statements))
            .push_bind(i(s.throttles))
            .push_bind(i(s.limiter_wait_ms))
            .push_bind(i(s.in_flight))
            .push_bind(i(s.concurrency));
    });
}

/// The fleet methods whose SQL is the same on both backends, as inherent methods of a catalog
/// with a `pool` field (`fleet_` + the trait method's name); the trait impls delegate to them.
macro_rules! shared_fleet_methods {
    ($catalog:ty) => {
        impl $catalog {
            pub(crate) async fn fleet_set_budgets(
                &self,
                run_name: &str,
                budgets: &recast_core::BudgetOverrides,
            ) -> Result<recast_core::Budgets, CatalogError> {
                let [d, p, g, f] = crate::fleet::budget_binds(budgets);
                sqlx::query(crate::fleet::SET_BUDGETS)
                    .bind(run_name)
                    .bind(d)
                    .bind(p)
                    .bind(g)
                    .bind(f)
                    .bind(now_ms())
                    .execute(&self.pool)
                    .await?;
                self.fleet_budgets(run_name).await
            }

            pub(crate) async fn fleet_budgets(
                &self,
                run_name: &str,
            ) -> Result<recast_core::Budgets, CatalogError> {
                let row: Option<crate::fleet::BudgetTuple> = sqlx::query_as(crate::fleet::BUDGETS)
                    .bind(run_name)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(crate::fleet::stored_budgets(row))
            }

            pub(crate) async fn fleet_deregister(
                &self,
                beat: &crate::Heartbeat<'_>,
                reason: &str,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                let mut tx = self.pool.begin().await?;
                if let Some(s) = beat.sample {
                    tally.db(1);
                    let mut q = QueryBuilder::new("");
                    crate::fleet::push_sample_insert(&mut q, beat, s);
                    q.build().execute(&mut *tx).await?;
                }
                tally.db(1);
                sqlx::query(crate::fleet::DEREGISTER)
                    .bind(beat.run_name)
                    .bind(beat.worker)
                    .bind(beat.now_ms)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            pub(crate) async fn fleet_workers(
                &self,
                run_name: &str,
            ) -> Result<Vec<crate::WorkerInfo>, CatalogError> {
                let rows: Vec<(String, i64, i64, Option<i64>, Option<String>)> =
                    sqlx::query_as(crate::fleet::WORKERS)
                        .bind(run_name)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows
                    .into_iter()
                    .map(|(name, started, beat, stopped, reason)| crate::WorkerInfo {
                        name,
                        started_at_ms: started,
                        heartbeat_at_ms: beat,
                        stopped_at_ms: stopped,
                        stop_reason: reason,
                    })
                    .collect())
            }

            pub(crate) async fn fleet_samples(
                &self,
                run_name: &str,
            ) -> Result<Vec<crate::WorkerSample>, CatalogError> {
                let rows: Vec<crate::fleet::SampleRow> = sqlx::query_as(crate::fleet::SAMPLES)
                    .bind(run_name)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(crate::fleet::sample_from).collect())
            }

            pub(crate) async fn fleet_lease_couple(
                &self,
                run: &Run,
                couple: CoupleId,
                owner: &str,
                lease: Duration,
                stale_after: Duration,
                tally: &Tally,
            ) -> Result<crate::Lease, CatalogError> {
                let now = now_ms();
                tally.db(1);
                let taken: Option<(String, i64)> = sqlx::query_as(crate::fleet::LEASE)
                    .bind(run.id.0)
                    .bind(couple.0)
                    .bind(owner)
                    .bind(now.saturating_add(lease.as_millis() as i64))
                    .bind(now)
                    .bind(now - stale_after.as_millis() as i64)
                    .fetch_optional(&self.pool)
                    .await?;
                if let Some((_, until_ms)) = taken {
                    return Ok(crate::Lease::Granted { until_ms });
                }
                tally.db(1);
                let holder: Option<(String, i64)> = sqlx::query_as(crate::fleet::LEASE_HOLDER)
                    .bind(run.id.0)
                    .bind(couple.0)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match holder {
                    Some((owner, until_ms)) => crate::Lease::HeldBy { owner, until_ms },
                    // Released between the two statements: ask again.
                    None => crate::Lease::HeldBy {
                        owner: String::new(),
                        until_ms: now,
                    },
                })
            }

            pub(crate) async fn fleet_release_couple(
                &self,
                run: &Run,
                couple: CoupleId,
                owner: &str,
                tally: &Tally,
            ) -> Result<(), CatalogError> {
                tally.db(1);
                sqlx::query(crate::fleet::RELEASE)
                    .bind(run.id.0)
                    .bind(couple.0)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
        }
    };
}
pub(crate) use shared_fleet_methods;

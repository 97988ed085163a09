//! The catalog on PostgreSQL: the fleet's shared database. The same semantics as SQLite; where
//! PostgreSQL can do a job's writes in one statement (data-modifying CTEs), it does.

use std::collections::HashMap;
use std::time::Duration;

use recast_core::{CoupleId, PhotoId, PhotoState, Tally};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres, QueryBuilder};

use crate::rows::{group_sweep, push_progress_values, state_of, SweepRow};
use crate::sql_write::{push_attempt, sweepable_states};
use crate::{
    now_ms, CatalogError, FleetView, Heartbeat, JobAttempt, ProgressUpdate, Run, SweepItem,
};

/// How long to wait for a pooled connection before the operation fails (and the job is retried).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long opening the catalog waits for the server to answer at all.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(8);
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
        check_answers(&options, url).await?;
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
        check_answers(&options, url).await?;
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

/// Connects once before the pool is built, so that a server that is down or a mistyped host or
/// port is named within seconds: the pool alone retries a refused connection for its whole
/// acquire timeout (30 s), then says only "pool timed out". A server that answers with an error
/// (a wrong password, no such database) gives that error as it is.
async fn check_answers(options: &PgConnectOptions, url: &str) -> Result<(), CatalogError> {
    use sqlx::Connection;
    let unreachable = |reason: String| CatalogError::Unreachable {
        url: redact_password(url),
        reason,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
            Ok(())
        }
        Ok(Err(e @ sqlx::Error::Database(_))) => Err(CatalogError::Database(e)),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
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

crate::fleet::shared_fleet_methods!(PgCatalog);
crate::counters::shared_counter_methods!(
    PgCatalog,
    "LOCK TABLE catalog_counters, run_state_counters, run_reason_counters, run_attempt_counters, run_complete_couples IN EXCLUSIVE MODE"
);

crate::import::shared_import_methods!(PgCatalog, crate::import_pg::PgUnit);

crate::sql_read::read_methods!(PgCatalog);
crate::sql_write::write_methods!(PgCatalog, Postgres, SEED_ROWS_PER_INSERT);

/// The statements PostgreSQL says its own way (see `sql_write`): each is one statement.
impl PgCatalog {
    /// The progress rows, the attempt and the end of the lease in one statement (data-modifying
    /// CTEs).
    async fn dialect_record(
        &self,
        run: &Run,
        couple: CoupleId,
        updates: &[ProgressUpdate],
        attempt: Option<&JobAttempt>,
        tally: &Tally,
    ) -> Result<HashMap<PhotoId, PhotoState>, CatalogError> {
        tally.db(1);
        let mut q = QueryBuilder::<Postgres>::new("");
        if !updates.is_empty() {
            q.push("WITH recorded AS (");
            q.push(crate::sql_write::INSERT_PROGRESS);
            push_progress_values(&mut q, run, couple, updates, now_ms());
            q.push(crate::sql_write::ON_PROGRESS_CONFLICT);
            q.push(")");
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
            let a = attempt.expect("record() calls with updates or an attempt");
            q.push("WITH ");
            push_release(&mut q, run, couple, a);
            q.push(" ");
            push_attempt(&mut q, a, 1);
            q.build().execute(&self.pool).await?;
            Ok(HashMap::new())
        }
    }

    /// Claims and reads in one statement; `SKIP LOCKED` lets concurrent sweepers take disjoint
    /// photos without waiting for each other.
    async fn dialect_claim_sweep(
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

    /// One statement: the beat and the sample ride on the read as data-modifying CTEs.
    async fn dialect_heartbeat(
        &self,
        beat: &Heartbeat<'_>,
        tally: &Tally,
    ) -> Result<FleetView, CatalogError> {
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

    async fn close_pool(&self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod server_tests {
    #[tokio::test]
    async fn postgres_catalog_reopens_without_migrating_and_keeps_its_data() {
        let url = crate::conformance::fresh_postgres().await;
        let catalog = super::PgCatalog::open(&url, 4).await.unwrap();
        crate::conformance::seed(&catalog).await;
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
        crate::conformance_fleet::read_only_reads_and_refuses_writes(&rw, &ro).await;
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

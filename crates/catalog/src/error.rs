#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("bad database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("database query failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("run {0:?} does not exist; create it with `recast launch`")]
    NoSuchRun(String),
    #[error("the settings stored for run {run:?} are unreadable: {source}")]
    Settings {
        run: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("catalog holds an impossible value: {0}")]
    Corrupt(String),
    #[error("the catalog cannot be read without writing to it: {0}")]
    SchemaNotCurrent(String),
}

impl CatalogError {
    /// Worth retrying later: the database may answer next time (connection or pool trouble, a
    /// serialization failure or deadlock, a busy or locked SQLite file). A constraint violation or
    /// any other error the database answered is permanent: retrying it would fail the same way.
    pub fn is_transient(&self) -> bool {
        match self {
            CatalogError::Database(e) => sqlx_is_transient(e),
            _ => false,
        }
    }

    /// The catalog was migrated by a newer recast than this one.
    pub fn is_too_new(&self) -> bool {
        matches!(
            self,
            CatalogError::Migrate(sqlx::migrate::MigrateError::VersionMissing(_))
        )
    }
}

/// SQLSTATEs of PostgreSQL worth a retry: serialization_failure, deadlock_detected,
/// statement_completion_unknown, lock_not_available, and the server going away or not yet
/// back: admin_shutdown (a restart's "terminating connection due to administrator command"),
/// crash_shutdown, cannot_connect_now (still starting), too_many_connections. Besides these,
/// every connection_exception (class 08) is retried.
const PG_RETRYABLE: [&str; 8] = [
    "40001", "40P01", "40003", "55P03", "57P01", "57P02", "57P03", "53300",
];
/// SQLite's primary result codes worth a retry: SQLITE_BUSY, SQLITE_LOCKED.
const SQLITE_RETRYABLE: [i32; 2] = [5, 6];

/// Whether an sqlx error may pass by itself. A query in flight when PostgreSQL restarts gets
/// the server's own error (57P01), not an I/O error: taking it for permanent would dead-letter
/// a job for a restart the fault suite makes on purpose.
fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| {
            // SQLite extended codes (e.g. 517, SQLITE_BUSY_SNAPSHOT) carry the primary code in
            // their low byte.
            PG_RETRYABLE.contains(&c.as_ref())
                || c.starts_with("08")
                || c.parse::<i32>()
                    .is_ok_and(|n| SQLITE_RETRYABLE.contains(&(n & 0xff)))
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_constraint_violation_is_permanent_and_a_busy_file_is_not() {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .unwrap();
        let dup = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&pool)
            .await
            .unwrap_err();
        assert!(!CatalogError::Database(dup).is_transient());
        assert!(CatalogError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!CatalogError::NoSuchRun("x".into()).is_transient());
    }

    /// What a job sees when PostgreSQL restarts under its query: the server's own error, which
    /// must be retried, while an error in the query itself must not be.
    #[tokio::test]
    async fn a_query_cut_by_a_postgres_shutdown_is_transient_and_a_bad_query_is_not() {
        use sqlx::Connection;
        let url = crate::conformance::fresh_postgres().await;
        let mut victim = sqlx::PgConnection::connect(&url).await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut victim)
            .await
            .unwrap();
        let bad = sqlx::query("SELECT * FROM no_such_table")
            .execute(&mut victim)
            .await
            .unwrap_err();
        assert!(!CatalogError::Database(bad).is_transient());

        let sleeping = tokio::spawn(async move {
            sqlx::query("SELECT pg_sleep(30)")
                .execute(&mut victim)
                .await
                .map(|_| ())
        });
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let started = std::time::Instant::now();
        loop {
            let active: Option<bool> =
                sqlx::query_scalar("SELECT state = 'active' FROM pg_stat_activity WHERE pid = $1")
                    .bind(pid)
                    .fetch_optional(&mut admin)
                    .await
                    .unwrap();
            if active == Some(true) {
                break;
            }
            assert!(started.elapsed().as_secs() < 10, "the query never started");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        // What a restart (pg_ctl restart -m fast) does to every backend.
        sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut admin)
            .await
            .unwrap();
        let cut = sleeping.await.unwrap().unwrap_err();
        let code = cut
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        assert_eq!(code.as_deref(), Some("57P01"), "{cut}");
        let err = CatalogError::Database(cut);
        assert!(err.is_transient(), "{err}");
    }
}

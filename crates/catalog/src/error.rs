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

/// SQLSTATEs of PostgreSQL worth a retry: serialization_failure, deadlock_detected.
const PG_RETRYABLE: [&str; 2] = ["40001", "40P01"];
/// SQLite's primary result codes worth a retry: SQLITE_BUSY, SQLITE_LOCKED.
const SQLITE_RETRYABLE: [i32; 2] = [5, 6];

/// Whether an sqlx error may pass by itself.
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
}

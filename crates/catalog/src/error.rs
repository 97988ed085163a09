#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("bad database URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("database query failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database at {url} does not answer ({reason}); check the host and port in --db, and that PostgreSQL is running")]
    Unreachable { url: String, reason: String },
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
            CatalogError::Unreachable { .. } => true,
            _ => false,
        }
    }

    /// The database refuses this kind of statement whoever sends it, not this job's: it is
    /// read-only (a replica, a demoted writer), the role lacks a privilege, the disk is full, the
    /// database or a table is gone, the schema is not this recast's. Not transient, and not the
    /// message's fault either: a worker meeting it must stop rather than dead-letter every
    /// message it receives.
    pub fn is_database_wide(&self) -> bool {
        match self {
            CatalogError::Database(e) => sqlx_is_database_wide(e),
            CatalogError::Migrate(_) | CatalogError::SchemaNotCurrent(_) => true,
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

/// SQLSTATEs of PostgreSQL that refuse every such statement, not this one's data:
/// read_only_sql_transaction, insufficient_privilege, undefined_table, undefined_column,
/// undefined_function, disk_full, invalid_catalog_name (no such database), database_dropped.
/// Besides these, every invalid_authorization (class 28).
const PG_DATABASE_WIDE: [&str; 8] = [
    "25006", "42501", "42P01", "42703", "42883", "53100", "3D000", "57P04",
];
/// SQLite's primary result codes of the same kind: SQLITE_PERM, SQLITE_READONLY, SQLITE_IOERR,
/// SQLITE_CORRUPT, SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB.
const SQLITE_DATABASE_WIDE: [i32; 7] = [3, 8, 10, 11, 13, 14, 26];

/// A database's own error code, told apart by the driver that answered: SQLSTATEs and SQLite's
/// numeric codes overlap (22021, an invalid byte sequence, has SQLite's SQLITE_BUSY, 5, in its
/// low byte), so a code is never read without knowing whose it is.
enum Code {
    Postgres(String),
    /// The primary result code: extended codes (517, SQLITE_BUSY_SNAPSHOT) carry it in their
    /// low byte.
    Sqlite(i32),
}

fn code(e: &sqlx::Error) -> Option<Code> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        Some(Code::Postgres(pg.code().to_owned()))
    } else if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        db.code()?
            .parse::<i32>()
            .ok()
            .map(|n| Code::Sqlite(n & 0xff))
    } else {
        None
    }
}

fn sqlx_is_database_wide(e: &sqlx::Error) -> bool {
    match code(e) {
        Some(Code::Postgres(c)) => PG_DATABASE_WIDE.contains(&c.as_str()) || c.starts_with("28"),
        Some(Code::Sqlite(n)) => SQLITE_DATABASE_WIDE.contains(&n),
        None => false,
    }
}

/// Whether an sqlx error may pass by itself. A query in flight when PostgreSQL restarts gets
/// the server's own error (57P01), not an I/O error: taking it for permanent would dead-letter
/// a job for a restart the fault suite makes on purpose.
fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        _ => match code(e) {
            Some(Code::Postgres(c)) => PG_RETRYABLE.contains(&c.as_str()) || c.starts_with("08"),
            Some(Code::Sqlite(n)) => SQLITE_RETRYABLE.contains(&n),
            None => false,
        },
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
        let dup = CatalogError::Database(dup);
        assert!(!dup.is_transient());
        assert!(!dup.is_database_wide(), "a row's conflict is that row's");
        assert!(CatalogError::Database(sqlx::Error::PoolTimedOut).is_transient());
        assert!(!CatalogError::NoSuchRun("x".into()).is_transient());
        assert!(!CatalogError::NoSuchRun("x".into()).is_database_wide());
    }

    /// A catalog file opened read-only refuses every write: no job can get past that.
    #[tokio::test]
    async fn a_read_only_sqlite_file_refuses_database_wide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let rw = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=rwc", path.display()))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&rw)
            .await
            .unwrap();
        rw.close().await;
        let ro = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", path.display()))
            .await
            .unwrap();
        let refused = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&ro)
            .await
            .unwrap_err();
        let refused = CatalogError::Database(refused);
        assert!(refused.is_database_wide(), "{refused}");
        assert!(!refused.is_transient(), "{refused}");
    }

    /// PostgreSQL's refusals of every such statement (a read-only server, a missing privilege, a
    /// missing table) against one about its data (a malformed value).
    #[tokio::test]
    async fn postgres_refusals_of_every_statement_are_database_wide() {
        use sqlx::Connection;
        let url = crate::conformance::fresh_postgres().await;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("CREATE TABLE t (id BIGINT PRIMARY KEY)")
            .execute(&mut conn)
            .await
            .unwrap();
        let role = format!("recast_nobody_{:08x}", fastrand::u32(..));
        sqlx::query(&format!("CREATE ROLE {role} LOGIN"))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut nobody_url = url::Url::parse(&url).unwrap();
        nobody_url.set_username(&role).unwrap();
        let mut nobody = sqlx::PgConnection::connect(nobody_url.as_str())
            .await
            .unwrap();
        let denied = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut nobody)
            .await
            .unwrap_err();
        sqlx::query("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
            .execute(&mut conn)
            .await
            .unwrap();
        let read_only = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut conn)
            .await
            .unwrap_err();
        let missing = sqlx::query("SELECT * FROM no_such_table")
            .execute(&mut conn)
            .await
            .unwrap_err();
        for (err, code) in [(denied, "42501"), (read_only, "25006"), (missing, "42P01")] {
            assert_eq!(pg_code(&err).as_deref(), Some(code), "{err}");
            let err = CatalogError::Database(err);
            assert!(err.is_database_wide(), "{err}");
            assert!(!err.is_transient(), "{err}");
        }
        let malformed = sqlx::query("SELECT 'x'::bigint")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(pg_code(&malformed).as_deref(), Some("22P02"));
        let malformed = CatalogError::Database(malformed);
        assert!(!malformed.is_database_wide() && !malformed.is_transient());
        // 22021's low byte is SQLite's SQLITE_BUSY: read as a SQLite code it would be retried.
        let bad_bytes = sqlx::query("SELECT convert_from('\\xff'::bytea, 'UTF8')")
            .execute(&mut conn)
            .await
            .unwrap_err();
        assert_eq!(pg_code(&bad_bytes).as_deref(), Some("22021"), "{bad_bytes}");
        let bad_bytes = CatalogError::Database(bad_bytes);
        assert!(!bad_bytes.is_transient() && !bad_bytes.is_database_wide());
    }

    fn pg_code(e: &sqlx::Error) -> Option<String> {
        e.as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned())
    }

    /// What a job sees when PostgreSQL restarts under its query: the server's own error, which
    /// must be retried.
    #[tokio::test]
    async fn a_query_cut_by_a_postgres_shutdown_is_transient() {
        use sqlx::Connection;
        let url = crate::conformance::fresh_postgres().await;
        let mut victim = sqlx::PgConnection::connect(&url).await.unwrap();
        let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
            .fetch_one(&mut victim)
            .await
            .unwrap();
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
        assert_eq!(pg_code(&cut).as_deref(), Some("57P01"), "{cut}");
        let err = CatalogError::Database(cut);
        assert!(err.is_transient(), "{err}");
    }
}

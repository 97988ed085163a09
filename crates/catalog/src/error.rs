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
    /// Worth retrying later: the database may be back (connection, pool or lock trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            CatalogError::Database(e) => matches!(
                e,
                sqlx::Error::Io(_)
                    | sqlx::Error::PoolTimedOut
                    | sqlx::Error::PoolClosed
                    | sqlx::Error::WorkerCrashed
                    | sqlx::Error::Database(_)
            ),
            _ => false,
        }
    }
}

//! The catalog (couples, photos, thumbnails) and the progress ledger of runs.
//!
//! [`Catalog`] is the one narrow trait; [`open`] picks a backend by URL and applies its migrations.
//! Backends: SQLite (`sqlite://path`) and PostgreSQL (`postgres://...`).

mod catalog;
mod counters;
#[cfg(test)]
mod counters_race;
mod error;
mod fleet;
mod import;
mod import_pg;
mod import_unit;
mod model;
#[cfg(test)]
mod outcome_names;
mod postgres;
mod read;
mod reporting;
mod rows;
mod schema;
mod sql_read;
mod sql_write;
mod sqlite;
mod status;
mod tail;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance_counters;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance_fleet;
pub mod conformance_import;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance_open;

pub use catalog::Catalog;
pub use error::CatalogError;
pub use import::{
    CatalogImport, ExportRow, ImportCheckpoint, ImportResolved, ObjectKind, StagedObject,
};
pub use import_unit::{BatchAdded, ImportUnit};
pub use model::{
    Checkpoint, CoupleJob, FleetView, Heartbeat, JobAttempt, Lease, NewCouple, NewPhoto,
    NewThumbnail, ProgressRow, ProgressUpdate, Run, SweepItem, WebpRecord, WorkerInfo,
    WorkerSample,
};
pub use postgres::PgCatalog;
pub use read::CatalogRead;
pub use reporting::{AttemptBucket, AuditPhoto, ProgressBucket, SamplePhoto, WorkerSpan};
pub use sqlite::SqliteCatalog;
pub use status::{RunStatus, StateTotals};
pub use tail::{queue_identity, RunTail};

use std::sync::Arc;

/// Opens the catalog a URL names (`sqlite://path/catalog.db`), creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Catalog>, CatalogError> {
    open_with(url, DEFAULT_POOL_SIZE).await
}

/// Connections per process when not told otherwise.
pub const DEFAULT_POOL_SIZE: u32 = 8;

/// Opens the catalog with at most `pool_size` connections (PostgreSQL; SQLite uses a few of its own).
pub async fn open_with(url: &str, pool_size: u32) -> Result<Arc<dyn Catalog>, CatalogError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteCatalog::open(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgCatalog::open(url, pool_size).await?));
    }
    Err(CatalogError::BadUrl {
        url: url.to_owned(),
        reason: "unknown database URL; expected sqlite://PATH or postgres://...".to_owned(),
    })
}

/// Opens an existing catalog for reading only: no file or table is created, no migration runs and
/// every write fails (SQLite `mode=ro`; PostgreSQL sessions with `default_transaction_read_only`).
/// For `status`, `plan`, `report`, `verify` and `export`, which must change nothing: the handle
/// is a [`CatalogRead`], so a writing method cannot even be called. The schema must be up to date.
pub async fn open_read_only(url: &str) -> Result<Arc<dyn CatalogRead>, CatalogError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteCatalog::open_read_only(url).await?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Arc::new(PgCatalog::open_read_only(url).await?));
    }
    Err(CatalogError::BadUrl {
        url: url.to_owned(),
        reason: "unknown database URL; expected sqlite://PATH or postgres://...".to_owned(),
    })
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

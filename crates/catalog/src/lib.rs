//! The catalog (couples, photos, thumbnails) and the progress ledger of runs.
//!
//! [`Catalog`] is the one narrow trait; [`open`] picks a backend by URL and applies its migrations.
//! Backends: SQLite (`sqlite://path`).

mod catalog;
mod error;
mod model;
mod sqlite;
mod status;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use catalog::Catalog;
pub use error::CatalogError;
pub use model::{
    Checkpoint, CoupleJob, JobAttempt, NewCouple, NewPhoto, NewThumbnail, ProgressRow,
    ProgressUpdate, Run, WebpRecord,
};
pub use sqlite::SqliteCatalog;
pub use status::{RunStatus, StateTotals};

use std::sync::Arc;

/// Opens the catalog a URL names (`sqlite://path/catalog.db`), creating and migrating it as needed.
pub async fn open(url: &str) -> Result<Arc<dyn Catalog>, CatalogError> {
    if url.starts_with("sqlite:") {
        return Ok(Arc::new(SqliteCatalog::open(url).await?));
    }
    Err(CatalogError::BadUrl {
        url: url.to_owned(),
        reason: "unknown database URL; expected sqlite://PATH".to_owned(),
    })
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

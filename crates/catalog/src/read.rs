//! The catalog's reading role: everything `status`, `plan`, `report`, `verify` and `export` need,
//! and nothing that writes. [`crate::open_read_only`] returns only this trait, so a read-only verb
//! that calls a writing method does not compile.

use std::fmt::Debug;

use async_trait::async_trait;
use recast_core::{Budgets, CatalogTotals, PhotoId};

use crate::{
    AttemptBucket, AuditPhoto, CatalogError, Checkpoint, ExportRow, ProgressBucket, ProgressRow,
    Run, RunStatus, SamplePhoto, WorkerInfo, WorkerSample, WorkerSpan,
};

/// Reads of the catalog. Reads for operators (`plan`, `report`, `verify`, `export`) are not on
/// the hot path, so they take no tally.
#[async_trait]
pub trait CatalogRead: Send + Sync + Debug {
    /// Totals of a run for `status` and `demo`, read from counters the writes keep (a few rows,
    /// whatever the catalog's size): equal to [`CatalogRead::recount`] unless the counters drifted.
    async fn status(&self, run: &Run) -> Result<RunStatus, CatalogError>;

    /// The same totals as [`CatalogRead::status`] by a full scan of photos, thumbnails, progress and
    /// attempts: the reference the counters are checked against (`status --recount`).
    async fn recount(&self, run: &Run) -> Result<RunStatus, CatalogError>;

    /// Every progress row of the run, for audits and tests (not for the hot path).
    async fn all_progress(&self, run: &Run) -> Result<Vec<ProgressRow>, CatalogError>;

    /// The run's budgets: those stored, the defaults for the others.
    async fn budgets(&self, run_name: &str) -> Result<Budgets, CatalogError>;

    /// Every worker ever registered for the run, by name.
    async fn workers(&self, run_name: &str) -> Result<Vec<WorkerInfo>, CatalogError>;

    /// The run's worker samples, oldest first.
    async fn samples(&self, run_name: &str) -> Result<Vec<WorkerSample>, CatalogError>;

    /// What the catalog holds, whatever any run did: `plan` predicts a run over all of it. Read
    /// from counters (a few rows).
    async fn totals(&self) -> Result<CatalogTotals, CatalogError>;

    /// The same totals as [`CatalogRead::totals`] by a full scan.
    async fn recount_totals(&self) -> Result<CatalogTotals, CatalogError>;

    /// Up to `n` distinct photos picked at random, the same ones for the same `seed`: points drawn
    /// uniformly over the photo ids, each taking the first photo at or after it (one indexed
    /// statement per point), so a photo after a gap in the ids is a little more likely. Fewer
    /// than `n` photos only when the catalog holds fewer.
    async fn sample_photos(&self, n: u32, seed: u64) -> Result<Vec<SamplePhoto>, CatalogError>;

    /// The run's job attempts summed by the bucket of `bucket_ms` their finish falls in, in time
    /// order (buckets without attempts are absent).
    async fn attempt_series(
        &self,
        run: &Run,
        bucket_ms: i64,
    ) -> Result<Vec<AttemptBucket>, CatalogError>;

    /// The run's photos by bucket of `bucket_ms`: first recorded (by `created_at`) and done (by
    /// the `updated_at` of the move to done), in time order.
    async fn progress_series(
        &self,
        run: &Run,
        bucket_ms: i64,
    ) -> Result<Vec<ProgressBucket>, CatalogError>;

    /// Each worker's first start and last finish among the run's attempts (the producer's
    /// excluded), by worker name.
    async fn worker_spans(&self, run: &Run) -> Result<Vec<WorkerSpan>, CatalogError>;

    /// Up to `limit` photos of the catalog with an id above `after`, in id order, with their keys
    /// and what the run recorded for them (one statement).
    async fn audit_photos(
        &self,
        run: &Run,
        after: Option<PhotoId>,
        limit: u32,
    ) -> Result<Vec<AuditPhoto>, CatalogError>;

    /// Closes the connections and waits for them. On SQLite the last connection to close
    /// checkpoints the WAL into the main file and removes the `-wal` and `-shm` files, so that a
    /// catalog no process has open is one self-contained file, which a read-only reader can then
    /// read without touching anything ([`crate::open_read_only`]). Later calls fail.
    async fn close(&self);

    /// The run of that name, or the most recent run when `name` is `None`.
    async fn run(&self, name: Option<&str>) -> Result<Run, CatalogError>;

    async fn checkpoint(&self, run: &Run) -> Result<Checkpoint, CatalogError>;

    /// Up to `limit` photos with an internal id above `after`, in id order, with what `run`
    /// recorded for them, by the app's ids (one statement): a page of `recast export`.
    async fn export_page(
        &self,
        run: &Run,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ExportRow>, CatalogError>;
}

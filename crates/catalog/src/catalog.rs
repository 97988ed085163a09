use std::collections::HashMap;
use std::fmt::Debug;

use async_trait::async_trait;
use std::time::Duration;

use recast_core::{
    BudgetOverrides, Budgets, CatalogTotals, CoupleId, JobPhoto, PhotoId, PhotoState, RunSettings,
    Tally,
};

use crate::{
    AttemptBucket, AuditPhoto, CatalogError, Checkpoint, CoupleJob, FleetView, Heartbeat,
    JobAttempt, Lease, NewCouple, ProgressBucket, ProgressRow, ProgressUpdate, Run, RunStatus,
    SamplePhoto, SweepItem, WorkerInfo, WorkerSample, WorkerSpan,
};

/// The catalog and the progress ledger.
///
/// Contract, the same for every backend:
/// - Every method that takes a [`Tally`] adds to it the SQL statements it executed, so that the
///   cost of a job in database work is counted exactly.
/// - Progress only moves forward along [`PhotoState::may_become`]: a write that would move a photo
///   backwards (a late or duplicate worker) changes nothing, and the states returned say what the
///   catalog holds afterwards. Writes are idempotent.
/// - A run's settings are frozen when it is created; `ensure_run` on an existing run returns the
///   stored settings, whatever it is passed.
#[async_trait]
pub trait Catalog: crate::RunTail + crate::CatalogImport + Send + Sync + Debug {
    /// Adds couples with their photos and thumbnails, in one transaction.
    async fn add_couples(&self, couples: &[NewCouple]) -> Result<(), CatalogError>;

    /// The highest couple and photo ids in use (0 when empty), to choose ids for new ones.
    async fn max_ids(&self) -> Result<(CoupleId, PhotoId), CatalogError>;

    /// Creates the run with these settings, or returns it as stored if it exists.
    async fn ensure_run(
        &self,
        name: &str,
        settings: &RunSettings,
    ) -> Result<(Run, bool), CatalogError>;

    /// The run of that name, or the most recent run when `name` is `None`.
    async fn run(&self, name: Option<&str>) -> Result<Run, CatalogError>;

    async fn checkpoint(&self, run: &Run) -> Result<Checkpoint, CatalogError>;

    /// Records that every couple up to `last` is enqueued (`added` more than before).
    async fn save_checkpoint(
        &self,
        run: &Run,
        last: CoupleId,
        added: u64,
        tally: &Tally,
    ) -> Result<(), CatalogError>;

    /// Marks the producer finished: every couple of the catalog is enqueued.
    async fn finish_checkpoint(&self, run: &Run) -> Result<(), CatalogError>;

    /// Up to `limit` couples with an id above `after`, in id order, with their photos and thumbnail
    /// keys (one statement).
    async fn couples_after(
        &self,
        after: Option<CoupleId>,
        limit: u32,
        tally: &Tally,
    ) -> Result<Vec<CoupleJob>, CatalogError>;

    /// The photos of one couple with their thumbnail keys (one statement).
    async fn couple_photos(
        &self,
        couple: CoupleId,
        tally: &Tally,
    ) -> Result<Vec<JobPhoto>, CatalogError>;

    /// What the run has recorded for a couple's photos; a photo absent from the map is pending.
    async fn progress(
        &self,
        run: &Run,
        couple: CoupleId,
        tally: &Tally,
    ) -> Result<HashMap<PhotoId, ProgressRow>, CatalogError>;

    /// Records switched and failed photos in one multi-row write, and returns the state each of
    /// them is in afterwards: a photo another worker recorded first keeps its state. With an
    /// `attempt`, the job's attempt row is written by the same statement where the backend can
    /// (PostgreSQL), so that a job costs the database one statement; its counts should already
    /// include that statement. Recording a couple's attempt also ends its worker's lease on the
    /// couple (see [`Catalog::lease_couple`]).
    async fn record(
        &self,
        run: &Run,
        couple: CoupleId,
        updates: &[ProgressUpdate],
        attempt: Option<&JobAttempt>,
        tally: &Tally,
    ) -> Result<HashMap<PhotoId, PhotoState>, CatalogError>;

    /// Claims up to `max_photos` photos of the run that have something left to delete (`switched`,
    /// or `thumbs_gone` under the delete policy), in photo order, for `lease`: photos under a live
    /// claim (another owner's, or `owner`'s own) are skipped; photos whose lease ended are taken.
    /// Returns them with their original and thumbnail keys.
    async fn claim_sweep(
        &self,
        run: &Run,
        owner: &str,
        max_photos: u32,
        lease: std::time::Duration,
        tally: &Tally,
    ) -> Result<Vec<SweepItem>, CatalogError>;

    /// How many photos of the run still have something to delete, whoever has claimed them.
    async fn sweep_backlog(&self, run: &Run, tally: &Tally) -> Result<u64, CatalogError>;

    /// Moves photos forward after deletions (one multi-row statement); each pair is the photo and
    /// its new state. A move that is not forward is ignored.
    async fn advance(
        &self,
        run: &Run,
        moves: &[(PhotoId, PhotoState)],
        tally: &Tally,
    ) -> Result<(), CatalogError>;

    /// Appends a job attempt with its request counts (its own statement counted in).
    async fn record_attempt(&self, attempt: &JobAttempt, tally: &Tally)
        -> Result<(), CatalogError>;

    /// Totals of a run for `status` and `demo`, read from counters the writes keep (a few rows,
    /// whatever the catalog's size): equal to [`Catalog::recount`] unless the counters drifted.
    async fn status(&self, run: &Run) -> Result<RunStatus, CatalogError>;

    /// The same totals as [`Catalog::status`] by a full scan of photos, thumbnails, progress and
    /// attempts: the reference the counters are checked against (`status --recount`).
    async fn recount(&self, run: &Run) -> Result<RunStatus, CatalogError>;

    /// Rewrites the catalog's counters and the run's from a full scan, in one transaction that
    /// holds concurrent writers until it ends (their counts then add on top of the scan's).
    async fn repair_counters(&self, run: &Run) -> Result<(), CatalogError>;

    /// Every progress row of the run, for audits and tests (not for the hot path).
    async fn all_progress(&self, run: &Run) -> Result<Vec<ProgressRow>, CatalogError>;

    /// Stores the budgets given for the run (the others stay as they were) and returns the run's
    /// budgets.
    async fn set_budgets(
        &self,
        run_name: &str,
        budgets: &BudgetOverrides,
    ) -> Result<Budgets, CatalogError>;

    /// The run's budgets: those stored, the defaults for the others.
    async fn budgets(&self, run_name: &str) -> Result<Budgets, CatalogError>;

    /// Registers the worker or renews its heartbeat, stores its sample, and returns the live
    /// workers of the run (itself included) and the run's budgets.
    async fn heartbeat(
        &self,
        beat: &Heartbeat<'_>,
        tally: &Tally,
    ) -> Result<FleetView, CatalogError>;

    /// Marks the worker stopped (it no longer counts as live), with its last sample.
    async fn deregister(
        &self,
        beat: &Heartbeat<'_>,
        reason: &str,
        tally: &Tally,
    ) -> Result<(), CatalogError>;

    /// Every worker ever registered for the run, by name.
    async fn workers(&self, run_name: &str) -> Result<Vec<WorkerInfo>, CatalogError>;

    /// The run's worker samples, oldest first.
    async fn samples(&self, run_name: &str) -> Result<Vec<WorkerSample>, CatalogError>;

    /// Takes (or renews) the lease of `owner` on a couple of the run until `lease` from now. A
    /// lease held by another worker is taken over only once it has ended or its owner is gone
    /// (deregistered, or no heartbeat within `stale_after`). One statement unless refused.
    async fn lease_couple(
        &self,
        run: &Run,
        couple: CoupleId,
        owner: &str,
        lease: Duration,
        stale_after: Duration,
        tally: &Tally,
    ) -> Result<Lease, CatalogError>;

    /// Ends `owner`'s lease on a couple (nothing happens if it does not hold it).
    async fn release_couple(
        &self,
        run: &Run,
        couple: CoupleId,
        owner: &str,
        tally: &Tally,
    ) -> Result<(), CatalogError>;

    // Operators' reports (`plan`, `report`, `verify`): reads only, not on the hot path, so they
    // take no tally. They work on a catalog opened read-only ([`crate::open_read_only`]).

    /// What the catalog holds, whatever any run did: `plan` predicts a run over all of it. Read
    /// from counters (a few rows).
    async fn totals(&self) -> Result<CatalogTotals, CatalogError>;

    /// The same totals as [`Catalog::totals`] by a full scan.
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
}

//! The job runner: receives one message per couple, migrates the couple's photos along the state
//! machine of `recast_core`, records progress in batches, and deletes only what the catalog says is
//! switched (through the sweeper, which batches deletions across jobs).

mod budgeted;
mod counting;
mod cpu;
mod error;
mod events;
mod fleet;
mod heartbeat;
mod job;
mod limiter;
mod progress;
mod redact;
mod runner;
mod settle;
mod sweep;

pub use counting::CountingStore;
pub use cpu::{CpuPool, PoolUse};
pub use error::JobError;
pub use fleet::FleetSettings;
pub use job::conversion_options;
pub use progress::Progress;
pub use redact::{redact_id, set_log_ids_in_clear};
pub use runner::{
    Worker, WorkerConfig, WorkerSummary, DEFAULT_CONCURRENCY, DEFAULT_PHOTO_PARALLELISM,
    DEFAULT_RECORD_BATCH, DEFAULT_SWEEP_MAX_WAIT,
};

/// Milliseconds since the Unix epoch, as the catalog records time.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

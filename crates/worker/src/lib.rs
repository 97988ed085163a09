//! The job runner: receives one message per couple, migrates the couple's photos along the state
//! machine of `recast_core`, records progress in batches, and deletes only what the catalog says is
//! switched.

mod counting;
mod cpu;
mod error;
mod heartbeat;
mod job;
mod progress;
mod redact;
mod runner;

pub use counting::CountingStore;
pub use cpu::CpuPool;
pub use error::JobError;
pub use progress::Progress;
pub use redact::{redact_id, set_log_ids_in_clear};
pub use runner::{Worker, WorkerConfig, WorkerSummary};

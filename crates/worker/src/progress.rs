use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters shared by the workers of one process, read by progress bars.
#[derive(Debug, Default)]
pub struct Progress {
    pub jobs_completed: AtomicU64,
    pub jobs_retried: AtomicU64,
    pub jobs_dead_lettered: AtomicU64,
    pub photos_converted: AtomicU64,
    pub photos_failed: AtomicU64,
    pub photos_finished: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

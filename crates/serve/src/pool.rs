//! The bounded CPU pool: at most `threads` renders run at once, at most `queue` more wait; past
//! that a request is refused at once (the server answers 503 with Retry-After) instead of
//! waiting in a queue that grows latency without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::metrics as m;

/// The pool was full: the caller should answer 503.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("server is at capacity (every CPU slot busy and the queue full); retry shortly")]
pub struct Overloaded;

#[derive(Debug)]
pub struct CpuPool {
    running: Arc<Semaphore>,
    /// Renders admitted and not yet finished (running + waiting).
    admitted: AtomicUsize,
    capacity: usize,
}

struct Admission<'p>(&'p CpuPool);

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let depth = self.0.admitted.fetch_sub(1, Ordering::AcqRel) - 1;
        metrics::gauge!(m::QUEUE_DEPTH).set(depth as f64);
    }
}

impl CpuPool {
    pub fn new(threads: usize, queue: usize) -> CpuPool {
        let threads = threads.max(1);
        CpuPool {
            running: Arc::new(Semaphore::new(threads)),
            admitted: AtomicUsize::new(0),
            capacity: threads + queue,
        }
    }

    /// Runs `f` on a blocking thread once a slot is free, or refuses at once when full.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Overloaded> {
        let depth = self.admitted.fetch_add(1, Ordering::AcqRel) + 1;
        let admission = Admission(self);
        if depth > self.capacity {
            return Err(Overloaded);
        }
        metrics::gauge!(m::QUEUE_DEPTH).set(depth as f64);
        let _slot = self
            .running
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let out = tokio::task::spawn_blocking(f)
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        drop(admission);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn refuses_past_its_capacity_and_recovers() {
        let pool = Arc::new(CpuPool::new(1, 1));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let rx = Arc::new(std::sync::Mutex::new(rx));
        let mut held = Vec::new();
        for _ in 0..2 {
            let (pool, rx) = (pool.clone(), rx.clone());
            held.push(tokio::spawn(async move {
                pool.run(move || rx.lock().unwrap().recv().unwrap()).await
            }));
        }
        // Wait until both are admitted (one running, one queued).
        while pool.admitted.load(Ordering::Acquire) < 2 {
            tokio::task::yield_now().await;
        }
        assert!(pool.run(|| ()).await.is_err(), "a third render is refused");
        tx.send(()).unwrap();
        tx.send(()).unwrap();
        for h in held {
            assert!(h.await.unwrap().is_ok());
        }
        assert!(pool.run(|| ()).await.is_ok());
    }
}

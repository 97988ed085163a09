use std::sync::Arc;

use tokio::sync::Semaphore;

/// A bounded pool for CPU work (decode + encode): at most `threads` closures run at once, on
/// tokio's blocking threads, while the async tasks of other photos go on with their I/O. One pool
/// is shared by every worker of a process so that the cores are never oversubscribed.
#[derive(Debug, Clone)]
pub struct CpuPool {
    permits: Arc<Semaphore>,
    threads: usize,
}

impl CpuPool {
    pub fn new(threads: usize) -> CpuPool {
        let threads = threads.max(1);
        CpuPool {
            permits: Arc::new(Semaphore::new(threads)),
            threads,
        }
    }

    /// One thread per core the process may use.
    pub fn per_core() -> CpuPool {
        CpuPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f` on the pool once a thread is free.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        match tokio::task::spawn_blocking(f).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

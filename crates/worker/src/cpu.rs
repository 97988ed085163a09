use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Photos held per CPU thread at most, from their GET to the end of their conversion: one
/// converting and one fetched ahead, so a thread never waits for a GET while the memory held
/// stays bounded by the cores, not by the jobs in flight (`--concurrency`).
const IN_HAND_PER_THREAD: usize = 2;

/// Pixels of the images converted at once, per CPU thread, in thousands. A conversion holds about
/// 3.3 bytes a pixel at its peak (the decoded RGB, handed to libwebp's YUV planes in strips), 6.5
/// with `--target-score` (the source and a try's decoded WebP), so two threads' 32 MP stay within
/// some 210 MB; ordinary 2-12 MP photos never wait for it, while an
/// image larger than the whole budget (a 60 MP scan) is converted alone, not beside another.
const KILOPIXELS_PER_THREAD: usize = 16_000;

type Task = Box<dyn FnOnce() + Send>;

/// A bounded pool for CPU work (decode + encode): `threads` long-lived OS threads, shared by
/// every worker of a process so that the cores are never oversubscribed, while the async tasks
/// of other photos go on with their I/O.
///
/// The threads are the pool's own rather than tokio's blocking threads: each thread that
/// decodes a photo keeps its allocator arena, sized for the largest photo it has held, and
/// tokio's blocking pool grows new threads (new arenas) whenever the ones it has are busy.
#[derive(Debug, Clone)]
pub struct CpuPool {
    tasks: mpsc::Sender<Task>,
    in_hand: Arc<Semaphore>,
    /// Kilopixels of the images being converted (see [`KILOPIXELS_PER_THREAD`]).
    pixels: Arc<Semaphore>,
    threads: usize,
    /// Nanoseconds the threads have spent running tasks, all threads together.
    busy_ns: Arc<AtomicU64>,
    created: Instant,
}

/// How busy a pool's threads were since it was made: what a process's conversions could not
/// have done faster on these threads is the time they sat waiting for work.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolUse {
    pub threads: usize,
    pub elapsed: Duration,
    /// Time spent running tasks, all threads together.
    pub busy: Duration,
}

impl PoolUse {
    /// Share of the threads' time spent running tasks (1.0: never waited for work).
    pub fn busy_share(&self) -> f64 {
        self.busy.as_secs_f64() / (self.threads as f64 * self.elapsed.as_secs_f64()).max(1e-9)
    }

    /// Thread time spent waiting for work, all threads together.
    pub fn starved(&self) -> Duration {
        (self.elapsed * self.threads as u32).saturating_sub(self.busy)
    }
}

impl CpuPool {
    pub fn new(threads: usize) -> CpuPool {
        let threads = threads.max(1);
        let (tasks, receiver) = mpsc::channel::<Task>();
        let receiver = Arc::new(Mutex::new(receiver));
        let busy_ns = Arc::new(AtomicU64::new(0));
        for n in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("recast-cpu-{n}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next task, not while it runs.
                    let next = receiver.lock().map(|r| r.recv());
                    match next {
                        Ok(Ok(task)) => task(),
                        // Every sender is gone: the pool was dropped.
                        _ => break,
                    }
                })
                .expect("the OS starts a thread");
        }
        CpuPool {
            tasks,
            in_hand: Arc::new(Semaphore::new(threads * IN_HAND_PER_THREAD)),
            pixels: Arc::new(Semaphore::new(threads * KILOPIXELS_PER_THREAD)),
            threads,
            busy_ns,
            created: Instant::now(),
        }
    }

    /// One thread per core the process may use.
    pub fn per_core() -> CpuPool {
        CpuPool::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// How busy the threads have been since the pool was made (tasks under way not counted).
    pub fn usage(&self) -> PoolUse {
        PoolUse {
            threads: self.threads,
            elapsed: self.created.elapsed(),
            busy: Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed)),
        }
    }

    /// A place for one photo in hand: taken before its GET, given back (dropped) once its
    /// conversion is done. Waits while the pool's threads already have as many as they can use.
    pub async fn reserve(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.in_hand)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed")
    }

    /// Runs `f`, the conversion of an image of `pixels` (from its header; 0 when unknown), once the
    /// pool's pixel budget has room for it and a thread is free. An image larger than the budget
    /// waits until nothing else is being converted, and holds the whole budget while it is. The
    /// budget is fair (first come, first served), so a large image is not passed over forever.
    pub async fn run_image<T: Send + 'static>(
        &self,
        pixels: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let budget = self.threads * KILOPIXELS_PER_THREAD;
        let weight = ((pixels / 1_000) as usize).clamp(1, budget) as u32;
        let _room = Arc::clone(&self.pixels)
            .acquire_many_owned(weight)
            .await
            .expect("the pool's semaphore is never closed");
        self.run(f).await
    }

    /// Runs `f` on the pool once a thread is free; a panic in `f` resumes in the caller.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = oneshot::channel();
        let busy_ns = Arc::clone(&self.busy_ns);
        let task: Task = Box::new(move || {
            let started = Instant::now();
            let out = catch_unwind(AssertUnwindSafe(f));
            // Counted before the result is sent, so that a caller reading the pool's usage
            // after its task sees it.
            busy_ns.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
            // The caller may have gone (a drained job); its result is then dropped.
            let _ = done.send(out);
        });
        self.tasks
            .send(task)
            .expect("the pool's threads run as long as the pool");
        match result.await.expect("every task sends its result") {
            Ok(v) => v,
            Err(panic) => resume_unwind(panic),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Barrier};

    use super::CpuPool;

    /// Runs `n` conversions of `pixels` at once and returns how many ran at the same time, at most.
    async fn most_at_once(pool: &CpuPool, sizes: &[u64]) -> usize {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs = sizes.iter().map(|&pixels| {
            let (running, most) = (running.clone(), most.clone());
            pool.run_image(pixels, move || {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(50));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        });
        futures::future::join_all(jobs).await;
        let usage = pool.usage();
        assert!(
            usage.busy >= std::time::Duration::from_millis(50) * sizes.len() as u32,
            "{usage:?}"
        );
        most.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn photos_of_ordinary_size_are_converted_side_by_side() {
        let pool = CpuPool::new(2);
        // Both must be inside the closure at once for either to pass the barrier.
        let barrier = Arc::new(Barrier::new(2));
        let jobs = (0..2).map(|_| {
            let barrier = barrier.clone();
            pool.run_image(5_000_000, move || {
                barrier.wait();
            })
        });
        futures::future::join_all(jobs).await;
    }

    #[tokio::test]
    async fn an_image_larger_than_the_pixel_budget_is_converted_alone() {
        let pool = CpuPool::new(2);
        let budget = 2 * super::KILOPIXELS_PER_THREAD as u64 * 1_000;
        assert_eq!(
            most_at_once(&pool, &[budget + 1, budget * 2, 60_000_000]).await,
            1
        );
        // Nor beside a small one, before or after it.
        assert_eq!(
            most_at_once(&pool, &[3_000_000, budget + 1, 3_000_000]).await,
            1
        );
    }
}

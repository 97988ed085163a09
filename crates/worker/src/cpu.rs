use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Photos held per CPU thread at most, from their GET to the end of their conversion: one
/// converting and one fetched ahead, so a thread never waits for a GET while the memory held
/// stays bounded by the cores, not by the jobs in flight (`--concurrency`).
const IN_HAND_PER_THREAD: usize = 2;

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
    threads: usize,
}

impl CpuPool {
    pub fn new(threads: usize) -> CpuPool {
        let threads = threads.max(1);
        let (tasks, receiver) = mpsc::channel::<Task>();
        let receiver = Arc::new(Mutex::new(receiver));
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

    /// A place for one photo in hand: taken before its GET, given back (dropped) once its
    /// conversion is done. Waits while the pool's threads already have as many as they can use.
    pub async fn reserve(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.in_hand)
            .acquire_owned()
            .await
            .expect("the pool's semaphore is never closed")
    }

    /// Runs `f` on the pool once a thread is free; a panic in `f` resumes in the caller.
    pub async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (done, result) = oneshot::channel();
        let task: Task = Box::new(move || {
            // The caller may have gone (a drained job); its result is then dropped.
            let _ = done.send(catch_unwind(AssertUnwindSafe(f)));
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

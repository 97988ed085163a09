//! Request coalescing: identical concurrent renders (same source checksum, size and format) are
//! computed once; the others wait for that result. Nothing is kept after the render ends (the
//! CDN is the cache).

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::metrics as m;

#[derive(Debug)]
pub struct Coalescer<V> {
    in_flight: Mutex<HashMap<String, Arc<OnceCell<V>>>>,
}

/// Removes the leader's entry however its request ends (even if the client went away).
struct Leader<'c, V> {
    coalescer: &'c Coalescer<V>,
    key: &'c str,
    cell: Arc<OnceCell<V>>,
}

impl<V> Drop for Leader<'_, V> {
    fn drop(&mut self) {
        let mut map = self.coalescer.in_flight.lock().expect("not poisoned");
        if map
            .get(self.key)
            .is_some_and(|c| Arc::ptr_eq(c, &self.cell))
        {
            map.remove(self.key);
        }
    }
}

impl<V: Clone> Default for Coalescer<V> {
    fn default() -> Self {
        Coalescer {
            in_flight: Mutex::new(HashMap::new()),
        }
    }
}

impl<V: Clone> Coalescer<V> {
    /// The value of `compute` for `key`, shared with every concurrent caller of the same key;
    /// `true` when this caller joined another's computation.
    pub async fn run<F: Future<Output = V>>(&self, key: &str, compute: F) -> (V, bool) {
        let (cell, joined) = {
            let mut map = self.in_flight.lock().expect("not poisoned");
            match map.get(key) {
                Some(cell) => (cell.clone(), true),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    map.insert(key.to_owned(), cell.clone());
                    (cell, false)
                }
            }
        };
        let _leader = (!joined).then(|| Leader {
            coalescer: self,
            key,
            cell: cell.clone(),
        });
        if joined {
            metrics::counter!(m::COALESCED).increment(1);
        }
        // If the leader is cancelled before it finishes, a waiter's `compute` runs instead.
        let value = cell.get_or_init(|| compute).await.clone();
        (value, joined)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.in_flight.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn identical_concurrent_calls_compute_once() {
        let c = Coalescer::<u32>::default();
        let runs = AtomicUsize::new(0);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let slow = async {
            runs.fetch_add(1, Ordering::SeqCst);
            rx.await.unwrap();
            7
        };
        let fast = async {
            runs.fetch_add(1, Ordering::SeqCst);
            8
        };
        let release = async {
            tokio::task::yield_now().await;
            tx.send(()).unwrap();
        };
        let ((a, a_joined), (b, b_joined), ()) =
            tokio::join!(c.run("k", slow), c.run("k", fast), release);
        assert_eq!((a, b), (7, 7));
        assert_eq!((a_joined, b_joined), (false, true));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(c.len(), 0, "nothing is kept once the render ends");
        let (again, joined) = c.run("k", async { 9 }).await;
        assert_eq!((again, joined), (9, false));
    }
}

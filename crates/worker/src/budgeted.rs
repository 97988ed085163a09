//! The worker's store: every request waits for its budget's token bucket first, and a throttling
//! answer cuts that budget's rate — the final answer of a request, and also every attempt the
//! store saw throttled inside its client's retries (so the worker slows down while a request is
//! still retrying, not only after it gave up). Requests are counted in the metrics by operation and
//! result.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use recast_store::{DeleteOutcome, ObjectMeta, ObjectStore, StoreError, ThrottledAttempts};

use crate::events::Event;
use crate::fleet::{Budget, Fleet};

#[derive(Debug)]
pub(crate) struct BudgetedStore {
    inner: Arc<dyn ObjectStore>,
    fleet: Arc<Fleet>,
    /// The store's throttled-attempt totals when last looked at.
    seen: Mutex<ThrottledAttempts>,
}

impl BudgetedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, fleet: Arc<Fleet>) -> BudgetedStore {
        let seen = Mutex::new(inner.throttled_attempts());
        BudgetedStore { inner, fleet, seen }
    }

    /// Cuts each budget whose requests were answered "slow down" on some attempt since the last
    /// look, including attempts the client retried by itself. Looked at before and after every
    /// request, so concurrent requests see one another's throttles.
    fn absorb_throttled_attempts(&self) {
        let now = self.inner.throttled_attempts();
        let before = std::mem::replace(&mut *self.seen.lock().expect("seen lock"), now);
        for (budget, op, n) in [
            (Budget::Gets, "get", now.gets.saturating_sub(before.gets)),
            (Budget::Puts, "put", now.puts.saturating_sub(before.puts)),
            (
                Budget::Deletes,
                "delete_objects",
                now.deletes.saturating_sub(before.deletes),
            ),
        ] {
            if n > 0 {
                self.fleet
                    .events()
                    .record(Event::ThrottledAttempts { op, attempts: n });
                self.fleet.throttled(budget);
            }
        }
    }

    fn observe<T>(&self, op: &'static str, budget: Budget, r: &Result<T, StoreError>) {
        self.absorb_throttled_attempts();
        let result = match r {
            Ok(_) => "ok",
            Err(e) if e.is_throttling() => "throttled",
            Err(e) if e.is_not_found() => "not_found",
            Err(_) => "error",
        };
        self.fleet.events().record(Event::Request {
            service: "s3",
            op,
            result,
        });
        if matches!(r, Err(e) if e.is_throttling()) {
            self.fleet.throttled(budget);
        }
    }
}

#[async_trait]
impl ObjectStore for BudgetedStore {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.absorb_throttled_attempts();
        self.fleet.spend(Budget::Gets, 1).await;
        let r = self.inner.get(key).await;
        self.observe("get", Budget::Gets, &r);
        r
    }

    async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError> {
        self.absorb_throttled_attempts();
        self.fleet.spend(Budget::Puts, 1).await;
        let r = self.inner.put(key, body, crc32c).await;
        self.observe("put", Budget::Puts, &r);
        r
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        if keys.is_empty() {
            return Ok(DeleteOutcome::default());
        }
        self.absorb_throttled_attempts();
        self.fleet
            .spend(
                Budget::Deletes,
                u32::try_from(keys.len()).unwrap_or(u32::MAX),
            )
            .await;
        let r = self.inner.delete_many(keys).await;
        self.observe("delete_objects", Budget::Deletes, &r);
        if let Ok(outcome) = &r {
            let deleted = keys.len() - outcome.failed.len();
            self.fleet
                .events()
                .record(Event::ObjectsDeleted(deleted as u64));
            if outcome.failed.iter().any(|(_, e)| e.is_throttling()) {
                self.fleet.throttled(Budget::Deletes);
            }
        }
        r
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list_page(prefix, start_after, max).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::fleet::FleetSettings;

    /// A real local store that answers SlowDown to its next `n` requests: S3 throttling cannot be
    /// provoked on demand from a test server, so the fault wraps the real thing.
    #[derive(Debug)]
    struct SlowDown {
        inner: Arc<dyn ObjectStore>,
        n: AtomicU32,
    }

    impl SlowDown {
        fn check(&self, key: &str) -> Result<(), StoreError> {
            let throttle = self
                .n
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok();
            if throttle {
                Err(StoreError::Throttled { key: key.into() })
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl ObjectStore for SlowDown {
        async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
            self.check(key)?;
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError> {
            self.check(key)?;
            self.inner.put(key, body, crc32c).await
        }
        async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
            self.check(&keys[0])?;
            self.inner.delete_many(keys).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
            self.inner.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
            self.inner.list(prefix).await
        }
    }

    #[tokio::test]
    async fn slow_down_halves_the_rate_and_quiet_seconds_bring_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let local = recast_store::open(&format!("file://{}/store", dir.path().display()))
            .await
            .unwrap();
        let catalog = recast_catalog::open(&format!("sqlite://{}/c.db", dir.path().display()))
            .await
            .unwrap();
        let settings = FleetSettings {
            budgets: recast_core::BudgetOverrides {
                s3_puts_per_sec: Some(200),
                ..Default::default()
            },
            ..Default::default()
        };
        let fleet = Arc::new(Fleet::new("t".into(), settings, catalog, 4));
        let faulty = Arc::new(SlowDown {
            inner: local,
            n: AtomicU32::new(1),
        });
        let store = BudgetedStore::new(faulty, fleet.clone());
        let body = Bytes::from_static(b"webp");
        let crc = recast_store::crc32c(&body);
        assert!((fleet.puts.rate() - 200.0).abs() < 1e-6);
        let err = store.put("a.webp", body.clone(), crc).await.unwrap_err();
        assert!(err.is_throttling());
        assert!(
            (fleet.puts.rate() - 100.0).abs() < 1e-6,
            "{}",
            fleet.puts.rate()
        );
        // The retry goes through, at the lower rate.
        store.put("a.webp", body, crc).await.unwrap();
        assert_eq!(store.get("a.webp").await.unwrap().as_ref(), b"webp");
        for _ in 0..10 {
            fleet.tick();
        }
        assert!(
            (fleet.puts.rate() - 200.0).abs() < 1e-6,
            "{}",
            fleet.puts.rate()
        );
    }

    /// A real local store whose client "retried" two throttled attempts inside each PUT that
    /// finally succeeded, as the S3 store's interceptor reports them.
    #[derive(Debug)]
    struct RetriedInside {
        inner: Arc<dyn ObjectStore>,
        attempts: std::sync::Mutex<ThrottledAttempts>,
    }

    #[async_trait]
    impl ObjectStore for RetriedInside {
        async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
            self.inner.get(key).await
        }
        async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError> {
            self.attempts.lock().unwrap().puts += 2;
            self.inner.put(key, body, crc32c).await
        }
        async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
            self.inner.delete_many(keys).await
        }
        async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
            self.inner.head(key).await
        }
        async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
            self.inner.list(prefix).await
        }
        fn throttled_attempts(&self) -> ThrottledAttempts {
            *self.attempts.lock().unwrap()
        }
    }

    #[tokio::test]
    async fn throttled_attempts_inside_a_successful_request_cut_the_rate() {
        let dir = tempfile::tempdir().unwrap();
        let local = recast_store::open(&format!("file://{}/store", dir.path().display()))
            .await
            .unwrap();
        let catalog = recast_catalog::open(&format!("sqlite://{}/c.db", dir.path().display()))
            .await
            .unwrap();
        let settings = FleetSettings {
            budgets: recast_core::BudgetOverrides {
                s3_puts_per_sec: Some(200),
                s3_gets_per_sec: Some(200),
                ..Default::default()
            },
            ..Default::default()
        };
        let fleet = Arc::new(Fleet::new("t".into(), settings, catalog, 4));
        let store = BudgetedStore::new(
            Arc::new(RetriedInside {
                inner: local,
                attempts: Default::default(),
            }),
            fleet.clone(),
        );
        let body = Bytes::from_static(b"webp");
        store
            .put("a.webp", body.clone(), recast_store::crc32c(&body))
            .await
            .unwrap();
        assert!(
            (fleet.puts.rate() - 100.0).abs() < 1e-6,
            "{}",
            fleet.puts.rate()
        );
        // Only the budget whose requests were throttled is cut.
        assert!((fleet.gets.rate() - 200.0).abs() < 1e-6);
    }
}

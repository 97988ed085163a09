//! The worker's store: every request waits for its budget's token bucket first, and a throttling
//! answer cuts that budget's rate. Requests are counted in the metrics by operation and result.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use recast_store::{DeleteOutcome, ObjectMeta, ObjectStore, StoreError};

use crate::fleet::{Budget, Fleet};

#[derive(Debug)]
pub(crate) struct BudgetedStore {
    inner: Arc<dyn ObjectStore>,
    fleet: Arc<Fleet>,
}

impl BudgetedStore {
    pub fn new(inner: Arc<dyn ObjectStore>, fleet: Arc<Fleet>) -> BudgetedStore {
        BudgetedStore { inner, fleet }
    }

    fn observe<T>(&self, op: &'static str, budget: Budget, r: &Result<T, StoreError>) {
        let result = match r {
            Ok(_) => "ok",
            Err(e) if e.is_throttling() => "throttled",
            Err(e) if e.is_not_found() => "not_found",
            Err(_) => "error",
        };
        metrics::counter!("recast_requests_total", "service" => "s3", "op" => op, "result" => result)
            .increment(1);
        if matches!(r, Err(e) if e.is_throttling()) {
            self.fleet.throttled(budget);
        }
    }
}

#[async_trait]
impl ObjectStore for BudgetedStore {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.fleet.spend(Budget::Gets, 1).await;
        let r = self.inner.get(key).await;
        self.observe("get", Budget::Gets, &r);
        r
    }

    async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError> {
        self.fleet.spend(Budget::Puts, 1).await;
        let r = self.inner.put(key, body, crc32c).await;
        self.observe("put", Budget::Puts, &r);
        r
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        if keys.is_empty() {
            return Ok(DeleteOutcome::default());
        }
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
            metrics::counter!("recast_s3_deleted_objects_total").increment(deleted as u64);
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
}

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use recast_core::Tally;
use recast_store::{DeleteOutcome, ObjectMeta, ObjectStore, StoreError};

/// Counts every request made through it into a job's [`Tally`], whatever its outcome.
#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    tally: Arc<Tally>,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>, tally: Arc<Tally>) -> CountingStore {
        CountingStore { inner, tally }
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        self.tally.s3_get();
        self.inner.get(key).await
    }

    async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError> {
        self.tally.s3_put();
        self.inner.put(key, body, crc32c).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        if keys.is_empty() {
            return Ok(DeleteOutcome::default());
        }
        self.tally.s3_delete(keys.len() as u64);
        self.inner.delete_many(keys).await
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

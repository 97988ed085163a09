use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;

use crate::{StoreError, ThrottledAttempts};

/// The most keys one [`ObjectStore::delete_many`] call takes (S3's DeleteObjects limit).
pub const MAX_DELETE_BATCH: usize = 1000;

/// The CRC32C (Castagnoli) checksum of a body, the integrity checksum every PUT carries.
pub fn crc32c(body: &[u8]) -> u32 {
    crc32c::crc32c(body)
}

/// What [`ObjectStore::head`] knows of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
}

/// The result of a batch delete, key by key: a key in `failed` was not deleted and must be retried.
#[derive(Debug, Default)]
pub struct DeleteOutcome {
    pub deleted: Vec<String>,
    pub failed: Vec<(String, StoreError)>,
}

/// A flat key → bytes store.
///
/// Contract, the same for every backend:
/// - Keys are non-empty UTF-8 strings without NUL, not starting with `/`, with no `.` or `..`
///   segment; other keys are refused with [`StoreError::InvalidKey`] before any I/O.
/// - `put` is atomic: a reader sees the old object, or the whole new one, never a part. The store
///   verifies the body against the given CRC32C and refuses it ([`StoreError::ChecksumMismatch`])
///   rather than storing corrupt bytes. Putting the same key twice overwrites (idempotent for the
///   same bytes).
/// - `get` of a missing key is [`StoreError::NotFound`].
/// - `delete_many` takes at most [`MAX_DELETE_BATCH`] keys; deleting a missing key succeeds (idempotent).
///   Each key's outcome is reported separately; the call as a whole fails only if the request could
///   not be made at all.
#[async_trait]
pub trait ObjectStore: Send + Sync + Debug {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError>;

    async fn put(&self, key: &str, body: Bytes, crc32c: u32) -> Result<(), StoreError>;

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError>;

    /// Size of an object, or `None` if it is absent. Not for the hot path (audits and tests).
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;

    /// Every key under a prefix, sorted. Not for the hot path (audits, reports and tests).
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Attempts the service answered 503 (SlowDown) so far, counted per attempt inside the
    /// client's own retries (running totals; a request that finally succeeded still counts its
    /// throttled attempts). Zero for backends that never throttle.
    fn throttled_attempts(&self) -> ThrottledAttempts {
        ThrottledAttempts::default()
    }

    /// One page of a listing too long to hold: up to `max` keys under `prefix` that sort after
    /// `start_after` (from the first key when `None`), in key order. An empty page means the
    /// listing is over. On S3 this is one ListObjectsV2 request (`max` at most 1,000); the local
    /// folder walks its folders in key order from the cursor, keeping the walk between pages (a
    /// page costs the folders it reads). The default (for decorators) pages through a whole
    /// [`ObjectStore::list`].
    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut all = self.list(prefix).await?;
        let first = match start_after {
            Some(after) => all.partition_point(|m| m.key.as_str() <= after),
            None => 0,
        };
        all.truncate(all.len().min(first.saturating_add(max as usize)));
        Ok(all.split_off(first))
    }
}

/// Checks a key against the contract above; every backend calls this first.
pub(crate) fn validate_key(key: &str) -> Result<(), StoreError> {
    let reason = if key.is_empty() {
        "empty key"
    } else if key.contains('\0') {
        "key contains NUL"
    } else if key.starts_with('/') {
        "absolute key"
    } else if key.contains('\\') {
        "key contains a backslash"
    } else if key.split('/').any(|s| s == ".." || s == ".") {
        "key has a . or .. segment"
    } else if key.split('/').any(|s| s.is_empty()) {
        "key has an empty segment"
    } else {
        return Ok(());
    };
    Err(StoreError::InvalidKey {
        key: key.escape_debug().to_string(),
        reason,
    })
}

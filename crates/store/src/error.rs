/// Store errors, with the same meaning on every backend.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object {key:?} does not exist")]
    NotFound { key: String },
    #[error("refused key {key:?}: {reason}")]
    InvalidKey { key: String, reason: &'static str },
    #[error("object {key:?} was refused: body does not match its CRC32C {expected:08x} (got {actual:08x})")]
    ChecksumMismatch {
        key: String,
        expected: u32,
        actual: u32,
    },
    #[error("delete batch of {0} keys is over the limit of {max}", max = crate::MAX_DELETE_BATCH)]
    BatchTooLarge(usize),
    #[error("store is throttling requests for {key:?}; slow down")]
    Throttled { key: String },
    #[error("bad store URL {url:?}: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("store request for {key:?} failed: {message}")]
    Backend {
        key: String,
        message: String,
        transient: bool,
    },
    /// The store refused the request for lack of permission (S3 `AccessDenied`, HTTP 403):
    /// permanent until the operator changes a policy.
    #[error("access to {key:?} is denied by the store ({source}); grant the worker's role s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket")]
    PermissionDenied {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The bucket itself does not exist: permanent, and nothing of the run can proceed.
    #[error("the bucket does not exist (asked for {key:?}); check the bucket name in --store")]
    NoSuchBucket {
        key: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("I/O on {key:?} failed: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, StoreError::NotFound { .. })
    }

    pub fn is_permission_denied(&self) -> bool {
        matches!(self, StoreError::PermissionDenied { .. })
    }

    pub fn is_no_such_bucket(&self) -> bool {
        matches!(self, StoreError::NoSuchBucket { .. })
    }

    pub fn is_throttling(&self) -> bool {
        matches!(self, StoreError::Throttled { .. })
    }

    /// Worth retrying later: the same request may succeed (throttling, I/O trouble).
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Throttled { .. } | StoreError::Io { .. } => true,
            StoreError::Backend { transient, .. } => *transient,
            _ => false,
        }
    }

    pub(crate) fn io(key: &str, source: std::io::Error) -> StoreError {
        if source.kind() == std::io::ErrorKind::NotFound {
            StoreError::NotFound {
                key: key.to_owned(),
            }
        } else {
            StoreError::Io {
                key: key.to_owned(),
                source,
            }
        }
    }
}

//! The object store: where originals, thumbnails and WebPs live.
//!
//! [`ObjectStore`] is the one narrow trait the worker sees; [`open`] picks a backend by URL.
//! Backends: a local folder (`file:///dir`) and S3 or an S3-compatible server (`s3://bucket/prefix`). Policy such as request counting lives in wrappers
//! (in the worker crate), not in the backends.

mod error;
mod local;
mod local_walk;
mod object_store;
mod s3;
mod s3_body;
#[cfg(test)]
mod s3_fault_tests;
mod s3_multipart;
mod throttle;
mod url;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use error::StoreError;
pub use local::LocalStore;
pub use object_store::{crc32c, DeleteOutcome, ObjectMeta, ObjectStore, MAX_DELETE_BATCH};
pub use s3::S3Store;
pub use s3_multipart::S3Multipart;
pub use throttle::ThrottledAttempts;
pub use url::{open, open_existing, open_s3};

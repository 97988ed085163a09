use std::sync::Arc;

use crate::{LocalStore, ObjectStore, StoreError};

/// Opens the store a URL names: `file:///absolute/dir` (created if absent).
pub fn open(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = ::url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    match parsed.scheme() {
        "file" => {
            let path = parsed
                .to_file_path()
                .map_err(|()| bad("a file URL needs an absolute path, e.g. file:///var/recast"))?;
            Ok(Arc::new(
                LocalStore::new(path).map_err(|e| bad(&e.to_string()))?,
            ))
        }
        other => Err(bad(&format!("unknown scheme {other:?}; expected file://"))),
    }
}

use std::sync::Arc;

use crate::{LocalStore, ObjectStore, S3Store, StoreError};

/// Opens the store a URL names:
/// - `file:///absolute/dir` (created if absent);
/// - `s3://bucket/prefix[?path_style=true]`: path-style addressing for S3-compatible servers, also
///   turned on by the environment variable `RECAST_S3_PATH_STYLE=true`.
pub async fn open(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
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
        "s3" => Ok(Arc::new(open_s3(url).await?)),
        other => Err(bad(&format!(
            "unknown scheme {other:?}; expected file:// or s3://"
        ))),
    }
}

/// Opens a store that must exist already: a `file://` folder that is absent is refused, not
/// created as [`open`] would (a mistyped path would otherwise be made, and read as an empty
/// store). For every verb but the ones that fill a new store (`seed`, `demo`).
pub async fn open_existing(url: &str) -> Result<Arc<dyn ObjectStore>, StoreError> {
    let missing = ::url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "file")
        .and_then(|u| u.to_file_path().ok())
        .filter(|path| !path.is_dir());
    if let Some(path) = missing {
        return Err(StoreError::BadUrl {
            url: url.to_owned(),
            reason: format!("no folder {} (nothing was created)", path.display()),
        });
    }
    open(url).await
}

/// An S3 store by URL (`s3://BUCKET/PREFIX[?path_style=true]`), as [`open`] makes it, for callers
/// that need what only S3 does (a multipart upload: [`crate::S3Multipart`]).
pub async fn open_s3(url: &str) -> Result<S3Store, StoreError> {
    let bad = |reason: &str| StoreError::BadUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let parsed = ::url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if parsed.scheme() != "s3" {
        return Err(bad("expected s3://BUCKET/PREFIX"));
    }
    let bucket = parsed
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| bad("no bucket"))?;
    let mut path_style =
        std::env::var("RECAST_S3_PATH_STYLE").is_ok_and(|v| v == "true" || v == "1");
    for (k, v) in parsed.query_pairs() {
        match (k.as_ref(), v.as_ref()) {
            ("path_style", "true" | "1") => path_style = true,
            ("path_style", "false" | "0") => path_style = false,
            (k, _) => return Err(bad(&format!("unknown option {k:?} (known: path_style)"))),
        }
    }
    Ok(S3Store::new(bucket, parsed.path(), path_style).await)
}

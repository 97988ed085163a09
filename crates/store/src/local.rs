use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use crate::object_store::validate_key;
use crate::{crc32c, DeleteOutcome, ObjectMeta, ObjectStore, StoreError, MAX_DELETE_BATCH};

/// Suffix of staging files; a key may not end with it, so no staging file is ever listed as an object.
const STAGING_SUFFIX: &str = ".recast-staging";

/// A local folder as an object store: key `a/b.jpg` is the file `<root>/a/b.jpg`.
///
/// A PUT writes a staging file beside the target, fsyncs it, renames it over the target and fsyncs
/// the folder, so no reader (nor a crash) ever observes a partial object.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// The paged listing's walk, kept between pages.
    walks: crate::local_walk::Walks,
}

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<LocalStore> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(LocalStore {
            root: root.canonicalize()?,
            walks: Default::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, StoreError> {
        validate_key(key)?;
        if key.ends_with(STAGING_SUFFIX) {
            return Err(StoreError::InvalidKey {
                key: key.to_owned(),
                reason: "key ends with the staging suffix",
            });
        }
        Ok(self.root.join(key))
    }

    fn put_blocking(path: &Path, key: &str, body: &[u8]) -> Result<(), StoreError> {
        let io = |e| StoreError::io(key, e);
        let dir = path.parent().expect("a key path is below the root");
        fs::create_dir_all(dir).map_err(io)?;
        let staging = dir.join(format!(
            "{}.{:016x}{STAGING_SUFFIX}",
            path.file_name()
                .expect("a key path has a file name")
                .to_string_lossy(),
            fastrand::u64(..)
        ));
        let result = (|| {
            let mut file = fs::File::create(&staging)?;
            file.write_all(body)?;
            file.sync_all()?;
            fs::rename(&staging, path)?;
            fs::File::open(dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&staging);
        }
        result.map_err(io)
    }

    fn list_blocking(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(prefix, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(prefix, e))?;
                let path = entry.path();
                let meta = entry.metadata().map_err(|e| StoreError::io(prefix, e))?;
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let key = path
                    .strip_prefix(&self.root)
                    .expect("walked below the root")
                    .to_string_lossy()
                    .into_owned();
                if key.starts_with(prefix) && !key.ends_with(STAGING_SUFFIX) {
                    out.push(ObjectMeta {
                        key,
                        size: meta.len(),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("a blocking store task panicked")
}

#[async_trait]
impl ObjectStore for LocalStore {
    async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || {
            fs::read(&path)
                .map(Bytes::from)
                .map_err(|e| StoreError::io(&key, e))
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes, expected: u32) -> Result<(), StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || {
            let actual = crc32c(&body);
            if actual != expected {
                return Err(StoreError::ChecksumMismatch {
                    key,
                    expected,
                    actual,
                });
            }
            Self::put_blocking(&path, &key, &body)
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<DeleteOutcome, StoreError> {
        if keys.len() > MAX_DELETE_BATCH {
            return Err(StoreError::BatchTooLarge(keys.len()));
        }
        let mut outcome = DeleteOutcome::default();
        let mut paths = Vec::with_capacity(keys.len());
        for key in keys {
            match self.path_of(key) {
                Ok(p) => paths.push((key.clone(), p)),
                Err(e) => outcome.failed.push((key.clone(), e)),
            }
        }
        let done = blocking(move || {
            Ok(paths
                .into_iter()
                .map(|(key, path)| match fs::remove_file(&path) {
                    Ok(()) => Ok(key),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(key),
                    Err(e) => Err((key.clone(), StoreError::io(&key, e))),
                })
                .collect::<Vec<_>>())
        })
        .await?;
        for r in done {
            match r {
                Ok(k) => outcome.deleted.push(k),
                Err(f) => outcome.failed.push(f),
            }
        }
        Ok(outcome)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path_of(key)?;
        let key = key.to_owned();
        blocking(move || match fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta { key, size: m.len() })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(&key, e)),
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let this = self.clone();
        let prefix = prefix.to_owned();
        blocking(move || this.list_blocking(&prefix)).await
    }

    async fn list_page(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max: u32,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let this = self.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        blocking(move || {
            this.walks.page(
                &this.root,
                &prefix,
                start_after.as_deref(),
                max as usize,
                STAGING_SUFFIX,
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        crate::conformance::run_all(&store).await;
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("store");
        let store = LocalStore::new(&root).unwrap();
        fs::write(dir.path().join("secret"), b"outside").unwrap();
        for key in [
            "../secret",
            "a/../../secret",
            "/etc/passwd",
            "",
            "a\0b",
            "./x",
            "a//b",
        ] {
            let err = store.get(key).await.unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidKey { .. }),
                "{key:?}: {err}"
            );
            let err = store
                .put(key, Bytes::from_static(b"x"), crc32c(b"x"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::InvalidKey { .. }),
                "{key:?}: {err}"
            );
        }
        let out = store.delete_many(&["../secret".to_owned()]).await.unwrap();
        assert_eq!(out.failed.len(), 1);
        assert!(
            dir.path().join("secret").exists(),
            "a delete escaped the root"
        );
    }

    #[tokio::test]
    async fn put_leaves_no_staging_file_and_is_visible_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path()).unwrap();
        let body = Bytes::from(vec![7u8; 1 << 20]);
        store
            .put("a/b.webp", body.clone(), crc32c(&body))
            .await
            .unwrap();
        let names: Vec<_> = fs::read_dir(dir.path().join("a"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["b.webp"]);
        assert_eq!(fs::read(dir.path().join("a/b.webp")).unwrap(), body);
    }

    #[tokio::test]
    async fn open_by_url() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}", dir.path().display());
        crate::open(&url).await.unwrap();
        assert!(matches!(
            crate::open("file://elsewhere/dir").await,
            Err(StoreError::BadUrl { .. })
        ));
        assert!(matches!(
            crate::open("ftp://x/y").await,
            Err(StoreError::BadUrl { .. })
        ));
    }
}

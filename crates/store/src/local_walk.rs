//! The local folder's paged listing: a walk of the folders in key order that resumes after the
//! cursor. A page costs the folders it reads, not the whole tree: the walk's stack (the sorted
//! entries of each folder on the path to the last key) is kept between pages, so a listing that
//! pages through a tree reads each folder once; a call whose cursor is not the last page's end
//! starts from the root and skips, folder by folder, what sorts before the cursor.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::{ObjectMeta, StoreError};

/// One entry of a folder: its name as it sorts in keys (a folder's with a `/` after it, so that
/// `a.b` sorts before the keys under `a/`, as in S3), and its size for a file.
#[derive(Debug, Clone)]
struct Entry {
    sort_name: String,
    dir: bool,
    size: u64,
}

/// A folder being walked: its key prefix (`""` or `a/b/`), sorted entries, the next to visit.
#[derive(Debug, Clone)]
struct Frame {
    prefix: String,
    entries: Vec<Entry>,
    next: usize,
}

/// Where the last page of a listing stopped.
#[derive(Debug)]
struct Resume {
    prefix: String,
    last_key: String,
    stack: Vec<Frame>,
}

/// The walk kept between pages (one listing at a time is resumed; another starts from the root).
#[derive(Debug, Clone, Default)]
pub(crate) struct Walks {
    last: Arc<Mutex<Option<Resume>>>,
}

impl Walks {
    /// Up to `max` keys under `prefix` after `after`, in key order, skipping names that end with
    /// `skip_suffix` (staging files).
    pub(crate) fn page(
        &self,
        root: &Path,
        prefix: &str,
        after: Option<&str>,
        max: usize,
        skip_suffix: &str,
    ) -> Result<Vec<ObjectMeta>, StoreError> {
        let resumed = {
            let mut last = self.last.lock().expect("the walk lock is never poisoned");
            match last.take() {
                Some(r) if r.prefix == prefix && Some(r.last_key.as_str()) == after => {
                    Some(r.stack)
                }
                other => {
                    *last = other;
                    None
                }
            }
        };
        let mut stack = match resumed {
            Some(stack) => stack,
            None => vec![read_frame(root, String::new(), prefix)?],
        };
        let mut out: Vec<ObjectMeta> = Vec::new();
        while out.len() < max {
            let Some(top) = stack.last_mut() else { break };
            let Some(entry) = top.entries.get(top.next).cloned() else {
                stack.pop();
                continue;
            };
            top.next += 1;
            let key = format!("{}{}", top.prefix, entry.sort_name);
            if entry.dir {
                // Every key below sorts after `key` and starts with it.
                let overlaps = key.starts_with(prefix) || prefix.starts_with(&key);
                let all_before = after.is_some_and(|a| a > key.as_str() && !a.starts_with(&key));
                if overlaps && !all_before {
                    stack.push(read_frame(root, key, prefix)?);
                }
                continue;
            }
            if key.ends_with(skip_suffix)
                || !key.starts_with(prefix)
                || after.is_some_and(|a| key.as_str() <= a)
            {
                continue;
            }
            out.push(ObjectMeta {
                key,
                size: entry.size,
            });
        }
        if let (Some(last), false) = (out.last(), stack.is_empty()) {
            *self.last.lock().expect("the walk lock is never poisoned") = Some(Resume {
                prefix: prefix.to_owned(),
                last_key: last.key.clone(),
                stack,
            });
        }
        Ok(out)
    }
}

/// The entries of the folder of key prefix `dir_prefix` (`""` for the root), sorted as keys sort.
fn read_frame(root: &Path, dir_prefix: String, prefix: &str) -> Result<Frame, StoreError> {
    let path: PathBuf = root.join(dir_prefix.trim_end_matches('/'));
    let io = |e| StoreError::io(prefix, e);
    let mut entries = Vec::new();
    let read = match fs::read_dir(&path) {
        Ok(r) => r,
        // A folder removed since its parent was read holds nothing.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Frame {
                prefix: dir_prefix,
                entries,
                next: 0,
            })
        }
        Err(e) => return Err(io(e)),
    };
    for entry in read {
        let entry = entry.map_err(io)?;
        let meta = match entry.metadata() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(e)),
        };
        let mut sort_name = entry.file_name().to_string_lossy().into_owned();
        if meta.is_dir() {
            sort_name.push('/');
        }
        entries.push(Entry {
            sort_name,
            dir: meta.is_dir(),
            size: meta.len(),
        });
    }
    entries.sort_unstable_by(|a, b| a.sort_name.cmp(&b.sort_name));
    Ok(Frame {
        prefix: dir_prefix,
        entries,
        next: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(page: &[ObjectMeta]) -> Vec<&str> {
        page.iter().map(|m| m.key.as_str()).collect()
    }

    #[test]
    fn pages_in_key_order_resumed_or_from_the_root() {
        let dir = tempfile::tempdir().unwrap();
        for k in [
            "a.b",
            "a/x",
            "a/y/z",
            "a0",
            "b/c",
            "b/d.recast-staging",
            "c",
        ] {
            let p = dir.path().join(k);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, b"12").unwrap();
        }
        let walks = Walks::default();
        let suffix = ".recast-staging";
        let p1 = walks.page(dir.path(), "", None, 2, suffix).unwrap();
        assert_eq!(keys(&p1), ["a.b", "a/x"]);
        assert_eq!(p1[0].size, 2);
        let p2 = walks.page(dir.path(), "", Some("a/x"), 2, suffix).unwrap();
        assert_eq!(keys(&p2), ["a/y/z", "a0"]);
        // A fresh walker (no kept stack) finds the same page from the cursor.
        let fresh = Walks::default();
        assert_eq!(
            keys(&fresh.page(dir.path(), "", Some("a/x"), 2, suffix).unwrap()),
            ["a/y/z", "a0"]
        );
        let p3 = walks.page(dir.path(), "", Some("a0"), 2, suffix).unwrap();
        assert_eq!(keys(&p3), ["b/c", "c"]);
        assert!(walks
            .page(dir.path(), "", Some("c"), 2, suffix)
            .unwrap()
            .is_empty());
        assert_eq!(
            keys(&fresh.page(dir.path(), "a/", None, 10, suffix).unwrap()),
            ["a/x", "a/y/z"]
        );
        assert_eq!(
            keys(
                &fresh
                    .page(dir.path(), "a", Some("a/x"), 10, suffix)
                    .unwrap()
            ),
            ["a/y/z", "a0"]
        );
    }
}

//! An S3 Inventory report, read as AWS documents it: `manifest.json` (checked against
//! `manifest.checksum`, the MD5 of its bytes) lists gzip CSV files by key, size and MD5; the CSV
//! columns are the manifest's `fileSchema`; keys are URL-encoded (form encoding: a space is `+`,
//! a literal `+` is `%2B`). One unit per file: its MD5 is checked before a row of it is read.

use std::io::{BufRead, BufReader, Cursor};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use flate2::read::MultiGzDecoder;
use md5::{Digest, Md5};
use recast_store::ObjectStore;
use serde::Deserialize;

use super::source::{Record, Source, Unit};
use super::ImportError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    file_format: String,
    #[serde(default)]
    file_schema: String,
    files: Vec<ManifestFile>,
}

#[derive(Debug, Deserialize)]
struct ManifestFile {
    key: String,
    #[serde(rename = "MD5checksum")]
    md5: String,
}

pub(crate) struct Inventory {
    /// The bucket the report was delivered to (file keys are relative to its root).
    store: Arc<dyn ObjectStore>,
    files: Vec<ManifestFile>,
    key_column: usize,
    size_column: Option<usize>,
}

impl Inventory {
    pub(crate) async fn open(url: &str) -> Result<Inventory, ImportError> {
        let (store, manifest_key) = open_bucket(url).await?;
        let manifest = get(store.as_ref(), &manifest_key).await?;
        let checksum_key = manifest_key.replace("manifest.json", "manifest.checksum");
        let expected = String::from_utf8_lossy(&get(store.as_ref(), &checksum_key).await?)
            .trim()
            .to_ascii_lowercase();
        let actual = md5_hex(&manifest);
        if actual != expected {
            return Err(ImportError::ManifestChecksum {
                key: manifest_key,
                expected,
                actual,
            });
        }
        let bad = |reason: String| ImportError::Manifest {
            key: manifest_key.clone(),
            reason,
        };
        let m: Manifest =
            serde_json::from_slice(&manifest).map_err(|e| bad(format!("not JSON: {e}")))?;
        if !m.file_format.eq_ignore_ascii_case("csv") {
            return Err(ImportError::UnsupportedFormat(m.file_format));
        }
        let columns: Vec<&str> = m.file_schema.split(',').map(str::trim).collect();
        let key_column = columns.iter().position(|c| *c == "Key").ok_or_else(|| {
            bad(format!(
                "its fileSchema {:?} has no Key column; configure the report with the default fields",
                m.file_schema
            ))
        })?;
        let size_column = columns.iter().position(|c| *c == "Size");
        Ok(Inventory {
            store,
            files: m.files,
            key_column,
            size_column,
        })
    }
}

/// The store of the bucket a manifest URL is in, and the manifest's key in it. For `file://`
/// the bucket's root is the deepest folder above the manifest that holds the path its first data
/// file's key names (the manifest's keys are relative to the bucket root).
async fn open_bucket(url: &str) -> Result<(Arc<dyn ObjectStore>, String), ImportError> {
    let bad = || ImportError::BadSource(url.to_owned());
    let open = |root: String| async move {
        recast_store::open_existing(&root)
            .await
            .map_err(|source| ImportError::Store { key: root, source })
    };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, key) = rest.split_once('/').ok_or_else(bad)?;
        return Ok((open(format!("s3://{bucket}")).await?, key.to_owned()));
    }
    let path = url.strip_prefix("file://").ok_or_else(bad)?;
    let manifest = std::fs::read(path).map_err(|source| ImportError::Io {
        path: path.to_owned(),
        source,
    })?;
    let first_file = serde_json::from_slice::<Manifest>(&manifest)
        .ok()
        .and_then(|m| m.files.into_iter().next().map(|f| f.key));
    let mut root = Path::new(path).parent().ok_or_else(bad)?;
    if let Some(first) = first_file {
        root = Path::new(path)
            .ancestors()
            .skip(1)
            .find(|dir| dir.join(&first).is_file())
            .unwrap_or(root);
    }
    let key = Path::new(path)
        .strip_prefix(root)
        .map_err(|_| bad())?
        .to_string_lossy()
        .into_owned();
    Ok((open(format!("file://{}", root.display())).await?, key))
}

async fn get(store: &dyn ObjectStore, key: &str) -> Result<Bytes, ImportError> {
    store.get(key).await.map_err(|source| ImportError::Store {
        key: key.to_owned(),
        source,
    })
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An inventory key as written in the CSV: form-encoded UTF-8.
pub(crate) fn decode_key(encoded: &str) -> Result<String, String> {
    let plus_as_space = encoded.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|e| format!("key {encoded:?} is not URL-encoded UTF-8 ({e})"))
}

#[async_trait]
impl Source for Inventory {
    async fn unit(
        &mut self,
        index: i64,
        _cursor: Option<&str>,
    ) -> Result<Option<Unit>, ImportError> {
        let Some(file) = usize::try_from(index).ok().and_then(|i| self.files.get(i)) else {
            return Ok(None);
        };
        let body = get(self.store.as_ref(), &file.key).await?;
        let actual = md5_hex(&body);
        if actual != file.md5.to_ascii_lowercase() {
            return Err(ImportError::FileChecksum {
                key: file.key.clone(),
                expected: file.md5.clone(),
                actual,
            });
        }
        let rows = Rows {
            file: file.key.clone(),
            lines: BufReader::with_capacity(1 << 16, MultiGzDecoder::new(Cursor::new(body))),
            line: 0,
            buf: String::new(),
            key_column: self.key_column,
            size_column: self.size_column,
        };
        Ok(Some(Unit {
            name: file.key.clone(),
            cursor: None,
            records: Box::new(rows),
        }))
    }
}

/// The rows of one inventory file, decompressed as they are read.
struct Rows {
    file: String,
    lines: BufReader<MultiGzDecoder<Cursor<Bytes>>>,
    line: u64,
    buf: String,
    key_column: usize,
    size_column: Option<usize>,
}

impl Rows {
    fn row(&self) -> Result<Record, ImportError> {
        let err = |reason: String| ImportError::Row {
            file: self.file.clone(),
            line: self.line,
            reason,
        };
        let text = self.buf.trim_end_matches(['\n', '\r']);
        let fields =
            super::csv_line::fields(text).ok_or_else(|| err("a quote is left open".into()))?;
        let needed = self.key_column.max(self.size_column.unwrap_or(0)) + 1;
        if fields.len() < needed {
            return Err(err(format!(
                "{} fields where the manifest's fileSchema needs at least {needed}",
                fields.len()
            )));
        }
        let key = decode_key(&fields[self.key_column]).map_err(err)?;
        let bytes = match self.size_column.map(|c| fields[c].as_str()) {
            // Delete markers and some object versions have no size.
            None | Some("") => 0,
            Some(s) => s
                .parse()
                .map_err(|_| err(format!("size {s:?} is not a number")))?,
        };
        Ok(Record {
            key,
            bytes,
            given: None,
        })
    }
}

impl Iterator for Rows {
    type Item = Result<Record, ImportError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.buf.clear();
        match self.lines.read_line(&mut self.buf) {
            Ok(0) => None,
            Ok(_) => {
                self.line += 1;
                Some(self.row())
            }
            Err(source) => Some(Err(ImportError::Gzip {
                key: self.file.clone(),
                source,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode_key;

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(
            decode_key("photos/a+b/c%2Bd.jpg").unwrap(),
            "photos/a b/c+d.jpg"
        );
        assert_eq!(
            decode_key("photos/%C3%A9t%C3%A9.jpg").unwrap(),
            "photos/été.jpg"
        );
        assert!(decode_key("photos/%FF.jpg").is_err());
    }
}

//! The app's own manifest (`csv:PATH`, `csv:-` for stdin): a header `couple,photo,key,role`
//! (and optionally `bytes`), one object a line; role `original`, `thumbnail` or
//! `thumbnail:SIZE`. For apps whose database knows the couples better than the keys do. One unit
//! per chunk of lines; a file resumes by skipping the chunks already imported.

use std::io::{BufRead, BufReader};

use async_trait::async_trait;
use recast_catalog::ObjectKind;

use super::source::{Given, Record, Source, Unit};
use super::ImportError;

/// Lines per unit (and per checkpoint).
const CHUNK: usize = 50_000;

pub(crate) struct AppManifest {
    path: String,
    reader: Box<dyn BufRead + Send>,
    columns: Columns,
    /// Lines read so far, the header included.
    line: u64,
    /// Units read (or skipped) so far.
    units: i64,
}

struct Columns {
    couple: usize,
    photo: usize,
    key: usize,
    role: usize,
    bytes: Option<usize>,
}

impl AppManifest {
    pub(crate) fn open(path: &str) -> Result<AppManifest, ImportError> {
        let io = |source| ImportError::Io {
            path: path.to_owned(),
            source,
        };
        let mut reader: Box<dyn BufRead + Send> = if path == "-" {
            Box::new(BufReader::new(std::io::stdin()))
        } else {
            Box::new(BufReader::new(std::fs::File::open(path).map_err(io)?))
        };
        let mut header = String::new();
        reader.read_line(&mut header).map_err(io)?;
        let names = super::csv_line::fields(header.trim_end()).unwrap_or_default();
        let find = |name: &str| names.iter().position(|n| n.trim() == name);
        let missing = |name: &str| {
            ImportError::Row {
            file: path.to_owned(),
            line: 1,
            reason: format!(
                "the header has no `{name}` column; the manifest's first line must name couple,photo,key,role (and optionally bytes)"
            ),
        }
        };
        let columns = Columns {
            couple: find("couple").ok_or_else(|| missing("couple"))?,
            photo: find("photo").ok_or_else(|| missing("photo"))?,
            key: find("key").ok_or_else(|| missing("key"))?,
            role: find("role").ok_or_else(|| missing("role"))?,
            bytes: find("bytes"),
        };
        Ok(AppManifest {
            path: path.to_owned(),
            reader,
            columns,
            line: 1,
            units: 0,
        })
    }

    /// Reads up to [`CHUNK`] lines; `None` at the end.
    fn chunk(&mut self) -> Result<Option<Vec<Result<Record, ImportError>>>, ImportError> {
        let mut out = Vec::new();
        let mut buf = String::new();
        while out.len() < CHUNK {
            buf.clear();
            let n = self
                .reader
                .read_line(&mut buf)
                .map_err(|source| ImportError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                break;
            }
            self.line += 1;
            let text = buf.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                continue;
            }
            out.push(self.record(text));
        }
        self.units += 1;
        Ok((!out.is_empty()).then_some(out))
    }

    fn record(&self, text: &str) -> Result<Record, ImportError> {
        let err = |reason: String| ImportError::Row {
            file: self.path.clone(),
            line: self.line,
            reason,
        };
        let f = super::csv_line::fields(text).ok_or_else(|| err("a quote is left open".into()))?;
        let c = &self.columns;
        let needed = [c.couple, c.photo, c.key, c.role, c.bytes.unwrap_or(0)]
            .into_iter()
            .max()
            .unwrap_or(0)
            + 1;
        if f.len() < needed {
            return Err(err(format!(
                "{} fields where the header names {needed}",
                f.len()
            )));
        }
        let kind = match f[c.role].split(':').next().unwrap_or_default() {
            "original" => ObjectKind::Original,
            "thumbnail" => ObjectKind::Thumbnail,
            other => {
                return Err(err(format!(
                    "role {other:?} is neither original nor thumbnail[:SIZE]"
                )))
            }
        };
        let bytes = match c.bytes.map(|i| f[i].as_str()) {
            None | Some("") => 0,
            Some(s) => s
                .parse()
                .map_err(|_| err(format!("bytes {s:?} is not a number")))?,
        };
        if f[c.couple].is_empty() || f[c.photo].is_empty() || f[c.key].is_empty() {
            return Err(err("couple, photo and key must not be empty".into()));
        }
        Ok(Record {
            key: f[c.key].clone(),
            bytes,
            given: Some(Given {
                kind,
                couple: f[c.couple].clone(),
                photo: f[c.photo].clone(),
            }),
        })
    }
}

#[async_trait]
impl Source for AppManifest {
    async fn unit(
        &mut self,
        index: i64,
        _cursor: Option<&str>,
    ) -> Result<Option<Unit>, ImportError> {
        if index > self.units && self.path == "-" {
            return Err(ImportError::StdinResume);
        }
        // Resuming: skip the chunks an earlier import staged.
        while self.units < index {
            if self.chunk()?.is_none() {
                return Ok(None);
            }
        }
        let first_line = self.line + 1;
        Ok(self.chunk()?.map(|records| Unit {
            name: format!("{} from line {first_line}", self.path),
            cursor: None,
            records: Box::new(records.into_iter()),
        }))
    }
}

//! `recast export`: the completion report the app needs to switch its URLs — one row per photo of
//! the catalog with what a run did to it, by the app's ids. Streamed by pages of photo ids (memory
//! flat), gzip when the name ends in `.gz`, resumable with `after` (the last photo id a
//! previous export reported).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use flate2::write::GzEncoder;
use recast_catalog::{Catalog, CatalogError, ExportRow};
use serde::Serialize;

/// Photos read per statement.
const PAGE: u32 = 5_000;
/// The states a photo can be in for a run (`pending`: nothing recorded yet).
pub const STATES: [&str; 5] = ["pending", "switched", "thumbs_gone", "done", "failed"];
/// The CSV header, in the order of [`Line`]'s fields.
const CSV_HEADER: &str =
    "couple,photo,original_key,state,webp_key,webp_bytes,kept_reason,failure_reason,updated_at\n";

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("catalog: {0}")]
    Catalog(#[from] CatalogError),
    #[error("export file name {0:?} must end in .csv, .jsonl, .csv.gz or .jsonl.gz (the name chooses the format)")]
    BadName(String),
    #[error("unknown state {0:?}: use {states}", states = STATES.join(", "))]
    BadState(String),
    #[error("failed to write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to put {url}: {source}")]
    Store {
        url: String,
        #[source]
        source: recast_store::StoreError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Jsonl,
}

/// What to export.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// The run (the most recent when `None`).
    pub run: Option<String>,
    /// Only photos in these states (all when empty).
    pub states: Vec<String>,
    /// Only photos with an internal id above this one (to continue an export).
    pub after: i64,
}

/// What was exported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    pub run: String,
    pub rows: u64,
    /// The last photo id read: `after` for an export that continues this one.
    pub last_photo_id: i64,
}

/// One exported row.
#[derive(Debug, Serialize)]
struct Line<'r> {
    couple: &'r str,
    photo: &'r str,
    original_key: &'r str,
    state: &'r str,
    webp_key: Option<&'r str>,
    webp_bytes: Option<i64>,
    kept_reason: Option<&'r str>,
    failure_reason: Option<&'r str>,
    updated_at: Option<String>,
}

impl<'r> Line<'r> {
    fn of(r: &'r ExportRow) -> Line<'r> {
        Line {
            couple: &r.couple,
            photo: &r.photo,
            original_key: &r.original_key,
            state: r.state.as_deref().unwrap_or("pending"),
            webp_key: r.webp_key.as_deref(),
            webp_bytes: r.webp_bytes,
            kept_reason: r.kept_reason.as_deref(),
            failure_reason: r.failure_reason.as_deref(),
            updated_at: r.updated_at.map(|ms| {
                humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64))
                    .to_string()
            }),
        }
    }

    fn csv(&self, out: &mut Vec<u8>) {
        let opt = |v: Option<&str>| v.unwrap_or("").to_owned();
        let fields = [
            self.couple.to_owned(),
            self.photo.to_owned(),
            self.original_key.to_owned(),
            self.state.to_owned(),
            opt(self.webp_key),
            self.webp_bytes.map(|b| b.to_string()).unwrap_or_default(),
            opt(self.kept_reason),
            opt(self.failure_reason),
            self.updated_at.clone().unwrap_or_default(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if f.contains([',', '"', '\n', '\r']) {
                out.push(b'"');
                out.extend_from_slice(f.replace('"', "\"\"").as_bytes());
                out.push(b'"');
            } else {
                out.extend_from_slice(f.as_bytes());
            }
        }
        out.push(b'\n');
    }
}

/// A file being written, gzip or not.
enum Sink {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

impl Sink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.write_all(bytes),
            Sink::Gzip(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let mut inner = match self {
            Sink::Plain(w) => w,
            Sink::Gzip(w) => w.finish()?,
        };
        inner.flush()?;
        inner.get_ref().sync_all()
    }
}

/// Exports to `out`: a file path, or `s3://BUCKET/KEY` (written to a temporary file first, then
/// put as one object; its body is held in memory for the PUT).
pub async fn export(
    catalog: &dyn Catalog,
    out: &str,
    options: &ExportOptions,
) -> Result<ExportSummary, ExportError> {
    let name = out.strip_suffix(".gz").unwrap_or(out);
    let format = if name.ends_with(".csv") {
        Format::Csv
    } else if name.ends_with(".jsonl") {
        Format::Jsonl
    } else {
        return Err(ExportError::BadName(out.to_owned()));
    };
    let gzip = out.ends_with(".gz");
    for s in &options.states {
        if !STATES.contains(&s.as_str()) {
            return Err(ExportError::BadState(s.clone()));
        }
    }
    let run = catalog.run(options.run.as_deref()).await?;
    let (path, upload) = match out.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest
                .split_once('/')
                .ok_or_else(|| ExportError::BadName(out.to_owned()))?;
            let temp = tempfile::NamedTempFile::new().map_err(|source| ExportError::Io {
                path: "a temporary file".into(),
                source,
            })?;
            (
                temp.path().to_owned(),
                Some((temp, format!("s3://{bucket}"), key.to_owned())),
            )
        }
        None => (std::path::PathBuf::from(out), None),
    };
    let io = |source| ExportError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = BufWriter::with_capacity(1 << 16, File::create(&path).map_err(io)?);
    let mut sink = if gzip {
        Sink::Gzip(GzEncoder::new(file, flate2::Compression::default()))
    } else {
        Sink::Plain(file)
    };
    if format == Format::Csv {
        sink.write(CSV_HEADER.as_bytes()).map_err(io)?;
    }
    let wanted: HashSet<&str> = options.states.iter().map(String::as_str).collect();
    let mut summary = ExportSummary {
        run: run.name.clone(),
        rows: 0,
        last_photo_id: options.after,
    };
    let mut buf = Vec::with_capacity(1 << 20);
    loop {
        let page = catalog
            .export_page(&run, summary.last_photo_id, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        summary.last_photo_id = last.photo_id;
        buf.clear();
        for row in &page {
            let line = Line::of(row);
            if !wanted.is_empty() && !wanted.contains(line.state) {
                continue;
            }
            match format {
                Format::Csv => line.csv(&mut buf),
                Format::Jsonl => {
                    serde_json::to_writer(&mut buf, &line).expect("a row serialises");
                    buf.push(b'\n');
                }
            }
            summary.rows += 1;
        }
        sink.write(&buf).map_err(io)?;
    }
    sink.finish().map_err(io)?;
    if let Some((temp, bucket, key)) = upload {
        let body = Bytes::from(std::fs::read(temp.path()).map_err(io)?);
        let store = recast_store::open(&bucket)
            .await
            .map_err(|source| ExportError::Store {
                url: out.to_owned(),
                source,
            })?;
        let crc = recast_store::crc32c(&body);
        store
            .put(&key, body, crc)
            .await
            .map_err(|source| ExportError::Store {
                url: out.to_owned(),
                source,
            })?;
    }
    Ok(summary)
}

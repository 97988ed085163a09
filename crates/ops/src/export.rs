//! `recast export`: the completion report the app needs to switch its URLs — one row per photo of
//! the catalog with what a run did to it, by the app's ids. Streamed by pages of photo ids (memory
//! flat), gzip when the name ends in `.gz`, resumable with `after` (the last photo id a
//! previous export reported).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, UNIX_EPOCH};

use flate2::write::GzEncoder;
use recast_catalog::{CatalogError, CatalogRead, ExportRow};
use serde::Serialize;

/// Photos read per statement.
const PAGE: u32 = 5_000;
/// Bytes per part of an `s3://` export: the memory it holds. S3 allows 10,000 parts, so an export
/// of up to 320 GB (before gzip, which makes a CSV about 5x smaller).
pub const DEFAULT_PART_BYTES: usize = 32 << 20;
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
    /// Bytes per part of an `s3://` export (at least S3's 5 MiB; 0: [`DEFAULT_PART_BYTES`]).
    pub part_bytes: usize,
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

/// The rows encoded so far, gzip or not, in memory: drained page by page into the destination.
enum Encoder {
    Plain(Vec<u8>),
    Gzip(GzEncoder<Vec<u8>>),
}

impl Encoder {
    fn write(&mut self, bytes: &[u8]) {
        match self {
            Encoder::Plain(v) => v.extend_from_slice(bytes),
            // Writing to a Vec cannot fail.
            Encoder::Gzip(g) => g.write_all(bytes).expect("gzip into memory"),
        }
    }

    /// The encoded bytes produced so far, taken out (gzip keeps its own state; the Vec under it
    /// is only ever appended to).
    fn drain(&mut self) -> Vec<u8> {
        match self {
            Encoder::Plain(v) => std::mem::take(v),
            Encoder::Gzip(g) => std::mem::take(g.get_mut()),
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Plain(v) => v,
            Encoder::Gzip(g) => g.finish().expect("gzip into memory"),
        }
    }
}

/// Where the encoded rows go: a file, or an S3 object written in parts (one part in memory).
enum Destination {
    File {
        file: BufWriter<File>,
        path: String,
    },
    S3 {
        upload: recast_store::S3Multipart,
        url: String,
    },
}

impl Destination {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), ExportError> {
        match self {
            Destination::File { file, path } => {
                file.write_all(bytes).map_err(|source| ExportError::Io {
                    path: path.clone(),
                    source,
                })
            }
            Destination::S3 { upload, url } => {
                upload
                    .write(bytes)
                    .await
                    .map_err(|source| ExportError::Store {
                        url: url.clone(),
                        source,
                    })
            }
        }
    }

    async fn finish(self) -> Result<(), ExportError> {
        match self {
            Destination::File { mut file, path } => {
                let io = |source| ExportError::Io {
                    path: path.clone(),
                    source,
                };
                file.flush().map_err(io)?;
                file.get_ref().sync_all().map_err(io)
            }
            Destination::S3 { upload, url } => upload
                .finish()
                .await
                .map(drop)
                .map_err(|source| ExportError::Store { url, source }),
        }
    }

    /// After a failure: an S3 upload's parts are deleted, not left billed (best effort: the
    /// failure being reported matters more).
    async fn abort(self) {
        if let Destination::S3 { upload, url } = self {
            if let Err(e) = upload.abort().await {
                tracing::warn!(%url, error = %e, "could not abort the export's multipart upload");
            }
        }
    }
}

/// Exports to `out`: a file path, or `s3://BUCKET/KEY` (a multipart upload in parts of
/// `options.part_bytes`, so memory holds one part however large the export).
pub async fn export(
    catalog: &dyn CatalogRead,
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
    let mut destination = open_destination(out, options.part_bytes).await?;
    let mut encoder = if gzip {
        Encoder::Gzip(GzEncoder::new(Vec::new(), flate2::Compression::default()))
    } else {
        Encoder::Plain(Vec::new())
    };
    let written = write_rows(
        catalog,
        &run,
        format,
        options,
        &mut encoder,
        &mut destination,
    )
    .await;
    let finished = match written {
        Ok(summary) => match destination.write(&encoder.finish()).await {
            Ok(()) => destination.finish().await.map(|()| summary),
            Err(e) => {
                destination.abort().await;
                Err(e)
            }
        },
        Err(e) => {
            destination.abort().await;
            Err(e)
        }
    };
    finished
}

async fn open_destination(out: &str, part_bytes: usize) -> Result<Destination, ExportError> {
    match out.strip_prefix("s3://") {
        Some(rest) => {
            let (bucket, key) = rest
                .split_once('/')
                .ok_or_else(|| ExportError::BadName(out.to_owned()))?;
            let store_err = |source| ExportError::Store {
                url: out.to_owned(),
                source,
            };
            let store = recast_store::open_s3(&format!("s3://{bucket}"))
                .await
                .map_err(store_err)?;
            let part_bytes = if part_bytes == 0 {
                DEFAULT_PART_BYTES
            } else {
                part_bytes
            };
            let upload =
                recast_store::S3Multipart::new(&store, key, part_bytes).map_err(store_err)?;
            Ok(Destination::S3 {
                upload,
                url: out.to_owned(),
            })
        }
        None => {
            let file = File::create(out).map_err(|source| ExportError::Io {
                path: out.to_owned(),
                source,
            })?;
            Ok(Destination::File {
                file: BufWriter::with_capacity(1 << 16, file),
                path: out.to_owned(),
            })
        }
    }
}

/// Reads the catalog page by page and sends each page's encoded rows to `destination`.
async fn write_rows(
    catalog: &dyn CatalogRead,
    run: &recast_catalog::Run,
    format: Format,
    options: &ExportOptions,
    encoder: &mut Encoder,
    destination: &mut Destination,
) -> Result<ExportSummary, ExportError> {
    if format == Format::Csv {
        encoder.write(CSV_HEADER.as_bytes());
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
            .export_page(run, summary.last_photo_id, PAGE)
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
        encoder.write(&buf);
        destination.write(&encoder.drain()).await?;
    }
    Ok(summary)
}

//! `seed`'s core: a demo store of couples' photos and real JPEG thumbnails. [`seed`] writes the
//! store only; the catalog is filled by [`import_seeded`] (a listing of the store through the
//! seed's key patterns, as `recast import --from STORE` does), so every run goes through the
//! front door. The result is a [`SeedReport`]; printing it is the binary's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use recast_catalog::Catalog;
use recast_core::{CoupleId, PatternError, PhotoId};
use recast_store::{ObjectStore, StoreError};
use recast_worker::CpuPool;

use crate::import::{ImportError, ImportOptions, ImportSummary, Patterns};

/// Longest side of each thumbnail size, largest first; `--thumbs N` takes the first N.
const THUMB_SIZES: [u32; 6] = [1280, 960, 640, 320, 160, 80];
/// Couples whose objects are uploaded together.
const COUPLES_PER_BATCH: usize = 100;
/// Objects uploaded at once while seeding.
const UPLOADS_IN_FLIGHT: usize = 32;
/// Synthetic photos generated when no folder is given; couples cycle through them.
const SYNTH_SOURCES: u64 = 12;
/// Width of generated photos when none is given (`seed`, `demo --synth-width`).
pub const DEFAULT_SYNTH_WIDTH: u32 = 1600;
/// The key pattern of the thumbnails [`seed`] writes (`recast import`'s default one).
pub const THUMBNAIL_PATTERN: &str = "thumbs/{couple}/{photo}_{size}.jpg";

/// Why a seed stopped; what was put before stays (seeding again adds new couples).
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("failed to read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no .jpg/.jpeg/.png/.gif/.webp files", .0.display())]
    NoPhotos(PathBuf),
    #[error("failed to put {key}")]
    Put {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("the seed's key patterns do not parse")]
    Patterns(#[from] PatternError),
    #[error("failed to import {store}")]
    Import {
        store: String,
        #[source]
        source: Box<ImportError>,
    },
}

/// One distinct source photo; couples' photos are copies of these.
#[derive(Debug, Clone)]
pub struct Source {
    pub bytes: Bytes,
    pub extension: String,
    pub dimensions: Option<(u32, u32)>,
    pub thumbnails: Vec<(u32, Bytes)>,
}

/// The shape of what to seed.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    /// A folder of photos to copy (cycling); `None`: photo-like images are generated.
    pub photos: Option<PathBuf>,
    pub couples: u32,
    /// Each couple owns min..=max photos, the same number for the same couple id.
    pub min_photos: u32,
    pub max_photos: u32,
    /// Thumbnails per photo (0..=6).
    pub thumbs: u32,
    /// Width of generated photos (height is 3/4 of it).
    pub synth_width: u32,
}

/// What a seed wrote.
#[derive(Debug, Default, Clone)]
pub struct SeedReport {
    /// The originals' file extensions (one original key pattern each).
    pub extensions: BTreeSet<String>,
    pub couples: u64,
    pub photos: u64,
    pub thumbnails: u64,
    pub bytes: u64,
    pub undecodable_sources: u64,
    pub sources: u64,
}

/// The key patterns of what `seed` wrote: one original pattern per extension, and the
/// thumbnails'.
pub fn seed_patterns(r: &SeedReport) -> (Vec<String>, Vec<String>) {
    let originals = r
        .extensions
        .iter()
        .map(|e| format!("photos/{{couple}}/{{photo}}.{e}"))
        .collect();
    (originals, vec![THUMBNAIL_PATTERN.to_owned()])
}

/// Imports what `seed` wrote, as `recast import --from STORE` does: a listing of the store through
/// the seed's key patterns.
pub async fn import_seeded(
    catalog: &dyn Catalog,
    store: Arc<dyn ObjectStore>,
    store_url: &str,
    patterns: &(Vec<String>, Vec<String>),
) -> Result<ImportSummary, SeedError> {
    let patterns = Patterns::parse(&patterns.0, &patterns.1)?;
    let mut source = crate::import::listing_of(store, store_url);
    crate::import::import(
        Some(catalog),
        store_url,
        source.as_mut(),
        &patterns,
        &ImportOptions::default(),
    )
    .await
    .map_err(|source| SeedError::Import {
        store: store_url.to_owned(),
        source: Box::new(source),
    })
}

/// Reads (or generates) the sources and makes their thumbnails on the CPU pool.
pub async fn load_sources(plan: &SeedPlan, cpu: &CpuPool) -> Result<Vec<Source>, SeedError> {
    let sizes: Vec<u32> = THUMB_SIZES
        .iter()
        .copied()
        .take(plan.thumbs as usize)
        .collect();
    let raw: Vec<(String, Bytes)> = match &plan.photos {
        Some(dir) => read_dir_files(dir)?,
        None => {
            let w = plan.synth_width.max(64);
            let jobs = (0..SYNTH_SOURCES).map(|seed| {
                cpu.run(move || {
                    (
                        format!("synthetic-{seed}.jpg"),
                        Bytes::from(recast_codec::synth_photo_jpeg(seed, w, w * 3 / 4)),
                    )
                })
            });
            futures::future::join_all(jobs).await
        }
    };
    let jobs = raw.into_iter().map(|(name, bytes)| {
        let sizes = sizes.clone();
        cpu.run(move || make_source(name, bytes, &sizes))
    });
    Ok(futures::future::join_all(jobs).await)
}

fn read_dir_files(dir: &Path) -> Result<Vec<(String, Bytes)>, SeedError> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| SeedError::Read { path, source }
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_error(dir))? {
        let entry = entry.map_err(read_error(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let lower = name.to_lowercase();
        let is_image_name = [".jpg", ".jpeg", ".png", ".gif", ".webp"]
            .iter()
            .any(|e| lower.ends_with(e));
        let path = entry.path();
        if entry.file_type().map_err(read_error(&path))?.is_file() && is_image_name {
            let bytes = std::fs::read(&path).map_err(read_error(&path))?;
            files.push((name, Bytes::from(bytes)));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        return Err(SeedError::NoPhotos(dir.to_owned()));
    }
    Ok(files)
}

fn make_source(name: String, bytes: Bytes, sizes: &[u32]) -> Source {
    let extension = name
        .rsplit_once('.')
        .map_or("jpg", |(_, e)| e)
        .to_lowercase();
    match recast_codec::decode(&bytes, recast_codec::DEFAULT_MAX_PIXELS) {
        Ok((image, _info)) => Source {
            thumbnails: sizes
                .iter()
                .map(|&s| (s, Bytes::from(recast_codec::thumbnail_jpeg(&image, s, 85))))
                .collect(),
            dimensions: Some((image.width(), image.height())),
            bytes,
            extension,
        },
        Err(e) => {
            tracing::warn!(file = %name, error = %e, "source is not decodable; seeding it with placeholder thumbnails");
            Source {
                thumbnails: sizes
                    .iter()
                    .map(|&s| {
                        (
                            s,
                            Bytes::from(recast_codec::placeholder_thumbnail_jpeg(s.min(160))),
                        )
                    })
                    .collect(),
                dimensions: None,
                bytes,
                extension,
            }
        }
    }
}

/// Photos owned by a couple: min..=max, the same for the same couple id.
fn photos_of(couple: CoupleId, min_photos: u32, max_photos: u32) -> u32 {
    let mut rng = fastrand::Rng::with_seed(couple.0 as u64 ^ 0x5eed);
    let min = min_photos.max(1);
    rng.u32(min..=max_photos.max(min))
}

/// Writes the couples' objects to the store, numbering couples and photos after `first_ids` (the
/// catalog's highest ids, so that a second seed adds new couples). The catalog is filled
/// afterwards by [`import_seeded`]. `seeded` is told the couples written so far after each
/// batch (a progress bar's position).
pub async fn seed(
    plan: &SeedPlan,
    first_ids: (CoupleId, PhotoId),
    store: Arc<dyn ObjectStore>,
    cpu: &CpuPool,
    seeded: &(dyn Fn(u64) + Sync),
) -> Result<SeedReport, SeedError> {
    let sources = load_sources(plan, cpu).await?;
    let (max_couple, max_photo) = first_ids;
    let mut next_photo = max_photo.0 + 1;
    let mut source_index = 0usize;
    let mut report = SeedReport {
        undecodable_sources: sources.iter().filter(|s| s.dimensions.is_none()).count() as u64,
        sources: sources.len() as u64,
        ..SeedReport::default()
    };
    let couple_ids: Vec<CoupleId> = (1..=i64::from(plan.couples))
        .map(|i| CoupleId(max_couple.0 + i))
        .collect();
    for batch in couple_ids.chunks(COUPLES_PER_BATCH) {
        let mut uploads: Vec<(String, Bytes)> = Vec::new();
        for &couple in batch {
            for _ in 0..photos_of(couple, plan.min_photos, plan.max_photos) {
                let source = &sources[source_index % sources.len()];
                source_index += 1;
                let id = PhotoId(next_photo);
                next_photo += 1;
                let key = format!("photos/{couple}/{id}.{}", source.extension);
                report.extensions.insert(source.extension.clone());
                uploads.push((key, source.bytes.clone()));
                for (size, bytes) in &source.thumbnails {
                    uploads.push((format!("thumbs/{couple}/{id}_{size}.jpg"), bytes.clone()));
                    report.thumbnails += 1;
                }
                report.photos += 1;
            }
        }
        report.bytes += uploads.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let puts = uploads.into_iter().map(|(key, body)| {
            let store = store.clone();
            async move {
                let crc = recast_store::crc32c(&body);
                store
                    .put(&key, body, crc)
                    .await
                    .map_err(|source| SeedError::Put { key, source })
            }
        });
        let results: Vec<Result<(), SeedError>> = futures::stream::iter(puts)
            .buffer_unordered(UPLOADS_IN_FLIGHT)
            .collect()
            .await;
        results
            .into_iter()
            .collect::<Result<Vec<()>, SeedError>>()?;
        report.couples += batch.len() as u64;
        seeded(report.couples);
    }
    Ok(report)
}

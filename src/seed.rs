//! `recast seed`: a demo catalog of couples whose photos and real JPEG thumbnails are in the store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::StreamExt;
use indicatif::ProgressBar;
use recast_catalog::{Catalog, NewCouple, NewPhoto, NewThumbnail};
use recast_core::{CoupleId, PhotoId};
use recast_store::ObjectStore;
use recast_worker::CpuPool;

use crate::cli::SeedArgs;

/// Longest side of each thumbnail size, largest first; `--thumbs N` takes the first N.
const THUMB_SIZES: [u32; 6] = [1280, 960, 640, 320, 160, 80];
/// Couples written to the catalog per transaction (after their objects are in the store).
const COUPLES_PER_BATCH: usize = 100;
/// Objects uploaded at once while seeding.
const UPLOADS_IN_FLIGHT: usize = 32;
/// Synthetic photos generated when no folder is given; couples cycle through them.
const SYNTH_SOURCES: u64 = 12;

/// One distinct source photo; couples' photos are copies of these.
#[derive(Debug, Clone)]
pub struct Source {
    pub bytes: Bytes,
    pub extension: String,
    pub format: String,
    pub dimensions: Option<(u32, u32)>,
    pub thumbnails: Vec<(u32, Bytes)>,
}

#[derive(Debug, Clone)]
pub struct SeedPlan {
    pub photos: Option<PathBuf>,
    pub couples: u32,
    pub min_photos: u32,
    pub max_photos: u32,
    pub thumbs: u32,
    pub synth_width: u32,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct SeedReport {
    pub couples: u64,
    pub photos: u64,
    pub thumbnails: u64,
    pub bytes: u64,
    pub undecodable_sources: u64,
    pub sources: u64,
}

pub async fn run(a: SeedArgs) -> anyhow::Result<()> {
    let catalog = a.db.open().await?;
    let store = recast_store::open(&a.store)
        .await
        .context("failed to open the store")?;
    let plan = SeedPlan {
        photos: a.photos,
        couples: a.couples,
        min_photos: a.min_photos,
        max_photos: a.max_photos,
        thumbs: a.thumbs,
        synth_width: 1600,
    };
    let r = seed(&plan, catalog.as_ref(), store, &CpuPool::per_core(), None).await?;
    catalog.close().await;
    println!(
        "seeded {} couples, {} photos, {} thumbnails ({:.1} MB){}",
        r.couples,
        r.photos,
        r.thumbnails,
        r.bytes as f64 / 1e6,
        if r.undecodable_sources > 0 {
            format!(
                "; {} source file(s) are not decodable and will fail to migrate",
                r.undecodable_sources
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Reads (or generates) the sources and makes their thumbnails on the CPU pool.
pub async fn load_sources(plan: &SeedPlan, cpu: &CpuPool) -> anyhow::Result<Vec<Source>> {
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

fn read_dir_files(dir: &Path) -> anyhow::Result<Vec<(String, Bytes)>> {
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(dir).with_context(|| format!("failed to read {}", dir.display()))?
    {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let lower = name.to_lowercase();
        let is_image_name = [".jpg", ".jpeg", ".png", ".gif", ".webp"]
            .iter()
            .any(|e| lower.ends_with(e));
        if entry.file_type()?.is_file() && is_image_name {
            files.push((name, Bytes::from(std::fs::read(entry.path())?)));
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        bail!(
            "{} holds no .jpg/.jpeg/.png/.gif/.webp files",
            dir.display()
        );
    }
    Ok(files)
}

fn make_source(name: String, bytes: Bytes, sizes: &[u32]) -> Source {
    let extension = name
        .rsplit_once('.')
        .map_or("jpg", |(_, e)| e)
        .to_lowercase();
    match recast_codec::decode(&bytes, recast_codec::DEFAULT_MAX_PIXELS) {
        Ok((image, info)) => Source {
            thumbnails: sizes
                .iter()
                .map(|&s| (s, Bytes::from(recast_codec::thumbnail_jpeg(&image, s, 85))))
                .collect(),
            dimensions: Some((image.width(), image.height())),
            format: info.format_name(),
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
                format: "unknown".into(),
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

/// Seeds the couples. Objects are put before the catalog rows that name them, so the catalog never
/// points at a missing object.
pub async fn seed(
    plan: &SeedPlan,
    catalog: &dyn Catalog,
    store: Arc<dyn ObjectStore>,
    cpu: &CpuPool,
    bar: Option<&ProgressBar>,
) -> anyhow::Result<SeedReport> {
    let sources = load_sources(plan, cpu).await?;
    let (max_couple, max_photo) = catalog.max_ids().await?;
    let mut next_photo = max_photo.0 + 1;
    let mut source_index = 0usize;
    let mut report = SeedReport {
        undecodable_sources: sources.iter().filter(|s| s.dimensions.is_none()).count() as u64,
        sources: sources.len() as u64,
        ..SeedReport::default()
    };
    if let Some(bar) = bar {
        bar.set_length(u64::from(plan.couples));
    }
    let couple_ids: Vec<CoupleId> = (1..=i64::from(plan.couples))
        .map(|i| CoupleId(max_couple.0 + i))
        .collect();
    for batch in couple_ids.chunks(COUPLES_PER_BATCH) {
        let mut couples = Vec::with_capacity(batch.len());
        let mut uploads: Vec<(String, Bytes)> = Vec::new();
        for &couple in batch {
            let mut photos = Vec::new();
            for _ in 0..photos_of(couple, plan.min_photos, plan.max_photos) {
                let source = &sources[source_index % sources.len()];
                source_index += 1;
                let id = PhotoId(next_photo);
                next_photo += 1;
                let key = format!("photos/{couple}/{id}.{}", source.extension);
                uploads.push((key.clone(), source.bytes.clone()));
                let thumbnails = source
                    .thumbnails
                    .iter()
                    .map(|(size, bytes)| {
                        let key = format!("thumbs/{couple}/{id}_{size}.jpg");
                        uploads.push((key.clone(), bytes.clone()));
                        NewThumbnail {
                            key,
                            bytes: bytes.len() as u64,
                        }
                    })
                    .collect::<Vec<_>>();
                report.thumbnails += thumbnails.len() as u64;
                report.photos += 1;
                photos.push(NewPhoto {
                    id,
                    original_key: key,
                    format: source.format.clone(),
                    bytes: source.bytes.len() as u64,
                    width: source.dimensions.map(|d| d.0),
                    height: source.dimensions.map(|d| d.1),
                    thumbnails,
                });
            }
            couples.push(NewCouple { id: couple, photos });
        }
        report.bytes += uploads.iter().map(|(_, b)| b.len() as u64).sum::<u64>();
        let puts = uploads.into_iter().map(|(key, body)| {
            let store = store.clone();
            async move {
                let crc = recast_store::crc32c(&body);
                store
                    .put(&key, body, crc)
                    .await
                    .with_context(|| format!("failed to put {key}"))
            }
        });
        let results: Vec<anyhow::Result<()>> = futures::stream::iter(puts)
            .buffer_unordered(UPLOADS_IN_FLIGHT)
            .collect()
            .await;
        results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
        catalog
            .add_couples(&couples)
            .await
            .context("failed to add couples to the catalog")?;
        report.couples += couples.len() as u64;
        if let Some(bar) = bar {
            bar.inc(couples.len() as u64);
        }
    }
    Ok(report)
}

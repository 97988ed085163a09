//! The import itself: unit after unit from the checkpoint, each classified and written into the
//! catalog with its checkpoint in one transaction; then the deferred thumbnails are resolved.

use std::collections::{HashMap, HashSet};

use recast_catalog::{BatchAdded, Catalog, ImportCheckpoint, ObjectKind, StagedObject};

use super::classify::{format_of, Patterns};
use super::source::{Record, Source, Unit};
use super::{ImportError, ImportSummary};

/// Unmatched keys and orphans listed by name in a summary (all are counted).
pub const MAX_LISTED: usize = 100;
/// Staged rows sent to the catalog at once.
const STAGE_BATCH: usize = 50_000;

/// How to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Read and classify everything, write nothing. Orphans are then found in memory (a set of the
    /// originals seen), so a dry run's memory grows with the photos; the import's does not.
    pub dry_run: bool,
}

/// Imports `source` (named `from`: the checkpoint's key) into the catalog through `patterns`; a
/// dry run (no catalog, or `options.dry_run`) reads and counts only.
/// Resumes from the checkpoint of an earlier import of the same `from` that stopped; re-running a
/// finished import adds nothing. A unit that fails (checksum, gzip, a bad row) is rolled back
/// whole and the import stops with its error; the units before it stay imported.
pub async fn import(
    catalog: Option<&dyn Catalog>,
    from: &str,
    source: &mut dyn Source,
    patterns: &Patterns,
    options: &ImportOptions,
) -> Result<ImportSummary, ImportError> {
    let catalog = catalog.filter(|_| !options.dry_run);
    let dry = catalog.is_none();
    let checkpoint = match catalog {
        Some(c) => c.import_checkpoint(from).await?,
        None => None,
    };
    let (mut units_done, mut cursor, mut summary) = match checkpoint {
        Some(cp) => {
            let summary: ImportSummary =
                serde_json::from_str(&cp.summary).map_err(ImportError::Checkpoint)?;
            (cp.units_done, cp.cursor, summary)
        }
        None => (
            0,
            None,
            ImportSummary {
                source: from.to_owned(),
                dry_run: dry,
                ..ImportSummary::default()
            },
        ),
    };
    summary.resumed_at_unit = units_done.max(0) as u64;
    let mut dry_orphans = DryOrphans::default();
    while let Some(unit) = source.unit(units_done, cursor.as_deref()).await? {
        let Unit {
            name,
            cursor: next_cursor,
            records,
        } = unit;
        let mut counted = summary.clone();
        match catalog {
            None => {
                for record in records {
                    if let Some(object) = classify(record?, patterns, &mut counted) {
                        dry_orphans.see(&object);
                    }
                }
            }
            Some(c) => {
                counted = write_unit(
                    c,
                    from,
                    units_done,
                    &next_cursor,
                    records,
                    patterns,
                    counted,
                )
                .await?;
            }
        }
        units_done += 1;
        cursor = next_cursor;
        summary = counted;
        summary.units = units_done as u64;
        tracing::debug!(unit = %name, objects = summary.objects(), "unit imported");
    }
    if let Some(c) = catalog {
        let resolved = c.import_resolve(from, MAX_LISTED as u32).await?;
        summary.orphans = resolved.orphans;
        summary.orphan_keys = resolved.orphan_keys;
        summary.couples_added += resolved.couples_added;
        summary.photos_added += resolved.photos_added;
        summary.thumbnails_added += resolved.thumbnails_added;
    } else {
        let (count, keys) = dry_orphans.orphans();
        summary.orphans = count;
        summary.orphan_keys = keys;
    }
    Ok(summary)
}

/// Writes one unit into the catalog in one transaction, committed with its checkpoint: the
/// records are read and classified on a blocking thread while the batch before is written
/// (a channel of one batch between them), so parsing and the database overlap. Returns the
/// running summary with the unit counted. An error (a bad row, a failed write) rolls the unit
/// back whole.
async fn write_unit(
    catalog: &dyn Catalog,
    from: &str,
    index: i64,
    next_cursor: &Option<String>,
    records: Box<dyn Iterator<Item = Result<Record, ImportError>> + Send>,
    patterns: &Patterns,
    mut counted: ImportSummary,
) -> Result<ImportSummary, ImportError> {
    let mut unit = catalog.import_unit(from, index).await?;
    let (batches, mut received) = tokio::sync::mpsc::channel::<Vec<StagedObject>>(1);
    let patterns = patterns.clone();
    let parser = tokio::task::spawn_blocking(move || {
        let mut batch = Vec::with_capacity(STAGE_BATCH);
        for record in records {
            let Some(object) = classify(record?, &patterns, &mut counted) else {
                continue;
            };
            batch.push(object);
            if batch.len() == STAGE_BATCH {
                let full = std::mem::replace(&mut batch, Vec::with_capacity(STAGE_BATCH));
                if batches.blocking_send(full).is_err() {
                    // The writer stopped on an error, which the unit reports.
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let _ = batches.blocking_send(batch);
        }
        Ok::<_, ImportError>(counted)
    });
    let mut added = BatchAdded::default();
    let mut written = Ok(());
    while let Some(batch) = received.recv().await {
        match unit.add(&batch).await {
            Ok(a) => {
                added.couples += a.couples;
                added.photos += a.photos;
                added.thumbnails += a.thumbnails;
                added.deferred += a.deferred;
            }
            Err(e) => {
                written = Err(e);
                break;
            }
        }
    }
    drop(received);
    let parsed = parser.await.map_err(ImportError::Parser)?;
    written?;
    let mut counted = parsed?;
    counted.couples_added += added.couples;
    counted.photos_added += added.photos;
    counted.thumbnails_added += added.thumbnails;
    counted.units = (index + 1) as u64;
    let checkpoint = ImportCheckpoint {
        units_done: index + 1,
        cursor: next_cursor.clone(),
        summary: serde_json::to_string(&counted).expect("a summary serialises"),
    };
    unit.commit(&checkpoint).await?;
    Ok(counted)
}

/// Classifies one record and counts it; `None` for an unmatched key.
fn classify(
    record: Record,
    patterns: &Patterns,
    summary: &mut ImportSummary,
) -> Option<StagedObject> {
    let (kind, couple, photo) = match record.given {
        Some(g) => (g.kind, g.couple, g.photo),
        None => match patterns.classify(&record.key) {
            Some(c) => (c.kind, c.couple, c.photo),
            None => {
                summary.unmatched.objects += 1;
                summary.unmatched.bytes += record.bytes;
                if summary.unmatched_keys.len() < MAX_LISTED {
                    summary.unmatched_keys.push(record.key);
                }
                return None;
            }
        },
    };
    let totals = match kind {
        ObjectKind::Original => &mut summary.originals,
        ObjectKind::Thumbnail => &mut summary.thumbnails,
    };
    totals.objects += 1;
    totals.bytes += record.bytes;
    Some(StagedObject {
        kind,
        format: (kind == ObjectKind::Original).then(|| format_of(&record.key)),
        couple,
        photo,
        key: record.key,
        bytes: record.bytes,
    })
}

/// A dry run's orphan finder: the originals seen, and the thumbnails whose original was not yet.
#[derive(Default)]
struct DryOrphans {
    originals: HashSet<(String, String)>,
    waiting: HashMap<(String, String), Vec<String>>,
}

impl DryOrphans {
    fn see(&mut self, o: &StagedObject) {
        let id = (o.couple.clone(), o.photo.clone());
        match o.kind {
            ObjectKind::Original => {
                self.waiting.remove(&id);
                self.originals.insert(id);
            }
            ObjectKind::Thumbnail if !self.originals.contains(&id) => {
                self.waiting.entry(id).or_default().push(o.key.clone());
            }
            ObjectKind::Thumbnail => {}
        }
    }

    fn orphans(self) -> (u64, Vec<String>) {
        let mut keys: Vec<String> = self.waiting.into_values().flatten().collect();
        keys.sort();
        let count = keys.len() as u64;
        keys.truncate(MAX_LISTED);
        (count, keys)
    }
}

//! One job: migrate the photos of one couple for one run.

use bytes::Bytes;
use futures::StreamExt;
use recast_catalog::{Catalog, ProgressUpdate, Run, WebpRecord};
use recast_codec::{CodecError, EncodeOptions};
use recast_core::{
    advance_after_deletes, webp_key, CoupleId, FailureReason, JobPhoto, OriginalsPolicy, PhotoId,
    PhotoState, Tally,
};
use recast_store::{ObjectStore, MAX_DELETE_BATCH};
use std::collections::HashMap;
use tracing::{debug, info_span, warn, Instrument};

use crate::{redact_id, CpuPool, JobError, Progress};

/// What a job needs, borrowed from its worker.
pub(crate) struct JobContext<'a> {
    pub catalog: &'a dyn Catalog,
    /// The store, counting into this job's tally.
    pub store: &'a dyn ObjectStore,
    pub cpu: &'a CpuPool,
    pub progress: &'a Progress,
    pub tally: &'a Tally,
    /// Photos of one job converted at once (their I/O overlaps other photos' CPU work).
    pub photo_parallelism: usize,
    /// Photos per progress record (one multi-row statement each).
    pub record_batch: usize,
    pub max_pixels: u64,
}

/// The result of a job that ran to its end.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JobReport {
    pub photos: u32,
    /// Every photo is done or failed.
    pub complete: bool,
}

impl JobContext<'_> {
    /// Migrates a couple. `first_delivery`: the queue says no earlier attempt received this message,
    /// so every photo is taken as pending without reading the catalog (the guarded writes keep this
    /// correct if that is wrong); a redelivery re-derives what is left from the catalog.
    pub async fn migrate_couple(
        &self,
        run: &Run,
        couple: CoupleId,
        photos: Option<Vec<JobPhoto>>,
        first_delivery: bool,
    ) -> Result<JobReport, JobError> {
        let db = |e: recast_catalog::CatalogError| {
            if e.is_transient() {
                JobError::retry(e)
            } else {
                JobError::abort(e)
            }
        };
        let from_message = photos.is_some();
        let photos = match photos {
            Some(p) => p,
            None => self
                .catalog
                .couple_photos(couple, self.tally)
                .await
                .map_err(db)?,
        };
        let mut states: HashMap<PhotoId, PhotoState> = if first_delivery && from_message {
            HashMap::new()
        } else {
            self.catalog
                .progress(run, couple, self.tally)
                .await
                .map_err(db)?
                .into_iter()
                .map(|(id, row)| (id, row.state))
                .collect()
        };
        let state_of = |states: &HashMap<PhotoId, PhotoState>, id| {
            states.get(&id).copied().unwrap_or(PhotoState::Pending)
        };

        let mut retry: Option<JobError> = None;
        for chunk in photos.chunks(self.record_batch.max(1)) {
            // 1. Convert and store the pending photos, several at once.
            let pending: Vec<&JobPhoto> = chunk
                .iter()
                .filter(|p| state_of(&states, p.id) == PhotoState::Pending)
                .collect();
            // Futures are built before streaming them: a closure inside the stream would make the
            // job's future lose `Send` (rust-lang/rust#102211).
            let conversions: Vec<_> = pending.into_iter().map(|p| self.convert(run, p)).collect();
            let converted: Vec<Result<ProgressUpdate, JobError>> =
                futures::stream::iter(conversions)
                    .buffer_unordered(self.photo_parallelism.max(1))
                    .collect()
                    .await;
            let mut updates = Vec::new();
            for r in converted {
                match r {
                    Ok(u) => updates.push(u),
                    Err(e) => {
                        retry.get_or_insert(e);
                    }
                }
            }
            // 2. Record them in one statement: from here on the WebPs are the photos' copies.
            let recorded = self
                .catalog
                .record(run, couple, &updates, self.tally)
                .await
                .map_err(db)?;
            for (id, state) in &recorded {
                match state {
                    PhotoState::Failed => Progress::add(&self.progress.photos_failed, 1),
                    PhotoState::Switched => Progress::add(&self.progress.photos_converted, 1),
                    _ => {}
                }
                states.insert(*id, *state);
            }
            // 3. Delete what only switched photos may lose, then record how far each got.
            self.delete_and_advance(run, chunk, &mut states).await?;
        }
        if let Some(e) = retry {
            return Err(e);
        }
        let complete = photos.iter().all(|p| state_of(&states, p.id).is_terminal());
        Ok(JobReport {
            photos: photos.len() as u32,
            complete,
        })
    }

    /// Gets, converts and puts one photo. A photo that can never be converted comes back as a
    /// `Failed` update; trouble that may pass (store errors) is a `Retry`.
    async fn convert(&self, run: &Run, photo: &JobPhoto) -> Result<ProgressUpdate, JobError> {
        let span = info_span!("photo", photo = %redact_id(photo.id.0));
        async {
            let failed = |reason: FailureReason, detail: String| {
                warn!(%reason, %detail, "photo cannot be migrated; nothing of it will be deleted");
                Ok(ProgressUpdate::Failed {
                    photo: photo.id,
                    reason,
                    detail,
                })
            };
            let original = match self.store.get(&photo.key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => {
                    return failed(FailureReason::MissingOriginal, e.to_string())
                }
                Err(e) => {
                    return Err(JobError::retry(format_args!(
                        "failed to get the original: {e}"
                    )))
                }
            };
            Progress::add(&self.progress.bytes_in, original.len() as u64);
            let options = EncodeOptions {
                quality: run.settings.quality,
                method: run.settings.method,
                max_pixels: self.max_pixels,
            };
            let source = original.clone();
            let out = self
                .cpu
                .run(move || recast_codec::transcode(&source, &options))
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e @ CodecError::TooLarge { .. }) => {
                    return failed(FailureReason::TooLarge, e.to_string())
                }
                Err(e @ CodecError::Encode(_)) => {
                    return failed(FailureReason::Encode, e.to_string())
                }
                Err(e) => return failed(FailureReason::Undecodable, e.to_string()),
            };
            let key = webp_key(&photo.key);
            let crc = recast_store::crc32c(&out.webp);
            let bytes = out.webp.len() as u64;
            self.store
                .put(&key, Bytes::from(out.webp), crc)
                .await
                .map_err(|e| JobError::retry(format_args!("failed to put the WebP: {e}")))?;
            Progress::add(&self.progress.bytes_out, bytes);
            debug!(bytes, "stored");
            Ok(ProgressUpdate::Switched {
                photo: photo.id,
                webp: WebpRecord {
                    key,
                    bytes,
                    crc32c: crc,
                },
            })
        }
        .instrument(span)
        .await
    }

    /// Deletes the thumbnails of switched photos, then (under the delete policy) the originals of
    /// photos whose thumbnails are all gone, and records the states reached. A key that could not be
    /// deleted holds its photo back, to be retried on redelivery.
    async fn delete_and_advance(
        &self,
        run: &Run,
        chunk: &[JobPhoto],
        states: &mut HashMap<PhotoId, PhotoState>,
    ) -> Result<(), JobError> {
        let policy = run.settings.originals;
        let state = |s: &HashMap<PhotoId, PhotoState>, id| {
            s.get(&id).copied().unwrap_or(PhotoState::Pending)
        };
        let thumbs: Vec<String> = chunk
            .iter()
            .filter(|p| state(states, p.id) == PhotoState::Switched)
            .flat_map(|p| p.thumbs.iter().cloned())
            .collect();
        let thumbs_failed = self.delete_all(&thumbs).await?;
        let thumbs_gone = |p: &JobPhoto| match state(states, p.id) {
            PhotoState::Switched => p.thumbs.iter().all(|k| !thumbs_failed.contains(k)),
            PhotoState::ThumbsGone => true,
            _ => false,
        };
        let originals: Vec<String> = match policy {
            OriginalsPolicy::Keep => Vec::new(),
            OriginalsPolicy::Delete => chunk
                .iter()
                .filter(|p| thumbs_gone(p))
                .map(|p| p.key.clone())
                .collect(),
        };
        let originals_failed = self.delete_all(&originals).await?;
        let mut moves = Vec::new();
        for p in chunk {
            let before = state(states, p.id);
            if !before.is_switched() || before == PhotoState::Done {
                continue;
            }
            let original_gone = policy == OriginalsPolicy::Delete
                && thumbs_gone(p)
                && !originals_failed.contains(&p.key);
            let after = advance_after_deletes(before, policy, thumbs_gone(p), original_gone);
            if after != before {
                moves.push((p.id, after));
            }
        }
        if moves.is_empty() {
            return Ok(());
        }
        self.catalog
            .advance(run, &moves, self.tally)
            .await
            .map_err(JobError::retry)?;
        for (id, after) in moves {
            if after == PhotoState::Done {
                Progress::add(&self.progress.photos_finished, 1);
            }
            states.insert(id, after);
        }
        Ok(())
    }

    /// Deletes keys in batches of the store's limit; returns the keys that could not be deleted.
    async fn delete_all(
        &self,
        keys: &[String],
    ) -> Result<std::collections::HashSet<String>, JobError> {
        let mut failed = std::collections::HashSet::new();
        for batch in keys.chunks(MAX_DELETE_BATCH) {
            match self.store.delete_many(batch).await {
                Ok(outcome) => {
                    for (key, e) in outcome.failed {
                        warn!(error = %e, "a key was not deleted; its photo will be retried");
                        failed.insert(key);
                    }
                }
                Err(e) if e.is_transient() => {
                    warn!(error = %e, "a delete batch failed; its photos will be retried");
                    failed.extend(batch.iter().cloned());
                }
                Err(e) => return Err(JobError::retry(format_args!("failed to delete: {e}"))),
            }
        }
        Ok(failed)
    }
}

//! One job: migrate the photos of one couple for one run — convert and store each pending photo,
//! then record the chunk in one statement. Deletions are left to the sweeper, which batches them
//! across jobs into full DeleteObjects requests.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;
use futures::StreamExt;
use recast_catalog::{Catalog, JobAttempt, ProgressUpdate, Run, WebpRecord};
use recast_codec::{CodecError, Conversion, ConvertOptions, EncodeOptions, KeepReason};
use recast_core::{
    webp_key, CoupleId, FailureReason, JobOutcome, JobPhoto, KeptReason, PhotoId, PhotoState,
    RunSettings, Tally,
};
use recast_store::{ObjectStore, StoreError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::events::Event;
use crate::fleet::Fleet;
use crate::{redact_id, CpuPool, JobError};

/// When a job must stop before its end: the worker drains (its token), or the job has run for
/// its maximum duration. A stopped job records what it did and releases its message.
#[derive(Debug, Clone)]
pub(crate) struct JobStop {
    pub token: CancellationToken,
    pub deadline: Instant,
}

impl JobStop {
    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled() || Instant::now() >= self.deadline
    }

    fn reason(&self) -> &'static str {
        if self.token.is_cancelled() {
            "the worker is draining"
        } else {
            "the job ran for its maximum duration"
        }
    }
}

/// What a job needs, borrowed from its worker.
pub(crate) struct JobContext<'a> {
    pub catalog: &'a dyn Catalog,
    /// The store, counting into this job's tally.
    pub store: &'a dyn ObjectStore,
    pub cpu: &'a CpuPool,
    pub fleet: &'a Fleet,
    pub tally: &'a Tally,
    /// Requests of the worker not tied to one job, folded into this job's attempt row.
    pub overhead: &'a Tally,
    pub worker: &'a str,
    pub started_at_ms: i64,
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
    /// Thumbnail keys of photos this job switched, for the sweeper to delete.
    pub keys_to_sweep: u64,
}

impl JobContext<'_> {
    /// Migrates a couple: every photo ends recorded (switched or failed), or the job is retried.
    ///
    /// `first_delivery`: the queue says no earlier attempt received this message, so every photo
    /// is taken as pending without reading the catalog (the guarded writes keep this correct if
    /// that is wrong); a redelivery re-derives what is left from the catalog.
    pub async fn migrate_couple(
        &self,
        run: &Run,
        couple: CoupleId,
        photos: Option<Vec<JobPhoto>>,
        first_delivery: bool,
        stop: &JobStop,
    ) -> Result<JobReport, JobError> {
        let db = JobError::catalog;
        let from_message = photos.is_some();
        let photos = match photos {
            Some(p) => p,
            None => self
                .fleet
                .timed(self.catalog.couple_photos(couple, self.tally))
                .await
                .map_err(db)?,
        };
        let mut states: HashMap<PhotoId, PhotoState> = if first_delivery && from_message {
            HashMap::new()
        } else {
            self.fleet
                .timed(self.catalog.progress(run, couple, self.tally))
                .await
                .map_err(db)?
                .into_iter()
                .map(|(id, row)| (id, row.state))
                .collect()
        };
        let pending: Vec<&JobPhoto> = photos
            .iter()
            .filter(|p| !states.contains_key(&p.id))
            .collect();
        let chunks: Vec<&[&JobPhoto]> = pending.chunks(self.record_batch.max(1)).collect();
        let mut retry: Option<JobError> = None;
        let mut stopped = false;
        let mut keys_to_sweep = 0;
        let mut attempt_recorded = false;
        for (n, chunk) in chunks.iter().enumerate() {
            if stop.is_stopped() {
                stopped = true;
                break;
            }
            // Futures are built before streaming them: a closure inside the stream would make the
            // job's future lose `Send` (rust-lang/rust#102211).
            let conversions: Vec<_> = chunk
                .iter()
                .map(|p| self.convert_unless_stopped(run, p, stop))
                .collect();
            // On a stop no new photo is started; those under way finish (so every attempt makes
            // progress, however long one photo takes), except in a drain, whose deadline drops
            // them (a WebP already put is only overwritten by a later attempt: the photo stays
            // pending until recorded).
            let converted: Vec<Option<Result<ProgressUpdate, JobError>>> =
                futures::stream::iter(conversions)
                    .buffer_unordered(self.photo_parallelism.max(1))
                    .take_until(stop.token.cancelled())
                    .collect()
                    .await;
            let converted: Vec<Result<ProgressUpdate, JobError>> =
                converted.into_iter().flatten().collect();
            stopped = converted.len() < chunk.len();
            let mut updates = Vec::new();
            for r in converted {
                match r {
                    Ok(u) => updates.push(u),
                    Err(e) => {
                        retry.get_or_insert(e);
                    }
                }
            }
            // The job's attempt row rides on its last record.
            let last = n + 1 == chunks.len() || stopped;
            let overhead = if last {
                self.overhead.take()
            } else {
                Default::default()
            };
            let outcome = JobOutcome::of_attempt(retry.is_some(), stopped);
            let attempt =
                last.then(|| self.attempt(run, couple, photos.len() as u32, outcome, overhead));
            attempt_recorded |= last;
            let recorded = self
                .fleet
                .timed(
                    self.catalog
                        .record(run, couple, &updates, attempt.as_ref(), self.tally),
                )
                .await
                .map_err(|e| {
                    // Not recorded: the overhead goes back, to be counted by a later attempt.
                    self.overhead.absorb(overhead);
                    db(e)
                })?;
            for (id, state) in recorded {
                if states.insert(id, state).is_none() {
                    self.fleet.events().record(Event::PhotoRecorded(state));
                    if state == PhotoState::Switched {
                        keys_to_sweep += chunk
                            .iter()
                            .find(|p| p.id == id)
                            .map_or(0, |p| p.thumbs.len() as u64);
                    }
                }
            }
            if stopped || retry.as_ref().is_some_and(JobError::is_fatal) {
                break;
            }
        }
        if !attempt_recorded {
            // Nothing was pending (a redelivery of a recorded job), or the job stopped before its
            // first photo: the attempt is still recorded (and the couple's lease ended).
            stopped |= !chunks.is_empty();
            let overhead = self.overhead.take();
            let outcome = JobOutcome::of_attempt(false, stopped);
            let attempt = self.attempt(run, couple, photos.len() as u32, outcome, overhead);
            self.fleet
                .timed(
                    self.catalog
                        .record(run, couple, &[], Some(&attempt), self.tally),
                )
                .await
                .map_err(|e| {
                    self.overhead.absorb(overhead);
                    db(e)
                })?;
        }
        if let Some(e) = retry {
            return Err(e);
        }
        if stopped {
            info!(
                reason = stop.reason(),
                "job stopped; what it did is recorded"
            );
            return Err(JobError::Release {
                reason: stop.reason().to_owned(),
            });
        }
        Ok(JobReport {
            photos: photos.len() as u32,
            keys_to_sweep,
        })
    }

    /// This attempt's row: its requests so far, plus the worker's overhead not yet attributed.
    fn attempt(
        &self,
        run: &Run,
        couple: CoupleId,
        photos: u32,
        outcome: JobOutcome,
        overhead: recast_core::TallySnapshot,
    ) -> JobAttempt {
        JobAttempt {
            run: run.id,
            couple: Some(couple),
            worker: self.worker.to_owned(),
            outcome,
            photos,
            requests: self.tally.snapshot() + overhead,
            started_at_ms: self.started_at_ms,
            finished_at_ms: crate::now_ms(),
        }
    }

    /// Converts one photo unless the job was stopped before the photo's turn came (`None`).
    async fn convert_unless_stopped(
        &self,
        run: &Run,
        photo: &JobPhoto,
        stop: &JobStop,
    ) -> Option<Result<ProgressUpdate, JobError>> {
        if stop.is_stopped() {
            return None;
        }
        Some(self.convert(run, photo).await)
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
            let kept = |reason: KeptReason, detail: String| {
                debug!(%reason, %detail, "original kept as the photo's copy");
                Ok(ProgressUpdate::Kept {
                    photo: photo.id,
                    original_key: photo.key.clone(),
                    reason,
                    detail,
                })
            };
            // Held until the photo is stored: what is in memory is bounded by the CPU pool.
            let _in_hand = self.cpu.reserve().await;
            let original = match self.store.get(&photo.key).await {
                Ok(b) => b,
                Err(e) if e.is_not_found() => {
                    return failed(FailureReason::MissingOriginal, e.to_string())
                }
                // This photo's original is forbidden: recorded at once with the reason.
                Err(e) if e.is_permission_denied() => {
                    return failed(FailureReason::AccessDenied, e.to_string())
                }
                Err(e) if e.is_no_such_bucket() => {
                    return Err(JobError::fatal(format_args!(
                        "failed to get the original: {e}"
                    )))
                }
                // Transient trouble, or a body that arrived corrupt: the same GET may succeed.
                Err(e) if e.is_transient() || matches!(e, StoreError::ChecksumMismatch { .. }) => {
                    return Err(JobError::retry(format_args!(
                        "failed to get the original: {e}"
                    )))
                }
                Err(e) => return failed(FailureReason::StoreRefused, e.to_string()),
            };
            self.fleet
                .events()
                .record(Event::BytesIn(original.len() as u64));
            let options = conversion_options(&run.settings, self.max_pixels);
            // The original moves into the pool and is freed there with the decoded pixels; its
            // header's size takes its share of the pool's pixel budget (a header that cannot be
            // read takes the least, and the conversion says what is wrong with it).
            let pixels = recast_codec::probe(&original)
                .map_or(0, |i| u64::from(i.width) * u64::from(i.height));
            let out = self
                .cpu
                .run_image(pixels, move || recast_codec::convert(&original, &options))
                .await;
            let out = match out {
                Ok(Conversion::Webp(c)) if c.source_frames > 1 => {
                    // The WebP would hold only the first frame: keep the animation.
                    return kept(KeptReason::Animated, format!("{} frames", c.source_frames));
                }
                Ok(Conversion::Webp(c)) => c.out,
                Ok(Conversion::AlreadyWebp { .. }) => {
                    return kept(
                        KeptReason::AlreadyWebp,
                        "the original is already a WebP".into(),
                    )
                }
                Ok(Conversion::Keep { reason, detail }) => {
                    let reason = match reason {
                        KeepReason::Quality => KeptReason::Quality,
                        KeepReason::NoSaving => KeptReason::NoSaving,
                    };
                    return kept(reason, detail);
                }
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
                .map_err(|e| JobError::store("put the WebP", e))?;
            self.fleet.events().record(Event::BytesOut(bytes));
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
}

/// The codec's options for a run: its frozen settings, the worker's pixel cap.
pub fn conversion_options(settings: &RunSettings, max_pixels: u64) -> ConvertOptions {
    ConvertOptions {
        encode: EncodeOptions {
            quality: settings.quality,
            method: settings.method,
            max_pixels,
        },
        max_quality: settings.max_quality,
        keep_exif: settings.keep_exif,
        ..ConvertOptions::default()
    }
    .with_target(settings.target_score)
}

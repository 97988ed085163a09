//! What the operator's reports read from the catalog: `plan`'s sample, `report`'s time series and
//! worker spans, `verify`'s photos. None of it is on a worker's hot path.

use recast_core::{CoupleId, PhotoId, PhotoState, TallySnapshot};
use serde::Serialize;

use crate::WebpRecord;

/// A photo picked for `plan`'s sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SamplePhoto {
    pub photo: PhotoId,
    pub original_key: String,
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
}

/// A run's job attempts that finished within one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AttemptBucket {
    /// Start of the bucket, Unix ms (a multiple of the bucket's length).
    pub start_ms: i64,
    pub attempts: u64,
    /// Attempts released for another try (a store or database error that may pass).
    pub retries: u64,
    /// Photos of the jobs completed.
    pub photos: u64,
    /// Requests recorded with these attempts; requests that serve many jobs (sweeps' deletes,
    /// receives) ride on the next attempt a worker records.
    pub requests: TallySnapshot,
}

/// A run's photos by the time bucket of their steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProgressBucket {
    pub start_ms: i64,
    /// Photos first recorded (switched, kept or failed) in the bucket.
    pub recorded: u64,
    pub failed: u64,
    /// Photos that keep their original as their copy.
    pub kept: u64,
    /// Photos that reached `done` in the bucket.
    pub done: u64,
}

/// The time a worker was seen working on a run: from the start of its first attempt to the end of
/// its last one (its closing overhead row included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerSpan {
    pub worker: String,
    pub first_started_ms: i64,
    pub last_finished_ms: i64,
    pub attempts: u64,
}

impl WorkerSpan {
    pub fn millis(&self) -> i64 {
        (self.last_finished_ms - self.first_started_ms).max(0)
    }
}

/// A photo with what a run recorded for it, for `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPhoto {
    pub photo: PhotoId,
    pub couple: CoupleId,
    pub original_key: String,
    pub thumbs: Vec<String>,
    /// `pending` when the run recorded nothing.
    pub state: PhotoState,
    /// The WebP recorded (none when pending, failed or kept).
    pub webp: Option<WebpRecord>,
    /// Why the original is the photo's copy, for a kept photo.
    pub kept_reason: Option<String>,
    pub failure_reason: Option<String>,
}

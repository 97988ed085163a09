use recast_core::{
    CoupleId, FailureReason, JobOutcome, JobPhoto, KeptReason, PhotoId, PhotoState, RunId,
    RunSettings, TallySnapshot,
};
use serde::Serialize;

/// A run: a name and the settings frozen when it was created.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub id: RunId,
    pub name: String,
    pub settings: RunSettings,
    pub created_at_ms: i64,
}

/// A couple to add to the catalog (seeding); ids are chosen by the caller.
#[derive(Debug, Clone)]
pub struct NewCouple {
    pub id: CoupleId,
    pub photos: Vec<NewPhoto>,
}

#[derive(Debug, Clone)]
pub struct NewPhoto {
    pub id: PhotoId,
    pub original_key: String,
    pub format: String,
    pub bytes: u64,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub thumbnails: Vec<NewThumbnail>,
}

#[derive(Debug, Clone)]
pub struct NewThumbnail {
    pub key: String,
    pub bytes: u64,
}

/// The producer's position in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// Every couple with an id up to this one is enqueued.
    pub last_couple: Option<CoupleId>,
    pub enqueued: u64,
    pub finished: bool,
}

/// A couple and its photos, as the producer puts it in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoupleJob {
    pub couple: CoupleId,
    pub photos: Vec<JobPhoto>,
}

/// A stored WebP: what the catalog records when a photo is switched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebpRecord {
    pub key: String,
    pub bytes: u64,
    pub crc32c: u32,
}

/// A photo's recorded progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressRow {
    pub photo: PhotoId,
    pub state: PhotoState,
    pub webp: Option<WebpRecord>,
    pub failure: Option<String>,
}

/// A step to record for one photo.
#[derive(Debug, Clone, PartialEq)]
pub enum ProgressUpdate {
    /// pending -> switched: the WebP is stored and becomes the photo's copy.
    Switched { photo: PhotoId, webp: WebpRecord },
    /// pending -> switched with the original as the photo's copy (no WebP), for a reason that is
    /// not a failure: its thumbnails go, its original never does.
    Kept {
        photo: PhotoId,
        original_key: String,
        reason: KeptReason,
        detail: String,
    },
    /// pending -> failed, with the reason; nothing of the photo was deleted.
    Failed {
        photo: PhotoId,
        reason: FailureReason,
        detail: String,
    },
}

impl ProgressUpdate {
    pub fn photo(&self) -> PhotoId {
        match self {
            ProgressUpdate::Switched { photo, .. }
            | ProgressUpdate::Kept { photo, .. }
            | ProgressUpdate::Failed { photo, .. } => *photo,
        }
    }
}

/// One attempt at a job, with the requests it made; `couple` is `None` for a worker's requests
/// that served no single job (empty receives, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAttempt {
    pub run: RunId,
    pub couple: Option<CoupleId>,
    pub worker: String,
    /// How the attempt ended (`complete`, `retry`, `released`), or whose requests it holds
    /// (`producer`, `overhead`); stored by its name ([`JobOutcome::as_str`]).
    pub outcome: JobOutcome,
    pub photos: u32,
    pub requests: TallySnapshot,
    pub started_at_ms: i64,
    pub finished_at_ms: i64,
}

/// A switched photo claimed by a sweep: what may be deleted for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepItem {
    pub photo: PhotoId,
    /// `switched` (thumbnails to delete) or `thumbs_gone` (original to delete, under the delete policy).
    pub state: PhotoState,
    pub original_key: String,
    pub thumbs: Vec<String>,
    /// The original is the photo's copy (see [`ProgressUpdate::Kept`]): never delete it.
    pub kept: bool,
}

/// What one worker did between two heartbeats: a point of the fleet's time series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WorkerSample {
    pub worker: String,
    /// When the sample was taken (the end of its interval).
    pub at_ms: i64,
    pub interval_ms: i64,
    pub jobs: u64,
    /// Photos recorded (switched, kept or failed).
    pub photos: u64,
    pub failed: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub requests: TallySnapshot,
    /// Throttling answers received (S3 503 SlowDown, SQS OverLimit).
    pub throttles: u64,
    /// Time spent waiting for the budgets' token buckets.
    pub limiter_wait_ms: u64,
    /// Messages held at the end of the interval.
    pub in_flight: u64,
    /// Jobs allowed at once at the end of the interval (adaptive).
    pub concurrency: u64,
}

/// A worker's heartbeat: it is alive (registering it the first time), with what it did since
/// its last one.
#[derive(Debug, Clone, Copy)]
pub struct Heartbeat<'a> {
    pub run_name: &'a str,
    pub worker: &'a str,
    pub started_at_ms: i64,
    pub now_ms: i64,
    /// A worker whose last heartbeat is older than this counts as gone.
    pub stale_after: std::time::Duration,
    pub sample: Option<&'a WorkerSample>,
}

impl Heartbeat<'_> {
    pub(crate) fn stale_cutoff(&self) -> i64 {
        self.now_ms - self.stale_after.as_millis() as i64
    }
}

/// What a heartbeat learns about the fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FleetView {
    /// Live workers of the run, the one beating included.
    pub live_workers: u32,
    /// The run's budgets: those stored, the defaults for the others.
    pub budgets: recast_core::Budgets,
}

/// A registered worker, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerInfo {
    pub name: String,
    pub started_at_ms: i64,
    pub heartbeat_at_ms: i64,
    pub stopped_at_ms: Option<i64>,
    pub stop_reason: Option<String>,
}

impl WorkerInfo {
    /// Running: not deregistered, and heard from within `stale_after` of `now_ms`.
    pub fn is_live(&self, now_ms: i64, stale_after: std::time::Duration) -> bool {
        self.stopped_at_ms.is_none()
            && self.heartbeat_at_ms >= now_ms - stale_after.as_millis() as i64
    }
}

/// The answer to a lease request on a couple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// The couple is this worker's until then (Unix ms).
    Granted { until_ms: i64 },
    /// A live worker holds it.
    HeldBy { owner: String, until_ms: i64 },
}

use recast_core::{
    CoupleId, FailureReason, JobPhoto, KeptReason, PhotoId, PhotoState, RunId, RunSettings,
    TallySnapshot,
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
    /// `complete` (every photo terminal), `retry` (released for another attempt) or `overhead`.
    pub outcome: String,
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

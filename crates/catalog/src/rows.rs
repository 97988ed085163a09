//! Conversions from plain row tuples to the model, shared by every backend so that each backend
//! holds only its SQL.

use recast_core::{CatalogTotals, CoupleId, JobPhoto, PhotoId, PhotoState};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{
    AttemptBucket, AuditPhoto, CatalogError, CoupleJob, ProgressBucket, ProgressRow,
    ProgressUpdate, Run, SamplePhoto, StateTotals, SweepItem, WebpRecord,
};

/// (couple id, photo id, original key, thumbnail key), ordered by couple, photo, thumbnail.
pub(crate) type JobRow = (i64, Option<i64>, Option<String>, Option<String>);

/// (photo id, state, webp key, webp bytes, webp crc32c, failure reason).
pub(crate) type ProgressTuple = (
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
);

/// (state, photos, original bytes, thumbnails, thumbnail bytes, webp bytes, kept photos, their
/// original bytes).
pub(crate) type StateTuple = (String, i64, i64, i64, i64, i64, i64, i64);

/// (photo id, state, kept reason, original key, thumbnail key), ordered by photo, thumbnail.
pub(crate) type SweepRow = (i64, String, Option<String>, String, Option<String>);

pub(crate) fn state_of(text: &str) -> Result<PhotoState, CatalogError> {
    text.parse().map_err(CatalogError::Corrupt)
}

/// Groups job rows into couples, in order; a couple without photos gets an empty list.
pub(crate) fn group_jobs(rows: Vec<JobRow>) -> Vec<CoupleJob> {
    let mut jobs: Vec<CoupleJob> = Vec::new();
    for (couple, photo, key, thumb) in rows {
        let couple = CoupleId(couple);
        if jobs.last().map(|j| j.couple) != Some(couple) {
            jobs.push(CoupleJob {
                couple,
                photos: Vec::new(),
            });
        }
        let job = jobs.last_mut().expect("pushed above");
        let (Some(photo), Some(key)) = (photo.map(PhotoId), key) else {
            continue;
        };
        if job.photos.last().map(|p| p.id) != Some(photo) {
            job.photos.push(JobPhoto {
                id: photo,
                key,
                thumbs: Vec::new(),
            });
        }
        if let Some(thumb) = thumb {
            job.photos
                .last_mut()
                .expect("pushed above")
                .thumbs
                .push(thumb);
        }
    }
    jobs
}

pub(crate) fn progress_row(
    (photo, state, key, bytes, crc, failure): ProgressTuple,
) -> Result<ProgressRow, CatalogError> {
    Ok(ProgressRow {
        photo: PhotoId(photo),
        state: state_of(&state)?,
        webp: key.map(|key| WebpRecord {
            key,
            bytes: bytes.unwrap_or_default() as u64,
            crc32c: crc.unwrap_or_default() as u32,
        }),
        failure,
    })
}

pub(crate) fn state_totals(
    (state, photos, original, thumbs, thumb_bytes, webp, kept, kept_bytes): StateTuple,
) -> (String, StateTotals) {
    (
        state,
        StateTotals {
            photos: photos as u64,
            original_bytes: original as u64,
            thumbnails: thumbs as u64,
            thumbnail_bytes: thumb_bytes as u64,
            webp_bytes: webp as u64,
            kept: kept as u64,
            kept_original_bytes: kept_bytes as u64,
        },
    )
}

pub(crate) fn group_sweep(rows: Vec<SweepRow>) -> Result<Vec<SweepItem>, CatalogError> {
    let mut items: Vec<SweepItem> = Vec::new();
    for (photo, state, kept, original, thumb) in rows {
        let photo = PhotoId(photo);
        if items.last().map(|i| i.photo) != Some(photo) {
            items.push(SweepItem {
                photo,
                state: state_of(&state)?,
                original_key: original,
                thumbs: Vec::new(),
                kept: kept.is_some(),
            });
        }
        if let Some(t) = thumb {
            items.last_mut().expect("pushed above").thumbs.push(t);
        }
    }
    Ok(items)
}

/// The VALUES rows of a progress INSERT, in the column order both backends use: run, photo,
/// couple, state, webp key, webp bytes, webp crc32c, failure reason, failure detail, created,
/// updated, kept reason.
pub(crate) fn push_progress_values<'a, DB>(
    q: &mut QueryBuilder<'a, DB>,
    run: &Run,
    couple: CoupleId,
    updates: &[ProgressUpdate],
    now: i64,
) where
    DB: Database,
    i64: Encode<'a, DB> + Type<DB>,
    Option<i64>: Encode<'a, DB> + Type<DB>,
    String: Encode<'a, DB> + Type<DB>,
    Option<String>: Encode<'a, DB> + Type<DB>,
    &'static str: Encode<'a, DB> + Type<DB>,
    Option<&'static str>: Encode<'a, DB> + Type<DB>,
{
    q.push_values(updates, |mut b, u| {
        b.push_bind(run.id.0)
            .push_bind(u.photo().0)
            .push_bind(couple.0);
        match u {
            ProgressUpdate::Switched { webp, .. } => {
                b.push_bind(PhotoState::Switched.as_str())
                    .push_bind(webp.key.clone())
                    .push_bind(webp.bytes as i64)
                    .push_bind(i64::from(webp.crc32c))
                    .push_bind(None::<String>)
                    .push_bind(None::<String>);
            }
            ProgressUpdate::Kept {
                original_key,
                detail,
                ..
            } => {
                b.push_bind(PhotoState::Switched.as_str())
                    .push_bind(original_key.clone())
                    .push_bind(0i64)
                    .push_bind(0i64)
                    .push_bind(None::<String>)
                    .push_bind(detail.clone());
            }
            ProgressUpdate::Failed { reason, detail, .. } => {
                b.push_bind(PhotoState::Failed.as_str())
                    .push_bind(None::<String>)
                    .push_bind(None::<i64>)
                    .push_bind(None::<i64>)
                    .push_bind(reason.as_str())
                    .push_bind(detail.clone());
            }
        }
        b.push_bind(now).push_bind(now).push_bind(match u {
            ProgressUpdate::Kept { reason, .. } => Some(reason.as_str()),
            _ => None,
        });
    });
}

/// (photo id, couple id, original key, state, webp key, webp bytes, webp crc32c, kept reason,
/// failure reason, thumbnail key), ordered by photo, thumbnail.
pub(crate) type AuditRow = (
    i64,
    i64,
    String,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(crate) fn group_audit(rows: Vec<AuditRow>) -> Result<Vec<AuditPhoto>, CatalogError> {
    let mut photos: Vec<AuditPhoto> = Vec::new();
    for (photo, couple, original, state, key, bytes, crc, kept, failure, thumb) in rows {
        let photo = PhotoId(photo);
        if photos.last().map(|p| p.photo) != Some(photo) {
            photos.push(AuditPhoto {
                photo,
                couple: CoupleId(couple),
                original_key: original,
                thumbs: Vec::new(),
                state: state_of(&state)?,
                // A kept photo's record names its original, not a WebP.
                webp: key.filter(|_| kept.is_none()).map(|key| WebpRecord {
                    key,
                    bytes: bytes.unwrap_or_default() as u64,
                    crc32c: crc.unwrap_or_default() as u32,
                }),
                kept_reason: kept,
                failure_reason: failure,
            });
        }
        if let Some(t) = thumb {
            photos.last_mut().expect("pushed above").thumbs.push(t);
        }
    }
    Ok(photos)
}

/// (bucket start, attempts, retries, photos, s3 get, s3 put, delete requests, deleted objects,
/// sqs requests, db statements).
pub(crate) type AttemptBucketRow = (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64);

pub(crate) fn attempt_bucket(
    (start_ms, attempts, retries, photos, get, put, dr, dobj, sqs, db): AttemptBucketRow,
) -> AttemptBucket {
    let n = |v: i64| v.max(0) as u64;
    AttemptBucket {
        start_ms,
        attempts: n(attempts),
        retries: n(retries),
        photos: n(photos),
        requests: recast_core::TallySnapshot {
            s3_get: n(get),
            s3_put: n(put),
            s3_delete_requests: n(dr),
            s3_deleted_objects: n(dobj),
            sqs_requests: n(sqs),
            db_statements: n(db),
        },
    }
}

/// (bucket start, recorded, failed, kept, done).
pub(crate) type ProgressBucketRow = (i64, i64, i64, i64, i64);

pub(crate) fn progress_bucket(
    (start_ms, recorded, failed, kept, done): ProgressBucketRow,
) -> ProgressBucket {
    let n = |v: i64| v.max(0) as u64;
    ProgressBucket {
        start_ms,
        recorded: n(recorded),
        failed: n(failed),
        kept: n(kept),
        done: n(done),
    }
}

/// (couples with photos, photos, original bytes, thumbnails, thumbnail bytes, pixels, photos with
/// dimensions).
pub(crate) type TotalsRow = (i64, i64, i64, i64, i64, i64, i64);

pub(crate) fn catalog_totals(
    (couples, photos, bytes, thumbs, thumb_bytes, pixels, with_dims): TotalsRow,
) -> CatalogTotals {
    let n = |v: i64| v.max(0) as u64;
    CatalogTotals {
        couples: n(couples),
        photos: n(photos),
        original_bytes: n(bytes),
        thumbnails: n(thumbs),
        thumbnail_bytes: n(thumb_bytes),
        pixels: n(pixels),
        photos_with_dimensions: n(with_dims),
    }
}

/// (photo id, original key, bytes, width, height).
pub(crate) type SampleRow = (i64, String, i64, Option<i64>, Option<i64>);

pub(crate) fn sample_photo((id, key, bytes, w, h): SampleRow) -> SamplePhoto {
    SamplePhoto {
        photo: PhotoId(id),
        original_key: key,
        bytes: bytes.max(0) as u64,
        width: w.and_then(|v| u32::try_from(v).ok()),
        height: h.and_then(|v| u32::try_from(v).ok()),
    }
}

/// Random points in `min..=max` for a sample of `n` photos, the same for the same seed: more
/// points than photos wanted, since two points may land on the same photo.
pub(crate) fn sample_points(min: i64, max: i64, n: u32, seed: u64) -> Vec<i64> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..u64::from(n) * 4).map(|_| rng.i64(min..=max)).collect()
}

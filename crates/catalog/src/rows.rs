//! Conversions from plain row tuples to the model, shared by every backend so that each backend
//! holds only its SQL.

use recast_core::{CoupleId, JobPhoto, PhotoId, PhotoState};
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::{
    CatalogError, CoupleJob, ProgressRow, ProgressUpdate, Run, StateTotals, SweepItem, WebpRecord,
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

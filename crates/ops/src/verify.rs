//! `recast verify`: audits a run against the store. For each photo audited, what the catalog
//! records must be what the store holds:
//! - a photo with a WebP (switched, thumbs_gone, done): the WebP exists, its size and CRC32C are
//!   the recorded ones, and (for the first `--decode` of them) it decodes;
//! - thumbs_gone and done photos have no thumbnail left;
//! - pending and failed photos lost nothing: original and every thumbnail are there;
//! - originals are there wherever the run keeps them: under `keep`, for kept photos, and for
//!   every photo not yet done; under `delete`, a done photo's original is gone.
//!
//! Photos mid-sweep are not judged on what the sweep may have half done (a switched photo's
//! thumbnails, a thumbs_gone photo's original under delete). Run it on a finished run: on a live
//! one, a photo that moves on between the catalog read and the store read can show a violation
//! that is not one. The binary exits 3 when any violation is found (1 stays "the command
//! failed").

use std::fmt;

use futures::StreamExt;
use recast_catalog::{AuditPhoto, CatalogError, CatalogRead, Run};
use recast_core::{CoupleId, FailureReason, OriginalsPolicy, PhotoId, PhotoState};
use recast_store::{ObjectStore, StoreError};
use serde::Serialize;

/// Why an audit could not be made (as opposed to the violations it found).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("failed to read the photos to audit: {0}")]
    Catalog(#[from] CatalogError),
    #[error("failed to read {key} from the store: {source}")]
    Store {
        key: String,
        #[source]
        source: StoreError,
    },
}

fn store_error(key: &str) -> impl FnOnce(StoreError) -> VerifyError + '_ {
    move |source| VerifyError::Store {
        key: key.to_owned(),
        source,
    }
}

/// Photos read from the catalog per statement.
const PAGE: u32 = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// The catalog records a WebP the store does not hold.
    WebpMissing,
    WebpSizeMismatch,
    WebpChecksumMismatch,
    WebpUndecodable,
    /// A thumbnail of a photo whose thumbnails are recorded deleted is still there.
    ThumbnailLeft,
    /// A thumbnail of a pending or failed photo is gone: deleted before its WebP was recorded.
    ThumbnailMissing,
    /// An original the run keeps (or has not reached) is gone.
    OriginalMissing,
    /// A done photo's original is still there under `--originals delete`.
    OriginalLeft,
}

impl ViolationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ViolationKind::WebpMissing => "webp_missing",
            ViolationKind::WebpSizeMismatch => "webp_size_mismatch",
            ViolationKind::WebpChecksumMismatch => "webp_checksum_mismatch",
            ViolationKind::WebpUndecodable => "webp_undecodable",
            ViolationKind::ThumbnailLeft => "thumbnail_left",
            ViolationKind::ThumbnailMissing => "thumbnail_missing",
            ViolationKind::OriginalMissing => "original_missing",
            ViolationKind::OriginalLeft => "original_left",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub photo: PhotoId,
    pub couple: CoupleId,
    pub state: String,
    pub kind: ViolationKind,
    pub key: String,
    pub detail: String,
}

/// The error `verify` ends with when it found violations: exit code 3.
#[derive(Debug)]
pub struct ViolationsFound(pub usize);

impl fmt::Display for ViolationsFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "verify found {} violation(s)", self.0)
    }
}

impl std::error::Error for ViolationsFound {}

#[derive(Debug, Default, Serialize)]
pub struct Audit {
    pub run: String,
    pub originals: OriginalsPolicy,
    /// `every photo` or `a sample of N (seed S)`.
    pub scope: String,
    pub photos: u64,
    pub webps_checked: u64,
    pub webps_decoded: u64,
    pub violations: Vec<Violation>,
}

/// Every photo of the catalog with what `run` recorded for them, read in pages.
pub async fn all_photos(
    catalog: &dyn CatalogRead,
    run: &Run,
) -> Result<Vec<AuditPhoto>, VerifyError> {
    let mut out: Vec<AuditPhoto> = Vec::new();
    loop {
        let page = catalog
            .audit_photos(run, out.last().map(|p| p.photo), PAGE)
            .await?;
        let last_page = page.len() < PAGE as usize;
        out.extend(page);
        if last_page {
            return Ok(out);
        }
    }
}

/// `n` photos drawn at random (the same for the same `seed`), with what `run` recorded.
pub async fn sampled_photos(
    catalog: &dyn CatalogRead,
    run: &Run,
    n: u32,
    seed: u64,
) -> Result<Vec<AuditPhoto>, VerifyError> {
    let mut out = Vec::new();
    for p in catalog.sample_photos(n, seed).await? {
        out.extend(
            catalog
                .audit_photos(run, Some(PhotoId(p.photo.0 - 1)), 1)
                .await?,
        );
    }
    Ok(out)
}

/// Audits the photos (up to `parallelism` at once); the first `decode` WebPs are decoded.
pub async fn audit(
    run: &Run,
    photos: &[AuditPhoto],
    store: &dyn ObjectStore,
    decode: usize,
    parallelism: usize,
    scope: String,
) -> Result<Audit, VerifyError> {
    let policy = run.settings.originals;
    let with_webp: Vec<PhotoId> = photos
        .iter()
        .filter(|p| p.webp.is_some())
        .map(|p| p.photo)
        .take(decode)
        .collect();
    let checks = photos.iter().map(|p| {
        let decode = with_webp.contains(&p.photo);
        async move { check(p, policy, store, decode).await }
    });
    let results: Vec<Result<Checked, VerifyError>> = futures::stream::iter(checks)
        .buffer_unordered(parallelism.max(1))
        .collect()
        .await;
    let mut audit = Audit {
        run: run.name.clone(),
        originals: policy,
        scope,
        photos: photos.len() as u64,
        ..Audit::default()
    };
    for r in results {
        let (violations, checked, decoded) = r?;
        audit.violations.extend(violations);
        audit.webps_checked += u64::from(checked);
        audit.webps_decoded += u64::from(decoded);
    }
    audit
        .violations
        .sort_by(|a, b| (a.photo, a.kind, &a.key).cmp(&(b.photo, b.kind, &b.key)));
    Ok(audit)
}

/// One photo's violations, whether a WebP was checked and whether it was decoded.
type Checked = (Vec<Violation>, bool, bool);

/// One photo's checks.
async fn check(
    p: &AuditPhoto,
    policy: OriginalsPolicy,
    store: &dyn ObjectStore,
    decode: bool,
) -> Result<Checked, VerifyError> {
    let mut out = Vec::new();
    let violation = |kind, key: &str, detail: String| Violation {
        photo: p.photo,
        couple: p.couple,
        state: p.state.as_str().to_owned(),
        kind,
        key: key.to_owned(),
        detail,
    };
    let mut decoded = false;
    if let Some(webp) = &p.webp {
        match store.get(&webp.key).await {
            Err(e) if e.is_not_found() => out.push(violation(
                ViolationKind::WebpMissing,
                &webp.key,
                format!(
                    "the catalog records a WebP of {} bytes; the store has none",
                    webp.bytes
                ),
            )),
            Err(e) => return Err(store_error(&webp.key)(e)),
            Ok(body) => {
                if body.len() as u64 != webp.bytes {
                    out.push(violation(
                        ViolationKind::WebpSizeMismatch,
                        &webp.key,
                        format!("{} bytes recorded, {} stored", webp.bytes, body.len()),
                    ));
                }
                let crc = recast_store::crc32c(&body);
                if crc != webp.crc32c {
                    out.push(violation(
                        ViolationKind::WebpChecksumMismatch,
                        &webp.key,
                        format!("CRC32C {:08x} recorded, {crc:08x} stored", webp.crc32c),
                    ));
                }
                if decode {
                    decoded = true;
                    if let Err(e) = recast_codec::decode(&body, recast_codec::DEFAULT_MAX_PIXELS) {
                        out.push(violation(
                            ViolationKind::WebpUndecodable,
                            &webp.key,
                            e.to_string(),
                        ));
                    }
                }
            }
        }
    }
    // Thumbnails: gone once recorded gone; all there while nothing may have been deleted.
    let thumbs_gone = matches!(p.state, PhotoState::ThumbsGone | PhotoState::Done);
    let nothing_deleted = matches!(p.state, PhotoState::Pending | PhotoState::Failed);
    if thumbs_gone || nothing_deleted {
        for t in &p.thumbs {
            let present = head(store, t).await?;
            if thumbs_gone && present {
                out.push(violation(
                    ViolationKind::ThumbnailLeft,
                    t,
                    "recorded deleted, still in the store".into(),
                ));
            } else if nothing_deleted && !present {
                out.push(violation(
                    ViolationKind::ThumbnailMissing,
                    t,
                    "gone although the photo has no recorded WebP".into(),
                ));
            }
        }
    }
    // Originals.
    let kept = p.kept_reason.is_some();
    let missing_at_start =
        p.failure_reason.as_deref() == Some(FailureReason::MissingOriginal.as_str());
    let expect_original = match p.state {
        PhotoState::Done => Some(policy == OriginalsPolicy::Keep || kept),
        // Under delete the sweep may have deleted it and not yet recorded done.
        PhotoState::ThumbsGone if policy == OriginalsPolicy::Delete && !kept => None,
        PhotoState::Failed if missing_at_start => None,
        _ => Some(true),
    };
    if let Some(expected) = expect_original {
        let present = head(store, &p.original_key).await?;
        if expected && !present {
            out.push(violation(
                ViolationKind::OriginalMissing,
                &p.original_key,
                if kept {
                    "the original is the photo's copy (kept), and it is gone".into()
                } else {
                    format!("gone under --originals {policy} with the photo {}", p.state)
                },
            ));
        } else if !expected && present {
            out.push(violation(
                ViolationKind::OriginalLeft,
                &p.original_key,
                "recorded done under --originals delete, still in the store".into(),
            ));
        }
    }
    Ok((out, p.webp.is_some(), decoded))
}

async fn head(store: &dyn ObjectStore, key: &str) -> Result<bool, VerifyError> {
    Ok(store.head(key).await.map_err(store_error(key))?.is_some())
}

pub fn render(a: &Audit) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "verify run {:?} (originals {}): {} photos audited ({}), {} WebPs checked, {} decoded\n",
        a.run, a.originals, a.photos, a.scope, a.webps_checked, a.webps_decoded
    );
    for v in &a.violations {
        let _ = writeln!(
            out,
            "violation  photo {}  couple {}  {}  {}  {}  ({})",
            v.photo,
            v.couple,
            v.state,
            v.kind.as_str(),
            v.key,
            v.detail
        );
    }
    if a.violations.is_empty() {
        out.push_str("no violations\n");
    } else {
        let _ = writeln!(out, "{} violation(s)", a.violations.len());
    }
    out
}

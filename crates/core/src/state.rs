//! The photo state machine (docs/architecture.md):
//!
//! ```text
//! pending ──encode+put──▶ stored ──record──▶ switched ──delete thumbs──▶ thumbs_gone ──(policy)──▶ done
//!    └──▶ failed(reason)   (nothing deleted)
//! ```
//!
//! `stored` lives only in a worker's hands (the PUT succeeded, the catalog does not know yet); every
//! other state is what the catalog records. The invariant — never delete the last readable copy of a
//! photo — is enforced here: [`PhotoState::next_step`] offers a deletion only to a switched photo.

use std::fmt;
use std::str::FromStr;

use crate::OriginalsPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PhotoState {
    /// Nothing recorded yet.
    Pending,
    /// The WebP was PUT with a verified checksum but is not recorded yet (never persisted).
    Stored,
    /// The catalog records the WebP: from here on the WebP is the photo's readable copy.
    Switched,
    /// The thumbnails are deleted; the original is still there.
    ThumbsGone,
    /// Finished: the original kept or deleted according to the run's policy.
    Done,
    /// Could not be migrated (see the recorded reason); nothing of it was deleted.
    Failed,
}

/// What a worker does next for a photo in a given state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Get the original, decode, encode, put the WebP.
    Encode,
    /// Record the stored WebP in the catalog (switch).
    Record,
    /// Delete the thumbnails (the photo is switched).
    DeleteThumbs,
    /// Delete the original (the photo is switched, its thumbnails are gone, the policy says delete).
    DeleteOriginal,
    /// Record the photo finished; no deletion is needed.
    Finish,
    /// Nothing left to do.
    Nothing,
}

impl PhotoState {
    pub fn next_step(self, policy: OriginalsPolicy) -> Step {
        match self {
            PhotoState::Pending => Step::Encode,
            PhotoState::Stored => Step::Record,
            PhotoState::Switched => Step::DeleteThumbs,
            PhotoState::ThumbsGone => match policy {
                OriginalsPolicy::Delete => Step::DeleteOriginal,
                OriginalsPolicy::Keep => Step::Finish,
            },
            PhotoState::Done | PhotoState::Failed => Step::Nothing,
        }
    }

    /// True once the catalog holds the WebP as the photo's copy: only then may anything be deleted.
    pub fn is_switched(self) -> bool {
        matches!(
            self,
            PhotoState::Switched | PhotoState::ThumbsGone | PhotoState::Done
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, PhotoState::Done | PhotoState::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PhotoState::Pending => "pending",
            PhotoState::Stored => "stored",
            PhotoState::Switched => "switched",
            PhotoState::ThumbsGone => "thumbs_gone",
            PhotoState::Done => "done",
            PhotoState::Failed => "failed",
        }
    }

    /// The states a recorded state may legally move to; used to guard every catalog upsert so that a
    /// late or duplicate worker can never move a photo backwards.
    pub fn may_become(self, next: PhotoState) -> bool {
        use PhotoState::*;
        matches!(
            (self, next),
            (Pending, Switched | Failed) | (Switched, ThumbsGone | Done) | (ThumbsGone, Done)
        )
    }
}

impl fmt::Display for PhotoState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PhotoState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "pending" => PhotoState::Pending,
            "stored" => PhotoState::Stored,
            "switched" => PhotoState::Switched,
            "thumbs_gone" => PhotoState::ThumbsGone,
            "done" => PhotoState::Done,
            "failed" => PhotoState::Failed,
            other => return Err(format!("unknown photo state {other:?}")),
        })
    }
}

/// Where a switched photo ends up after a round of deletions.
///
/// `thumbs_deleted`: every thumbnail of the photo is confirmed gone. `original_deleted`: the original
/// is confirmed gone (only asked for under the delete policy). A deletion that failed leaves the photo
/// where it was, to be retried on redelivery.
pub fn advance_after_deletes(
    state: PhotoState,
    policy: OriginalsPolicy,
    thumbs_deleted: bool,
    original_deleted: bool,
) -> PhotoState {
    match (state, policy) {
        (PhotoState::Switched, _) if !thumbs_deleted => PhotoState::Switched,
        (PhotoState::Switched | PhotoState::ThumbsGone, OriginalsPolicy::Keep) => PhotoState::Done,
        (PhotoState::Switched | PhotoState::ThumbsGone, OriginalsPolicy::Delete) => {
            if original_deleted {
                PhotoState::Done
            } else {
                PhotoState::ThumbsGone
            }
        }
        (other, _) => other,
    }
}

/// Why a photo could not be migrated; recorded with the photo, counted by `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The original is not in the store.
    MissingOriginal,
    /// The original is not an image recast can decode (corrupt, truncated, unknown format).
    Undecodable,
    /// The image is larger than the pixel cap.
    TooLarge,
    /// The encoder refused the image.
    Encode,
    /// The store denies reading the original (S3 `AccessDenied`): permanent until a policy
    /// changes, so it is recorded at once rather than retried.
    AccessDenied,
    /// The store refused the original's request for another permanent reason.
    StoreRefused,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::MissingOriginal => "missing_original",
            FailureReason::Undecodable => "undecodable",
            FailureReason::TooLarge => "too_large",
            FailureReason::Encode => "encode_failed",
            FailureReason::AccessDenied => "access_denied",
            FailureReason::StoreRefused => "store_refused",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a photo keeps its original as its copy instead of getting a WebP. Not a failure: its
/// thumbnails are deleted like any migrated photo's, and its original is never deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeptReason {
    /// Even the best WebP allowed scored under the run's quality threshold.
    Quality,
    /// The WebP was not at least 5% smaller than the original.
    NoSaving,
    /// The original is already a WebP.
    AlreadyWebp,
    /// The original is animated (a GIF of several frames); its WebP would hold the first frame only.
    Animated,
}

impl KeptReason {
    pub fn as_str(self) -> &'static str {
        match self {
            KeptReason::Quality => "quality",
            KeptReason::NoSaving => "no_saving",
            KeptReason::AlreadyWebp => "already_webp",
            KeptReason::Animated => "animated",
        }
    }
}

impl fmt::Display for KeptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of a photo's WebP: the original key with its extension replaced by `.webp`. A pure
/// function of the photo, so that a repeated PUT rewrites the same object.
pub fn webp_key(original_key: &str) -> String {
    let stem_end = match (original_key.rfind('.'), original_key.rfind('/')) {
        (Some(dot), Some(slash)) if dot > slash + 1 => dot,
        (Some(dot), None) if dot > 0 => dot,
        _ => original_key.len(),
    };
    format!("{}.webp", &original_key[..stem_end])
}

#[cfg(test)]
mod tests {
    use super::*;
    use PhotoState::*;

    const ALL: [PhotoState; 6] = [Pending, Stored, Switched, ThumbsGone, Done, Failed];
    const POLICIES: [OriginalsPolicy; 2] = [OriginalsPolicy::Keep, OriginalsPolicy::Delete];

    #[test]
    fn only_switched_photos_are_offered_deletions() {
        for s in ALL {
            for p in POLICIES {
                let step = s.next_step(p);
                if matches!(step, Step::DeleteThumbs | Step::DeleteOriginal) {
                    assert!(s.is_switched(), "{s} offered {step:?}");
                }
            }
        }
    }

    #[test]
    fn originals_are_deleted_only_under_delete_and_after_thumbs() {
        for s in ALL {
            assert_ne!(s.next_step(OriginalsPolicy::Keep), Step::DeleteOriginal);
            if s.next_step(OriginalsPolicy::Delete) == Step::DeleteOriginal {
                assert_eq!(s, ThumbsGone);
            }
        }
    }

    #[test]
    fn following_the_steps_always_ends_done() {
        for p in POLICIES {
            let mut s = Pending;
            let mut steps = 0;
            while !s.is_terminal() {
                s = match s.next_step(p) {
                    Step::Encode => Stored,
                    Step::Record => Switched,
                    Step::DeleteThumbs => advance_after_deletes(s, p, true, false),
                    Step::DeleteOriginal => advance_after_deletes(s, p, true, true),
                    Step::Finish => advance_after_deletes(s, p, true, false),
                    Step::Nothing => unreachable!("{s} is not terminal"),
                };
                steps += 1;
                assert!(steps < 10, "no progress from {s}");
            }
            assert_eq!(s, Done);
        }
    }

    #[test]
    fn failed_deletions_never_advance_or_regress() {
        for s in ALL {
            for p in POLICIES {
                for thumbs in [false, true] {
                    for original in [false, true] {
                        let next = advance_after_deletes(s, p, thumbs, original);
                        assert!(next == s || s.may_become(next), "{s} -> {next}");
                        if !s.is_switched() {
                            assert_eq!(next, s, "a photo that is not switched moved");
                        }
                        if next == Done && next != s && p == OriginalsPolicy::Delete {
                            assert!(original, "done under delete without the original gone");
                        }
                        if s == Switched && !thumbs {
                            assert_eq!(next, Switched);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn transitions_only_go_forward() {
        for a in ALL {
            assert!(!a.may_become(a), "{a} may become itself");
            for b in ALL {
                if a.may_become(b) {
                    assert!(!b.may_become(a), "{a} <-> {b}");
                    assert_ne!(b, Pending);
                }
            }
            assert!(!Done.may_become(a));
            assert!(!Failed.may_become(a));
        }
    }

    #[test]
    fn states_round_trip_through_text() {
        for s in ALL {
            assert_eq!(s.as_str().parse::<PhotoState>(), Ok(s));
        }
        assert!("gone".parse::<PhotoState>().is_err());
    }

    #[test]
    fn webp_key_replaces_only_the_extension() {
        assert_eq!(webp_key("photos/1/2.jpg"), "photos/1/2.webp");
        assert_eq!(webp_key("photos/1/2.JPEG"), "photos/1/2.webp");
        assert_eq!(webp_key("photos/1.d/2"), "photos/1.d/2.webp");
        assert_eq!(webp_key("a/.hidden"), "a/.hidden.webp");
        assert_eq!(webp_key("x.tar.jpg"), "x.tar.webp");
        assert_eq!(webp_key("noext"), "noext.webp");
    }
}

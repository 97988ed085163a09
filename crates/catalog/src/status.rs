use std::collections::BTreeMap;

use recast_core::{OriginalsPolicy, PhotoState, TallySnapshot};
use serde::Serialize;

/// Photo totals of one recorded state (pending = no row).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateTotals {
    pub photos: u64,
    pub original_bytes: u64,
    pub thumbnails: u64,
    pub thumbnail_bytes: u64,
    pub webp_bytes: u64,
    /// Photos whose original is their copy (no WebP), and those originals' bytes.
    pub kept: u64,
    pub kept_original_bytes: u64,
}

/// Where a run stands, computed from what the catalog recorded.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunStatus {
    pub run: String,
    pub originals: OriginalsPolicy,
    pub couples_total: u64,
    pub couples_enqueued: u64,
    pub producer_finished: bool,
    pub couples_complete: u64,
    /// When the oldest couple enqueued but unfinished was first enqueued (Unix ms), if any.
    pub oldest_unfinished_enqueued_ms: Option<i64>,
    /// Photos whose thumbnails the store refused to delete (not swept until `launch --requeue`).
    pub sweep_blocked: u64,
    pub by_state: BTreeMap<String, StateTotals>,
    pub failures: BTreeMap<String, u64>,
    /// Photos that keep their original, by reason (not failures).
    pub kept: BTreeMap<String, u64>,
    pub requests: TallySnapshot,
    pub attempts: u64,
    pub first_started_ms: Option<i64>,
    pub last_finished_ms: Option<i64>,
}

impl RunStatus {
    fn state(&self, s: PhotoState) -> StateTotals {
        self.by_state.get(s.as_str()).copied().unwrap_or_default()
    }

    /// Couples enqueued whose job has not completed yet: in the queue, running, or lost (a purge,
    /// the queue's retention, a wrong queue — `launch --requeue` sends them again).
    pub fn couples_unfinished(&self) -> u64 {
        self.couples_enqueued.saturating_sub(self.couples_complete)
    }

    pub fn photos_total(&self) -> u64 {
        self.by_state.values().map(|t| t.photos).sum()
    }

    pub fn photos_in(&self, s: PhotoState) -> u64 {
        self.state(s).photos
    }

    /// Objects and bytes in the store before the run touched anything: originals and thumbnails.
    pub fn before(&self) -> (u64, u64) {
        self.by_state.values().fold((0, 0), |(o, b), t| {
            (
                o + t.photos + t.thumbnails,
                b + t.original_bytes + t.thumbnail_bytes,
            )
        })
    }

    /// Objects and bytes in the store now, by what each photo's state says is there.
    pub fn after(&self) -> (u64, u64) {
        let mut objects = 0;
        let mut bytes = 0;
        for (name, t) in &self.by_state {
            let state: PhotoState = name.parse().unwrap_or(PhotoState::Pending);
            let webp = state.is_switched();
            let thumbs_left = !matches!(state, PhotoState::ThumbsGone | PhotoState::Done);
            // Under delete, a done photo's original is gone unless it was kept as the copy.
            let originals_gone =
                state == PhotoState::Done && self.originals == OriginalsPolicy::Delete;
            if webp {
                objects += t.photos - t.kept;
                bytes += t.webp_bytes;
            }
            if thumbs_left {
                objects += t.thumbnails;
                bytes += t.thumbnail_bytes;
            }
            if originals_gone {
                objects += t.kept;
                bytes += t.kept_original_bytes;
            } else {
                objects += t.photos;
                bytes += t.original_bytes;
            }
        }
        (objects, bytes)
    }

    /// True when every photo of the catalog is done or failed and the producer has finished.
    pub fn is_complete(&self) -> bool {
        self.producer_finished
            && self.photos_total()
                == self.photos_in(PhotoState::Done) + self.photos_in(PhotoState::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn totals(photos: u64) -> StateTotals {
        StateTotals {
            photos,
            original_bytes: photos * 1000,
            thumbnails: photos * 5,
            thumbnail_bytes: photos * 500,
            webp_bytes: if photos > 0 { photos * 300 } else { 0 },
            kept: 0,
            kept_original_bytes: 0,
        }
    }

    #[test]
    fn before_and_after_follow_states_and_policy() {
        let mut s = RunStatus::default();
        s.by_state.insert(
            "pending".into(),
            StateTotals {
                webp_bytes: 0,
                ..totals(1)
            },
        );
        s.by_state.insert("done".into(), totals(2));
        s.by_state.insert(
            "failed".into(),
            StateTotals {
                webp_bytes: 0,
                ..totals(1)
            },
        );
        assert_eq!(s.before(), (4 * 6, 4 * 1500));
        // keep: the done photos have original + webp, the others original + thumbnails.
        assert_eq!(s.after(), (2 * 6 + 2 * 2, 2 * 1500 + 2 * 1300));
        s.originals = OriginalsPolicy::Delete;
        assert_eq!(s.after(), (2 * 6 + 2, 2 * 1500 + 2 * 300));
        assert!(!s.is_complete());
        s.producer_finished = true;
        assert!(!s.is_complete(), "a pending photo left");
        s.by_state.remove("pending");
        assert!(s.is_complete());
    }
}

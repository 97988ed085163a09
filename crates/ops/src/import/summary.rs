use serde::{Deserialize, Serialize};

/// Objects and bytes of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindTotals {
    pub objects: u64,
    pub bytes: u64,
}

/// What an import read and did: by kind, the unmatched keys and the orphans (counted, the first
/// [`super::MAX_LISTED`] of each listed), and what the catalog gained. Saved with each
/// checkpoint, so that a resumed import reports the whole source.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportSummary {
    pub source: String,
    pub dry_run: bool,
    /// Units (inventory files, listing pages, manifest chunks) read, and the first of them read
    /// by this process (more than 0 when it resumed from a checkpoint).
    pub units: u64,
    pub resumed_at_unit: u64,
    pub originals: KindTotals,
    pub thumbnails: KindTotals,
    /// Keys no pattern matches: never imported.
    pub unmatched: KindTotals,
    pub unmatched_keys: Vec<String>,
    /// Thumbnails whose original is absent: never imported.
    pub orphans: u64,
    pub orphan_keys: Vec<String>,
    /// What the catalog gained (0 on a dry run, and for what an earlier import added).
    pub couples_added: u64,
    pub photos_added: u64,
    pub thumbnails_added: u64,
}

impl ImportSummary {
    pub fn objects(&self) -> u64 {
        self.originals.objects + self.thumbnails.objects + self.unmatched.objects
    }
}

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What happens to a photo's original JPEG once its WebP is switched in and its thumbnails are gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OriginalsPolicy {
    /// Keep the original next to the WebP (the safe default).
    #[default]
    Keep,
    /// Delete the original after the WebP is recorded and the thumbnails are gone.
    Delete,
}

impl fmt::Display for OriginalsPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OriginalsPolicy::Keep => "keep",
            OriginalsPolicy::Delete => "delete",
        })
    }
}

impl FromStr for OriginalsPolicy {
    type Err = SettingsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "keep" => Ok(OriginalsPolicy::Keep),
            "delete" => Ok(OriginalsPolicy::Delete),
            other => Err(SettingsError::Originals(other.to_owned())),
        }
    }
}

/// The settings of a run, frozen as JSON in the catalog when the run is created: every worker of
/// the run reads them from there, so a worker started with other flags cannot change a run midway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSettings {
    /// WebP quality, 0..=100: every photo's without a `target_score`; with one, that of images
    /// too small to score (under 8 pixels a side).
    pub quality: f32,
    /// libwebp's method (0 = fastest .. 6 = smallest).
    pub method: u8,
    pub originals: OriginalsPolicy,
    /// Per-photo quality: the SSIMULACRA2 score every WebP must reach, each photo getting the
    /// lowest quality that reaches it (see docs/codec.md). `None` (the default, and runs frozen
    /// before it existed): every photo is encoded at `quality`. Opt-in while the search costs
    /// several encodes and whole-photo scores per photo.
    #[serde(default)]
    pub target_score: Option<f64>,
    /// Highest WebP quality the per-photo search may choose; a photo that misses the target even
    /// there keeps its original (reason `quality`).
    #[serde(default = "default_max_quality")]
    pub max_quality: f32,
    /// Carry EXIF (without GPS data and orientation) into the WebPs.
    #[serde(default)]
    pub keep_exif: bool,
}

/// The default target: SSIMULACRA2's "high quality".
pub const DEFAULT_TARGET_SCORE: f64 = 70.0;

/// The default highest quality of the per-photo search.
pub const DEFAULT_MAX_QUALITY: f32 = 95.0;

fn default_max_quality() -> f32 {
    DEFAULT_MAX_QUALITY
}

impl Default for RunSettings {
    fn default() -> Self {
        RunSettings {
            quality: 80.0,
            method: 4,
            originals: OriginalsPolicy::Keep,
            target_score: None,
            max_quality: DEFAULT_MAX_QUALITY,
            keep_exif: false,
        }
    }
}

impl RunSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if !(0.0..=100.0).contains(&self.quality) {
            return Err(SettingsError::Quality(self.quality));
        }
        if self.method > 6 {
            return Err(SettingsError::Method(self.method));
        }
        if !(0.0..=100.0).contains(&self.max_quality) {
            return Err(SettingsError::MaxQuality(self.max_quality));
        }
        if let Some(t) = self.target_score.filter(|t| !(0.0..=100.0).contains(t)) {
            return Err(SettingsError::TargetScore(t));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("quality {0} is outside 0..=100")]
    Quality(f32),
    #[error("method {0} is outside 0..=6")]
    Method(u8),
    #[error("maximum quality {0} is outside 0..=100")]
    MaxQuality(f32),
    #[error("target score {0} is outside 0..=100 (ssimulacra2: 90 visually lossless, 70 high quality, 50 medium)")]
    TargetScore(f64),
    #[error("originals policy {0:?} is neither \"keep\" nor \"delete\"")]
    Originals(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_json() {
        let s = RunSettings {
            quality: 72.5,
            method: 6,
            originals: OriginalsPolicy::Delete,
            target_score: Some(60.0),
            max_quality: 90.0,
            keep_exif: true,
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"delete\""), "{json}");
        assert_eq!(serde_json::from_str::<RunSettings>(&json).unwrap(), s);
        // Runs frozen before the per-photo quality existed (with or without the old guard's
        // min_score) read with the defaults: a fixed quality.
        let old: RunSettings =
            serde_json::from_str(r#"{"quality":80.0,"method":4,"originals":"keep"}"#).unwrap();
        assert_eq!(old, RunSettings::default());
        let guarded: RunSettings = serde_json::from_str(
            r#"{"quality":80.0,"method":4,"originals":"keep","min_score":50.0}"#,
        )
        .unwrap();
        assert_eq!(guarded, RunSettings::default());
    }

    #[test]
    fn settings_validation_rejects_out_of_range() {
        let mut s = RunSettings::default();
        assert_eq!(s.validate(), Ok(()));
        s.quality = 101.0;
        assert_eq!(s.validate(), Err(SettingsError::Quality(101.0)));
        s.quality = 80.0;
        s.method = 7;
        assert_eq!(s.validate(), Err(SettingsError::Method(7)));
        s.method = 4;
        s.target_score = Some(120.0);
        assert_eq!(s.validate(), Err(SettingsError::TargetScore(120.0)));
        assert!("remove".parse::<OriginalsPolicy>().is_err());
        assert_eq!(
            "delete".parse::<OriginalsPolicy>(),
            Ok(OriginalsPolicy::Delete)
        );
    }
}

//! One photo to one WebP, with the fidelity rules applied: an already-WebP photo is left alone,
//! metadata is carried as documented in docs/codec.md, and the result must pass the quality
//! guard and save bytes, or the original is kept.

use std::fmt;

use image::ImageFormat;

use crate::container::attach_metadata;
use crate::exif::strip_gps_and_orientation;
use crate::gif_frames::gif_frame_count;
use crate::quality::{quality_score, DEFAULT_COMPARE_PIXELS};
use crate::{decode_with_metadata, encode_webp, probe, CodecError, EncodeOptions, Transcoded};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvertOptions {
    /// Quality and method of the first try, and the pixel cap.
    pub encode: EncodeOptions,
    /// Run the quality guard. Off, the first encode is taken unmeasured (`score` is `None`):
    /// for measuring the encoder alone, as `recast bench` does beside the full conversion.
    pub check_quality: bool,
    /// Lowest SSIMULACRA2 score accepted (see [`crate::quality_score`]).
    pub min_score: f64,
    /// Encodes tried at most, each `quality_step` above the last (capped at 100).
    pub max_tries: u8,
    pub quality_step: f32,
    /// The WebP must be at least this fraction smaller than the source (0.05 = 5%).
    pub min_saving: f64,
    /// Carry the EXIF block (without GPS data and orientation) into the WebP.
    pub keep_exif: bool,
    /// Pixels compared at most by the quality guard; larger images are judged on full-resolution
    /// tiles (see [`crate::quality_score`]).
    pub compare_pixels: u64,
}

/// On SSIMULACRA2's scale 50 is "medium quality": artefacts visible at 100% zoom without the
/// original beside it. Photos at WebP quality 80 score well above it on full-resolution tiles
/// (the 25 bench photos: mean 75.6, worst 65.1), so the guard re-encodes only photos that
/// quality 80 really fails.
pub const DEFAULT_MIN_SCORE: f64 = 50.0;

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            encode: EncodeOptions::default(),
            check_quality: true,
            min_score: DEFAULT_MIN_SCORE,
            max_tries: 3,
            quality_step: 8.0,
            min_saving: 0.05,
            keep_exif: false,
            compare_pixels: DEFAULT_COMPARE_PIXELS,
        }
    }
}

/// A WebP that passed the guard.
#[derive(Debug, Clone)]
pub struct Converted {
    pub out: Transcoded,
    /// WebP quality of the encode kept.
    pub quality: f32,
    /// Its SSIMULACRA2 score; `None` when not measured: the guard was off, or the image is too
    /// small to measure (under 8 pixels a side).
    pub score: Option<f64>,
    /// Encodes made (1 when the first one passed).
    pub tries: u8,
    /// Frames of the source: more than 1 for an animated GIF, of which only the first frame is
    /// in the WebP (see docs/codec.md).
    pub source_frames: u32,
}

/// Why the original is kept instead of a WebP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// Even the last try scored under the threshold.
    Quality,
    /// The WebP was not at least `min_saving` smaller than the source.
    NoSaving,
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeepReason::Quality => "quality",
            KeepReason::NoSaving => "no saving",
        })
    }
}

#[derive(Debug, Clone)]
pub enum Conversion {
    Webp(Converted),
    /// The source is already a WebP; it is not re-encoded (dimensions from its header).
    AlreadyWebp {
        width: u32,
        height: u32,
    },
    /// Keep the original; `detail` says by how much it missed, for logs and the CLI.
    Keep {
        reason: KeepReason,
        detail: String,
    },
}

/// Converts one photo: decode (pixel cap from the header, orientation applied), encode, check
/// the quality against the source (re-encoding higher up to `max_tries`), then check the saving.
pub fn convert(input: &[u8], opts: &ConvertOptions) -> Result<Conversion, CodecError> {
    // Sniffed from the magic bytes, so other formats' headers are parsed once, by the decoder.
    if image::guess_format(input).ok() == Some(ImageFormat::WebP) {
        let info = probe(input)?;
        return Ok(Conversion::AlreadyWebp {
            width: info.width,
            height: info.height,
        });
    }
    let decoded = decode_with_metadata(input, opts.encode.max_pixels, opts.keep_exif)?;
    let image = &decoded.image;
    let exif = decoded.exif.as_deref().and_then(strip_gps_and_orientation);
    let mut quality = opts.encode.quality;
    let mut tries = 0;
    loop {
        tries += 1;
        let encode = EncodeOptions {
            quality,
            ..opts.encode
        };
        let bare = encode_webp(image, &encode)?;
        let score = if opts.check_quality {
            quality_score(image, &bare, opts.compare_pixels)?
        } else {
            None
        };
        let webp = attach_metadata(
            bare,
            image.width(),
            image.height(),
            decoded.icc.as_deref(),
            exif.as_deref(),
        )
        .map_err(CodecError::Encode)?;
        let budget = input.len() as f64 * (1.0 - opts.min_saving);
        if webp.len() as f64 > budget {
            return Ok(Conversion::Keep {
                reason: KeepReason::NoSaving,
                detail: format!(
                    "webp {} bytes at quality {quality}, source {} bytes: {:.1}% smaller, {:.0}% needed",
                    webp.len(),
                    input.len(),
                    100.0 * (1.0 - webp.len() as f64 / input.len() as f64),
                    100.0 * opts.min_saving
                ),
            });
        }
        let passed = score.is_none_or(|s| s >= opts.min_score);
        if passed {
            return Ok(Conversion::Webp(Converted {
                out: Transcoded {
                    webp,
                    width: image.width(),
                    height: image.height(),
                    source_format: decoded.info.format_name(),
                },
                quality,
                score,
                tries,
                source_frames: match decoded.info.format {
                    ImageFormat::Gif => gif_frame_count(input).max(1),
                    _ => 1,
                },
            }));
        }
        if tries >= opts.max_tries || quality >= 100.0 {
            return Ok(Conversion::Keep {
                reason: KeepReason::Quality,
                detail: format!(
                    "ssimulacra2 {:.1} under {:.1} at quality {quality} after {tries} tries",
                    score.unwrap_or(f64::NAN),
                    opts.min_score
                ),
            });
        }
        quality = (quality + opts.quality_step).min(100.0);
    }
}

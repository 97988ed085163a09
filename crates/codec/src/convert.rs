//! One photo to one WebP, with the fidelity rules applied: an already-WebP photo is left alone,
//! metadata is carried as documented in docs/codec.md, and the result must pass the quality
//! guard and save bytes, or the original is kept.

use std::fmt;

use image::ImageFormat;

use crate::container::attach_metadata;
use crate::decode::Decoded;
use crate::encode::encode_webp_owned;
use crate::exif::strip_gps_and_orientation;
use crate::gif_frames::gif_frame_count;
use crate::search::{choose_quality, Prober, CHECK_MARGIN};
use crate::{decode_with_metadata, probe, CodecError, EncodeOptions, Transcoded};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConvertOptions {
    /// Method and pixel cap; its quality is the fixed one used when `check_quality` is off.
    pub encode: EncodeOptions,
    /// Choose the quality per photo (the lowest reaching `target_score`). Off, the photo is
    /// encoded once at `encode.quality`, unmeasured (`score` is `None`): for measuring the
    /// encoder alone, as `recast bench` does beside the full conversion.
    pub check_quality: bool,
    /// SSIMULACRA2 score every converted photo must reach (see [`crate::choose_quality`]).
    pub target_score: f64,
    /// Highest WebP quality tried; a photo that misses the target even there keeps its original.
    pub max_quality: f32,
    /// The WebP must be at least this fraction smaller than the source (0.05 = 5%).
    pub min_saving: f64,
    /// Carry the EXIF block (without GPS data and orientation) into the WebP.
    pub keep_exif: bool,
}

/// On SSIMULACRA2's scale 70 is "high quality": no artefacts visible at a normal viewing
/// distance. Photos at WebP quality 80 score 65-85 (the 25 bench photos: mean 75.6, worst 65.1),
/// so a target of 70 saves bytes on the easy ones and spends them on the hard ones.
pub const DEFAULT_TARGET_SCORE: f64 = 70.0;

/// Highest quality the search may choose.
pub const DEFAULT_MAX_QUALITY: f32 = 95.0;

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            encode: EncodeOptions::default(),
            check_quality: true,
            target_score: DEFAULT_TARGET_SCORE,
            max_quality: DEFAULT_MAX_QUALITY,
            min_saving: 0.05,
            keep_exif: false,
        }
    }
}

impl ConvertOptions {
    /// These options with the run's per-photo quality: with a target score, the lowest quality
    /// reaching it is chosen per photo; without one, every photo is encoded at `encode.quality`.
    pub fn with_target(self, target_score: Option<f64>) -> ConvertOptions {
        ConvertOptions {
            check_quality: target_score.is_some(),
            target_score: target_score.unwrap_or(DEFAULT_TARGET_SCORE),
            ..self
        }
    }
}

/// A WebP that passed the guard.
#[derive(Debug, Clone)]
pub struct Converted {
    pub out: Transcoded,
    /// WebP quality of the encode kept.
    pub quality: f32,
    /// Its SSIMULACRA2 score on the whole photo; `None` when not measured: the quality was
    /// fixed, or the image is too small to measure (under 8 pixels a side).
    pub score: Option<f64>,
    /// Full-size encodes of the quality search, each scored on the whole photo (0 when the
    /// quality was fixed).
    pub tries: u8,
    /// Frames of the source: more than 1 for an animated GIF, of which only the first frame is
    /// in the WebP (see docs/codec.md).
    pub source_frames: u32,
}

/// Why the original is kept instead of a WebP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// Even the maximum quality scored under the target.
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

/// Converts one photo: decode (pixel cap from the header, orientation applied), choose the
/// lowest quality whose whole-photo score reaches the target, then check the saving.
pub fn convert(input: &[u8], opts: &ConvertOptions) -> Result<Conversion, CodecError> {
    // Sniffed from the magic bytes, so other formats' headers are parsed once, by the decoder.
    if image::guess_format(input).ok() == Some(ImageFormat::WebP) {
        let info = probe(input)?;
        return Ok(Conversion::AlreadyWebp {
            width: info.width,
            height: info.height,
        });
    }
    let Decoded {
        image,
        info,
        icc,
        exif,
    } = decode_with_metadata(input, opts.encode.max_pixels, opts.keep_exif)?;
    let (width, height) = (image.width(), image.height());
    let exif = exif.as_deref().and_then(strip_gps_and_orientation);
    let prober = if opts.check_quality {
        Prober::new(&image, opts.encode.method)
    } else {
        None
    };
    let (quality, score, tries, bare) = match prober {
        None => {
            let options = EncodeOptions {
                quality: opts.encode.quality,
                ..opts.encode
            };
            // The pixels go once libwebp has its own copy: a large photo's RGB and the
            // encoder's working memory are never held at once.
            let webp = encode_webp_owned(image, &options)?;
            (opts.encode.quality, None, 0, webp)
        }
        Some(mut prober) => {
            let choice = choose_quality(&mut prober, opts.target_score, opts.max_quality)?;
            if !choice.reached {
                return Ok(Conversion::Keep {
                    reason: KeepReason::Quality,
                    detail: format!(
                        "ssimulacra2 {:.1} on the whole photo, under the {:.1} needed for the \
                         target {:.1}, even at the maximum quality {}",
                        choice.score,
                        opts.target_score + CHECK_MARGIN,
                        opts.target_score,
                        choice.quality
                    ),
                });
            }
            (
                choice.quality,
                Some(choice.score),
                choice.encodes,
                choice.webp,
            )
        }
    };
    let webp = attach_metadata(bare, width, height, icc.as_deref(), exif.as_deref())
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
    Ok(Conversion::Webp(Converted {
        out: Transcoded {
            webp,
            width,
            height,
            source_format: info.format_name(),
        },
        quality,
        score,
        tries,
        source_frames: match info.format {
            ImageFormat::Gif => gif_frame_count(input).max(1),
            _ => 1,
        },
    }))
}

//! Per-photo quality: the lowest WebP quality whose SSIMULACRA2 score, **on the whole photo at
//! full resolution**, reaches the target.
//!
//! Each try encodes the whole photo and scores it whole (by `ssim2_stream.rs`: the same metric
//! as the `ssimulacra2` crate, row by row, in a few rows of memory). The first try is a probe
//! at [`PROBE_QUALITY`]; the second is at the quality a model fitted on other photos predicts
//! from the probe's score (`predict.rs`), aimed a little above; each further one is a secant
//! step on the whole scores measured so far, until a score lands just above the target, at most
//! [`MAX_ENCODES`] tries (two more when none has passed yet). Small probe tiles were tried as a
//! cheaper guide and dropped: they judged the photo too kindly by an amount that varied per photo
//! and per quality (4 to 17 points). See docs/codec.md for what this costs against `cwebp`.

use image::DynamicImage;

use crate::predict::{quality_after_probe, PROBE_QUALITY};
use crate::quality::{srgb_to_linear_table, Pixels};
use crate::ssim2_stream::{self, Srgb};
use crate::{encode_webp, CodecError, EncodeOptions};

/// Lowest quality the search goes down to. The whole photo is scored, so the search may go
/// low on photos that stay good there (smooth, upscaled ones); libwebp's output under 30 is
/// blocky in ways a target of 50 or more never accepts anyway.
pub const MIN_QUALITY: f32 = 30.0;

/// The whole photo's score must exceed the target by this much: recast's SSIMULACRA2 and the
/// independent one (`scripts/check-ssimulacra2`) differ by up to about half a point, both ways.
pub const CHECK_MARGIN: f64 = 0.5;

/// A whole score within this of the goal is close enough: a lower quality would save little
/// and cost another full encode.
const CLOSE_ENOUGH: f64 = 1.5;

/// Full-size encodes (each with its whole-image score) per photo, when one of them has passed.
pub const MAX_ENCODES: u8 = 3;

/// Further encodes allowed while none has passed, the last at the maximum quality: they decide
/// between a WebP and keeping the original.
const EXTRA_ENCODES_TO_PASS: u8 = 2;

/// The slope assumed for a step up after a whole score under the goal: a low one, so that the
/// step is long enough to pass.
const BOLD_SLOPE: f64 = 0.45;

/// The slope assumed for a step down after a whole score well above the goal: a high one, so
/// that the step is short enough to still pass.
const GENTLE_SLOPE: f64 = 0.9;

/// The lowest slope a step believes (score points per quality point); measured ones under it
/// come from where the curve flattens, at high qualities.
const MIN_SLOPE: f64 = 0.35;

/// A step up after a failing try goes at least this far: a shorter one would most likely
/// fail again by a hair.
const MIN_STEP_UP: f32 = 2.0;

/// What the search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The quality chosen: the lowest encoded one whose whole score reached the goal, or the
    /// highest encoded when none did.
    pub quality: f32,
    /// Its whole-photo score.
    pub score: f64,
    /// Whether the score reaches the target (with [`CHECK_MARGIN`]).
    pub reached: bool,
    /// Full-size encodes made (each scored whole).
    pub encodes: u8,
    /// The WebP at `quality`.
    pub webp: Vec<u8>,
}

/// The photo prepared for the search: its pixels as the encoder and the metric see them.
pub struct Prober<'a> {
    image: &'a DynamicImage,
    source: Pixels<'a>,
    method: u8,
    lut: [f32; 256],
}

impl<'a> Prober<'a> {
    /// `None` when the image is too small to score (under 8 pixels a side).
    pub fn new(image: &'a DynamicImage, method: u8) -> Option<Prober<'a>> {
        if image.width() < 8 || image.height() < 8 {
            return None;
        }
        Some(Prober {
            image,
            source: Pixels::of(image),
            method,
            lut: srgb_to_linear_table(),
        })
    }

    /// The whole photo encoded at `quality`, and its whole score.
    fn encode_and_score(&self, quality: f32) -> Result<(Vec<u8>, f64), CodecError> {
        let options = EncodeOptions {
            quality,
            method: self.method,
            max_pixels: u64::MAX,
        };
        let webp = encode_webp(self.image, &options)?;
        let score = self.score_webp(&webp)?;
        Ok((webp, score))
    }

    /// Decodes `webp` and scores it against the source, row by row (`ssim2_stream.rs`).
    fn score_webp(&self, webp: &[u8]) -> Result<f64, CodecError> {
        let decoded = webp::Decoder::new(webp)
            .decode()
            .ok_or_else(|| CodecError::Encode("the encoded WebP does not decode".into()))?;
        let (w, h) = (decoded.width(), decoded.height());
        if (w, h) != (self.image.width(), self.image.height()) {
            return Err(CodecError::Encode(format!(
                "the encoded WebP is {w}x{h}, the source {}x{}",
                self.image.width(),
                self.image.height()
            )));
        }
        let distorted = Srgb {
            bytes: &decoded,
            channels: if decoded.is_alpha() { 4 } else { 3 },
        };
        ssim2_stream::score(
            self.source.srgb(),
            distorted,
            w as usize,
            h as usize,
            &self.lut,
        )
        .ok_or_else(|| CodecError::Encode("the photo is too small to score".into()))
    }
}

/// An encode made and scored whole.
struct Encoded {
    quality: f32,
    score: f64,
    webp: Vec<u8>,
}

/// The lowest quality, at most `max_quality`, whose whole-photo score reaches `target` (plus
/// [`CHECK_MARGIN`]), with its WebP.
pub fn choose_quality(
    prober: &mut Prober<'_>,
    target: f64,
    max_quality: f32,
) -> Result<Choice, CodecError> {
    let max_quality = max_quality.clamp(0.0, 100.0);
    let min_quality = MIN_QUALITY.min(max_quality);
    let goal = target + CHECK_MARGIN;
    let mut encoded: Vec<Encoded> = Vec::new();
    loop {
        let passed = encoded.iter().any(|e| e.score >= goal);
        let allowed = if passed {
            MAX_ENCODES
        } else {
            MAX_ENCODES + EXTRA_ENCODES_TO_PASS
        };
        if encoded.len() >= usize::from(allowed) {
            break;
        }
        // The qualities left to try lie strictly between the highest that failed and the
        // lowest that passed.
        let lowest_pass = encoded
            .iter()
            .filter(|e| e.score >= goal)
            .map(|e| e.quality)
            .reduce(f32::min);
        let highest_fail = encoded
            .iter()
            .filter(|e| e.score < goal)
            .map(|e| e.quality)
            .reduce(f32::max);
        let lo = highest_fail.map_or(min_quality, |f| f + 1.0);
        let hi = lowest_pass.map_or(max_quality, |p| p - 1.0);
        if lo > hi {
            break;
        }
        let quality = if !passed && encoded.len() + 1 == usize::from(allowed) {
            // The last try left: the maximum decides whether any quality reaches the goal.
            hi
        } else {
            match encoded.as_slice() {
                [] => PROBE_QUALITY,
                // After the probe alone: the quality the fitted model says reaches the goal.
                [probe] if probe.quality == PROBE_QUALITY => {
                    quality_after_probe(probe.score, goal, target)
                }
                _ => next_step(&encoded, goal).unwrap_or(PROBE_QUALITY),
            }
            .clamp(lo, hi)
        };
        let (webp, score) = prober.encode_and_score(quality)?;
        let done = (score >= goal && (score < goal + CLOSE_ENOUGH || quality <= lo))
            || (score < goal && quality >= max_quality);
        encoded.push(Encoded {
            quality,
            score,
            webp,
        });
        if done {
            break;
        }
    }
    let encodes = encoded.len() as u8;
    let best = (0..encoded.len())
        .filter(|&i| encoded[i].score >= goal)
        .min_by(|&a, &b| encoded[a].quality.total_cmp(&encoded[b].quality))
        .or_else(|| {
            (0..encoded.len()).max_by(|&a, &b| encoded[a].quality.total_cmp(&encoded[b].quality))
        })
        .expect("at least one encode");
    let chosen = encoded.swap_remove(best);
    Ok(Choice {
        quality: chosen.quality,
        score: chosen.score,
        reached: chosen.score >= goal,
        encodes,
        webp: chosen.webp,
    })
}

/// The next quality from the whole scores measured so far: a secant step between the closest
/// passing and failing encodes once the goal is bracketed, else a step by the photo's measured
/// slope (two encodes) or an assumed one, bold upwards and gentle downwards, so that a step
/// rarely has to be taken back. `None` before the first encode.
fn next_step(encoded: &[Encoded], goal: f64) -> Option<f32> {
    let pass = encoded
        .iter()
        .filter(|e| e.score >= goal)
        .min_by(|a, b| a.quality.total_cmp(&b.quality));
    let fail = encoded
        .iter()
        .filter(|e| e.score < goal)
        .max_by(|a, b| a.quality.total_cmp(&b.quality));
    let measured = match encoded {
        [.., a, b] if (b.quality - a.quality).abs() >= 2.0 => {
            let s = (b.score - a.score) / f64::from(b.quality - a.quality);
            // Scores flatten at high qualities, where a measured slope would send the next
            // step far too low: it counts for at least MIN_SLOPE.
            Some(s.clamp(MIN_SLOPE, 3.0))
        }
        _ => None,
    };
    Some(match (pass, fail) {
        (Some(p), Some(f)) => {
            let t = (goal - f.score) / (p.score - f.score).max(1e-6);
            (f.quality + (p.quality - f.quality) * t as f32).ceil()
        }
        (Some(p), None) => {
            let slope = measured.unwrap_or(GENTLE_SLOPE);
            (p.quality - ((p.score - goal) / slope) as f32).floor()
        }
        (None, Some(f)) => {
            let slope = measured.unwrap_or(BOLD_SLOPE);
            (f.quality + ((goal - f.score) / slope) as f32)
                .ceil()
                .max(f.quality + MIN_STEP_UP)
        }
        (None, None) => return None,
    })
}

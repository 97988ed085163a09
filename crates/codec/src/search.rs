//! Per-photo quality: the lowest WebP quality whose SSIMULACRA2 score reaches a target, found
//! on small full-resolution tiles of the photo rather than on the whole of it.
//!
//! A probe encodes each tile (a crop of the decoded source) at one quality, decodes it and
//! scores it against the same crop of the source; the probe's score is its worst tile's. The
//! source's tiles are cut and converted to linear light once and reused by every probe. The
//! search starts at a quality predicted from the photo, steps by secant towards the target and
//! stops after a few probes; only the quality it chooses is then encoded at full size. See
//! docs/codec.md for what this costs and how it compares with scoring the whole photo.

use image::{DynamicImage, RgbImage, RgbaImage};
use ssimulacra2::{compute_frame_ssimulacra2, LinearRgb};

use crate::quality::{srgb_to_linear_table, tiles_of, Pixels, Rect};
use crate::{encode_webp, CodecError, EncodeOptions};

/// Side of the probe tiles.
pub const PROBE_TILE_SIDE: u32 = 128;

/// Pixels scored per probe at most: four 128x128 tiles. A probe costs about 1 µs per pixel
/// (SSIMULACRA2 dominates; encoding the tiles is a few milliseconds), so four probes of a 3 MP
/// photo cost about a quarter of one full encode.
pub const DEFAULT_PROBE_PIXELS: u64 = 4 * (PROBE_TILE_SIDE as u64) * (PROBE_TILE_SIDE as u64);

/// Lowest quality the search goes down to. Below it, probe tiles can miss what the whole photo
/// shows: a flat wallpaper scored 72.6 on its tiles at quality 30 and 55.6 whole.
pub const MIN_QUALITY: f32 = 50.0;

/// Probe tiles score higher than the whole photo (128-pixel tiles carry fewer of the metric's
/// coarse scales, and sample the photo): the search aims this far above the target. Measured on
/// bench photos against an independent whole-image SSIMULACRA2 (docs/codec.md): 4 to 7.5 points.
pub const PROBE_MARGIN: f64 = 6.0;

/// Quality of the first probe: near most bench photos' answer at the default target.
const START_QUALITY: f32 = 76.0;

/// Score points gained per quality point, assumed until two probes measure the photo's own
/// slope (the bench corpus: 0.4 to 0.9 between qualities 50 and 90).
const ASSUMED_SLOPE: f64 = 0.6;

/// Probes of the search; when none of them reached the target, one more at `max_quality`
/// decides between its quality and "kept: quality".
const MAX_PROBES: u8 = 3;

/// Qualities closer than this to a known failing one are not worth another probe.
const RESOLUTION: f32 = 2.0;

/// What the search found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    /// The quality chosen: the lowest probed one that reached the target, or `max_quality`
    /// when none did.
    pub quality: f32,
    /// Its score (worst probe tile, which the search holds `PROBE_MARGIN` above the target).
    pub score: f64,
    /// Whether the score reaches the target.
    pub reached: bool,
    /// Probes made.
    pub probes: u8,
}

/// One tile: the source's crop as the encoder sees it, and its linear-light pixels.
struct Tile {
    crop: DynamicImage,
    linear: LinearRgb,
}

/// The tiles of one photo, probed at any quality.
pub struct Prober {
    tiles: Vec<Tile>,
    method: u8,
    lut: [f32; 256],
    /// The tile is the whole image: its encode is the photo's, kept for reuse.
    whole: bool,
    probes: u8,
}

impl Prober {
    /// `None` when the image is too small to score (under 8 pixels a side).
    pub fn new(image: &DynamicImage, method: u8, probe_pixels: u64) -> Option<Prober> {
        let (width, height) = (image.width(), image.height());
        if width < 8 || height < 8 {
            return None;
        }
        let lut = srgb_to_linear_table();
        let source = Pixels::of(image);
        let rects = tiles_of(width, height, probe_pixels, PROBE_TILE_SIDE);
        let whole = rects == [(0, 0, width as usize, height as usize)];
        let tiles = rects
            .into_iter()
            .map(|rect| Tile {
                crop: crop(&source, rect),
                linear: source.linear(rect, &lut),
            })
            .collect();
        Some(Prober {
            tiles,
            method,
            lut,
            whole,
            probes: 0,
        })
    }

    /// Score at `quality` (worst tile), and the encoded bytes when the tile is the whole image.
    pub fn probe(&mut self, quality: f32) -> Result<(f64, Option<Vec<u8>>), CodecError> {
        self.probes += 1;
        let options = EncodeOptions {
            quality,
            method: self.method,
            max_pixels: u64::MAX,
        };
        let mut worst = f64::INFINITY;
        let mut bytes = None;
        for tile in &self.tiles {
            let webp = encode_webp(&tile.crop, &options)?;
            let decoded = webp::Decoder::new(&webp)
                .decode()
                .ok_or_else(|| CodecError::Encode("the encoded WebP does not decode".into()))?;
            let pixels = Pixels {
                bytes: std::borrow::Cow::Borrowed(&decoded),
                channels: if decoded.is_alpha() { 4 } else { 3 },
                width: decoded.width() as usize,
            };
            let rect = (0, 0, decoded.width() as usize, decoded.height() as usize);
            let score =
                compute_frame_ssimulacra2(tile.linear.clone(), pixels.linear(rect, &self.lut))
                    .map_err(|e| {
                        CodecError::Encode(format!("cannot compare the WebP with its source: {e}"))
                    })?;
            worst = worst.min(score);
            if self.whole {
                bytes = Some(webp);
            }
        }
        Ok((worst, bytes))
    }
}

/// A probe made: quality, score, and the whole image's bytes when the tile was all of it.
struct Probe {
    quality: f32,
    score: f64,
    bytes: Option<Vec<u8>>,
}

/// The lowest quality, at most `max_quality`, whose probe score reaches `target`, and the
/// photo's bytes at it when the probe encoded the whole image.
pub fn choose_quality(
    prober: &mut Prober,
    target: f64,
    max_quality: f32,
) -> Result<(Choice, Option<Vec<u8>>), CodecError> {
    let max_quality = max_quality.clamp(0.0, 100.0);
    let target = target + PROBE_MARGIN;
    let mut probes: Vec<Probe> = Vec::new();
    let mut quality = START_QUALITY.min(max_quality);
    loop {
        let (score, bytes) = prober.probe(quality)?;
        probes.push(Probe {
            quality,
            score,
            bytes,
        });
        let pass = probes
            .iter()
            .filter(|p| p.score >= target)
            .min_by(|a, b| a.quality.total_cmp(&b.quality));
        let fail = probes
            .iter()
            .filter(|p| p.score < target)
            .max_by(|a, b| a.quality.total_cmp(&b.quality));
        let next = match (pass, fail) {
            (Some(p), Some(f)) if p.quality - f.quality <= RESOLUTION => None,
            (Some(p), Some(f)) => {
                // Secant between the bracket's ends, rounded up so it errs towards passing.
                let t = (target - f.score) / (p.score - f.score).max(1e-6);
                let q = (f.quality + (p.quality - f.quality) * t as f32).ceil();
                Some(q.clamp(f.quality + 1.0, p.quality - 1.0))
            }
            (Some(p), None) if p.quality <= MIN_QUALITY => None,
            (Some(p), None) => {
                let q = p.quality - ((p.score - target) / slope(&probes)) as f32;
                Some(q.floor().clamp(MIN_QUALITY, p.quality - 1.0))
            }
            (None, Some(f)) if f.quality >= max_quality => None,
            (None, Some(f)) => {
                let q = f.quality + ((target - f.score) / slope(&probes)) as f32;
                Some(q.ceil().clamp(f.quality + 1.0, max_quality))
            }
            (None, None) => unreachable!("every probe passes or fails"),
        };
        match next {
            Some(q) if probes.len() < usize::from(MAX_PROBES) => quality = q,
            // Out of probes with none passing: one more at the maximum decides whether any
            // quality reaches the target.
            Some(_) if pass.is_none() => quality = max_quality,
            _ => break,
        }
    }
    // The lowest quality that reached the target; when none did, the highest quality tried
    // stands for the photo.
    let lowest_pass = (0..probes.len())
        .filter(|&i| probes[i].score >= target)
        .min_by(|&a, &b| probes[a].quality.total_cmp(&probes[b].quality));
    let best = lowest_pass.unwrap_or_else(|| {
        (0..probes.len())
            .max_by(|&a, &b| probes[a].quality.total_cmp(&probes[b].quality))
            .expect("at least one probe")
    });
    let chosen = probes.swap_remove(best);
    Ok((
        Choice {
            quality: chosen.quality,
            score: chosen.score,
            reached: chosen.score >= target,
            probes: prober.probes,
        },
        chosen.bytes,
    ))
}

/// The photo's slope measured by its two most recent probes when they are far enough apart and
/// rising, else the assumed one.
fn slope(probes: &[Probe]) -> f64 {
    if let [.., a, b] = probes {
        let dq = f64::from(b.quality - a.quality);
        if dq.abs() >= 2.0 {
            let s = (b.score - a.score) / dq;
            if s > 0.1 {
                return s.min(3.0);
            }
        }
    }
    ASSUMED_SLOPE
}

/// A rectangle of the source as an 8-bit RGB(A) image.
fn crop(source: &Pixels<'_>, (x0, y0, w, h): Rect) -> DynamicImage {
    let c = source.channels;
    let mut out = Vec::with_capacity(w * h * c);
    for y in y0..y0 + h {
        out.extend_from_slice(&source.bytes[(y * source.width + x0) * c..][..w * c]);
    }
    let (w, h) = (w as u32, h as u32);
    if c == 4 {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, out).expect("w x h x 4 bytes"))
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, out).expect("w x h x 3 bytes"))
    }
}

//! The perceptual comparison behind the quality guard: SSIMULACRA2 (ssimulacra2 crate) between
//! the decoded source and the decoded WebP.

use std::borrow::Cow;

use image::DynamicImage;
use ssimulacra2::{compute_frame_ssimulacra2, LinearRgb};

use crate::ssim2::{Image3, Reference};
use crate::CodecError;

/// Side of the square tiles compared on images larger than the comparison budget.
pub const TILE_SIDE: u32 = 256;

/// Pixels compared at most per image: two full-resolution tiles. SSIMULACRA2 costs about a
/// microsecond per pixel on one core, so comparing a 3 MP photo whole would cost several times
/// its encode; two tiles cost about half an encode.
pub const DEFAULT_COMPARE_PIXELS: u64 = 2 * (TILE_SIDE as u64) * (TILE_SIDE as u64);

/// Images smaller than this on a side are not measured: SSIMULACRA2 needs 8.
const MIN_SIDE: u32 = 8;

/// SSIMULACRA2 score of `webp` against `source`: 100 is identical, about 90 visually lossless,
/// 70 high quality, 50 medium. `None` when the image is too small to measure.
///
/// An image of at most `compare_pixels` pixels is compared whole. A larger one is compared on
/// `compare_pixels / 256²` tiles of 256x256 spread evenly over it, at full resolution (a
/// downscale would hide exactly the artefacts the guard is for, and would make the score depend
/// on the photo's size), and its score is the worst tile's: the loss is visible somewhere.
/// Transparent pixels are compared composited over mid grey, since the encoder may change the
/// colour of pixels nobody can see.
pub fn quality_score(
    source: &DynamicImage,
    webp: &[u8],
    compare_pixels: u64,
) -> Result<Option<f64>, CodecError> {
    let decoded = webp::Decoder::new(webp)
        .decode()
        .ok_or_else(|| CodecError::Encode("the encoded WebP does not decode".into()))?;
    let (width, height) = (source.width(), source.height());
    if (decoded.width(), decoded.height()) != (width, height) {
        return Err(CodecError::Encode(format!(
            "the encoded WebP is {}x{}, the source {width}x{height}",
            decoded.width(),
            decoded.height()
        )));
    }
    if width < MIN_SIDE || height < MIN_SIDE {
        return Ok(None);
    }
    let source = Pixels::of(source);
    let decoded = Pixels {
        bytes: Cow::Borrowed(&decoded),
        channels: if decoded.is_alpha() { 4 } else { 3 },
        width: width as usize,
    };
    let lut = srgb_to_linear_table();
    let mut worst = f64::INFINITY;
    for tile in tiles(width, height, compare_pixels) {
        let score =
            compute_frame_ssimulacra2(source.linear(tile, &lut), decoded.linear(tile, &lut))
                .map_err(|e| {
                    CodecError::Encode(format!("cannot compare the WebP with its source: {e}"))
                })?;
        worst = worst.min(score);
    }
    Ok(Some(worst))
}

/// SSIMULACRA2 of `distorted` against `source` on the whole images at full resolution, computed
/// by recast's own implementation of the metric (`ssim2.rs`, faster than the crate's, same
/// score within 0.5 points). `None` when the sizes differ or a side is under 8 pixels.
pub fn ssimulacra2_whole(source: &DynamicImage, distorted: &DynamicImage) -> Option<f64> {
    if (source.width(), source.height()) != (distorted.width(), distorted.height()) {
        return None;
    }
    let lut = srgb_to_linear_table();
    let linear = |image: &DynamicImage| {
        let p = Pixels::of(image);
        let rect = (0, 0, image.width() as usize, image.height() as usize);
        Image3::linear_from_srgb(&p.bytes, p.channels, p.width, rect, &lut)
    };
    let reference = Reference::new(linear(source))?;
    Some(reference.score(linear(distorted)))
}

/// [`ssimulacra2_whole`] computed row by row (`ssim2_stream.rs`): the same score within 0.01
/// points (channels with negligible weights skipped), in a few rows of memory per scale instead
/// of ~100 bytes per pixel, and about three times faster (the planes stay in the cache). `None` when the sizes differ or a side is under 8 pixels.
pub fn ssimulacra2_streamed(source: &DynamicImage, distorted: &DynamicImage) -> Option<f64> {
    if (source.width(), source.height()) != (distorted.width(), distorted.height()) {
        return None;
    }
    let (a, b) = (Pixels::of(source), Pixels::of(distorted));
    crate::ssim2_stream::score(
        a.srgb(),
        b.srgb(),
        source.width() as usize,
        source.height() as usize,
        &srgb_to_linear_table(),
    )
}

/// A rectangle of the image: x, y, width, height.
pub(crate) type Rect = (usize, usize, usize, usize);

/// The whole image when it fits the budget, else tiles on an even grid (as many as the budget
/// pays for, at least one; the grid follows the image's aspect ratio).
pub(crate) fn tiles(width: u32, height: u32, compare_pixels: u64) -> Vec<Rect> {
    tiles_of(width, height, compare_pixels, TILE_SIDE)
}

/// [`tiles`] with tiles of `side` pixels.
pub(crate) fn tiles_of(width: u32, height: u32, compare_pixels: u64, side: u32) -> Vec<Rect> {
    let (w, h) = (width as usize, height as usize);
    if u64::from(width) * u64::from(height) <= compare_pixels {
        return vec![(0, 0, w, h)];
    }
    let (tw, th) = ((side as usize).min(w), (side as usize).min(h));
    let count = (compare_pixels / (u64::from(side) * u64::from(side))).max(1) as usize;
    let across = ((count as f64 * w as f64 / h as f64).sqrt().round() as usize).clamp(1, count);
    let down = count.div_ceil(across);
    let mut out = Vec::with_capacity(count);
    for j in 0..down {
        for i in 0..across {
            if out.len() == count {
                break;
            }
            // Tile centres at the middle of each grid cell, tiles kept inside the image.
            let cx = (2 * i + 1) * w / (2 * across);
            let cy = (2 * j + 1) * h / (2 * down);
            let x = cx.saturating_sub(tw / 2).min(w - tw);
            let y = cy.saturating_sub(th / 2).min(h - th);
            out.push((x, y, tw, th));
        }
    }
    out
}

/// 8-bit sRGB pixels, RGB or RGBA, row after row.
pub(crate) struct Pixels<'a> {
    pub(crate) bytes: Cow<'a, [u8]>,
    pub(crate) channels: usize,
    pub(crate) width: usize,
}

impl<'a> Pixels<'a> {
    pub(crate) fn of(image: &'a DynamicImage) -> Pixels<'a> {
        let width = image.width() as usize;
        match image {
            DynamicImage::ImageRgb8(p) => Pixels {
                bytes: Cow::Borrowed(p.as_raw()),
                channels: 3,
                width,
            },
            DynamicImage::ImageRgba8(p) => Pixels {
                bytes: Cow::Borrowed(p.as_raw()),
                channels: 4,
                width,
            },
            // Grey and 16-bit images: converted to 8-bit RGB(A) as the encoder saw them.
            other if other.color().has_alpha() => Pixels {
                bytes: Cow::Owned(other.to_rgba8().into_raw()),
                channels: 4,
                width,
            },
            other => Pixels {
                bytes: Cow::Owned(other.to_rgb8().into_raw()),
                channels: 3,
                width,
            },
        }
    }

    pub(crate) fn srgb(&self) -> crate::ssim2_stream::Srgb<'_> {
        crate::ssim2_stream::Srgb {
            bytes: &self.bytes,
            channels: self.channels,
        }
    }

    /// Linear-light RGB of a rectangle, alpha composited over mid grey.
    pub(crate) fn linear(&self, (x0, y0, w, h): Rect, lut: &[f32; 256]) -> LinearRgb {
        let grey = lut[128];
        let mut out = Vec::with_capacity(w * h);
        for y in y0..y0 + h {
            let row = &self.bytes[(y * self.width + x0) * self.channels..][..w * self.channels];
            out.extend(row.chunks_exact(self.channels).map(|px| {
                let a = if self.channels == 4 {
                    f32::from(px[3]) / 255.0
                } else {
                    1.0
                };
                [0, 1, 2].map(|c| lut[usize::from(px[c])] * a + grey * (1.0 - a))
            }));
        }
        LinearRgb::new(out, w, h).expect("the buffer is w x h")
    }
}

pub(crate) fn srgb_to_linear_table() -> [f32; 256] {
    std::array::from_fn(|i| {
        let c = i as f32 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_images_are_compared_whole_and_large_ones_on_tiles_inside_them() {
        assert_eq!(
            tiles(400, 300, DEFAULT_COMPARE_PIXELS),
            vec![(0, 0, 400, 300)]
        );
        for (w, h) in [(2400, 1500), (1500, 2400), (6000, 300), (4000, 3000)] {
            let t = tiles(w, h, DEFAULT_COMPARE_PIXELS);
            assert_eq!(tiles(w, h, 4 * 256 * 256).len(), 4);
            assert_eq!(t.len(), 2, "{w}x{h}: {t:?}");
            for &(x, y, tw, th) in &t {
                assert!(
                    x + tw <= w as usize && y + th <= h as usize,
                    "{w}x{h}: {t:?}"
                );
            }
            let mut distinct = t.clone();
            distinct.dedup();
            assert_eq!(distinct.len(), 2, "{w}x{h}: overlapping tiles {t:?}");
        }
    }
}

//! The perceptual comparison behind the quality guard: SSIMULACRA2 (ssimulacra2 crate) between
//! the decoded source and the decoded WebP.

use image::DynamicImage;
use ssimulacra2::{compute_frame_ssimulacra2, LinearRgb};

use crate::CodecError;

/// Pixels compared at most: larger images are box-downscaled (in linear light, the same way for
/// both sides) to fit, since the metric costs several times an encode at full size.
pub const DEFAULT_COMPARE_PIXELS: u64 = 1_000_000;

/// Images smaller than this on a side (after downscaling) are not measured: SSIMULACRA2 needs 8.
const MIN_SIDE: usize = 8;

/// SSIMULACRA2 score of `webp` against `source`: 100 is identical, about 90 visually lossless,
/// 70 high quality, 50 medium. `None` when the image is too small to measure. Transparent
/// pixels are compared composited over mid grey, since the encoder may change the colour of
/// pixels nobody can see.
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
    let pixels = u64::from(width) * u64::from(height);
    let factor = (pixels as f64 / compare_pixels.max(1) as f64)
        .sqrt()
        .ceil()
        .max(1.0) as usize;
    let (w, h) = (width as usize, height as usize);
    if w / factor < MIN_SIDE || h / factor < MIN_SIDE {
        return Ok(None);
    }
    let lut = srgb_to_linear_table();
    let src = match source {
        DynamicImage::ImageRgb8(p) => linear(p.as_raw(), 3, w, h, factor, &lut),
        DynamicImage::ImageRgba8(p) => linear(p.as_raw(), 4, w, h, factor, &lut),
        other if other.color().has_alpha() => {
            linear(other.to_rgba8().as_raw(), 4, w, h, factor, &lut)
        }
        other => linear(other.to_rgb8().as_raw(), 3, w, h, factor, &lut),
    };
    let channels = if decoded.is_alpha() { 4 } else { 3 };
    let dst = linear(&decoded, channels, w, h, factor, &lut);
    let score = compute_frame_ssimulacra2(src, dst)
        .map_err(|e| CodecError::Encode(format!("cannot compare the WebP with its source: {e}")))?;
    Ok(Some(score))
}

fn srgb_to_linear_table() -> [f32; 256] {
    std::array::from_fn(|i| {
        let c = i as f32 / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    })
}

/// Linear-light RGB of 8-bit sRGB pixels, each output pixel the mean of a `factor`-square block
/// (edge rows and columns that do not fill a block are left out).
fn linear(
    pixels: &[u8],
    channels: usize,
    w: usize,
    h: usize,
    factor: usize,
    lut: &[f32; 256],
) -> LinearRgb {
    let (ow, oh) = (w / factor, h / factor);
    let grey = lut[128];
    let scale = 1.0 / (factor * factor) as f32;
    let mut out = vec![[0f32; 3]; ow * oh];
    for (oy, out_row) in out.chunks_exact_mut(ow).enumerate() {
        for y in oy * factor..(oy + 1) * factor {
            let row = &pixels[y * w * channels..][..ow * factor * channels];
            for (acc, block) in out_row.iter_mut().zip(row.chunks_exact(factor * channels)) {
                for px in block.chunks_exact(channels) {
                    let a = if channels == 4 {
                        f32::from(px[3]) / 255.0
                    } else {
                        1.0
                    };
                    for c in 0..3 {
                        acc[c] += lut[usize::from(px[c])] * a + grey * (1.0 - a);
                    }
                }
            }
        }
        for acc in out_row.iter_mut() {
            acc.iter_mut().for_each(|v| *v *= scale);
        }
    }
    LinearRgb::new(out, ow, oh).expect("the buffer is ow x oh")
}

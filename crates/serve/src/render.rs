//! Pure CPU: bytes of a stored photo in, bytes of the answer out. A WebP is decoded straight at
//! the target scale by libwebp; a kept JPEG original by its DCT at 1/2, 1/4 or 1/8 when the answer
//! is that small (the codec's `ScaledJpeg`); anything else by the codec's full decode. EXIF
//! orientation is applied as the migration does, and `fast_image_resize` does the rest.

use std::time::Instant;

use bytes::Bytes;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use recast_codec::{CodecError, ScaledJpeg};

use crate::geometry::{plan, Target};
use crate::metrics as m;
use crate::webp_scaled;

/// The encodings an answer can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Webp,
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Webp => "image/webp",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Webp => "webp",
        }
    }
}

/// What a stored object is, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Webp,
    Jpeg,
    /// Another format the codec reads (PNG, GIF).
    Other,
    NotAnImage,
}

pub fn sniff(body: &[u8]) -> SourceKind {
    if body.len() >= 12 && &body[..4] == b"RIFF" && &body[8..12] == b"WEBP" {
        SourceKind::Webp
    } else if body.starts_with(&[0xFF, 0xD8, 0xFF]) {
        SourceKind::Jpeg
    } else if body.starts_with(b"\x89PNG") || body.starts_with(b"GIF8") {
        SourceKind::Other
    } else {
        SourceKind::NotAnImage
    }
}

/// Smallest JPEG decoded by its DCT at a reduced scale. `jpeg-decoder`, the decoder with DCT
/// scaling, reads the entropy-coded data more slowly than zune-jpeg (the full decoder under
/// `image`), and only saves the IDCT, upsampling and resize: measured by scripts/bench-serve
/// (CPU per 320-px thumbnail, release build), 3-MP JPEGs cost 29.6 ms scaled against 26.3 ms
/// whole, 12-MP ones 47.0 ms scaled against 73.3 ms whole (and 0.5 MB of pixels, not 36 MB).
pub const DEFAULT_DCT_MIN_PIXELS: u64 = 6_000_000;

/// Encoder settings and the memory bound.
#[derive(Debug, Clone, Copy)]
pub struct Quality {
    pub jpeg: u8,
    pub webp: f32,
    /// Largest source, in pixels, that is decoded (the worker's per-photo cap).
    pub max_pixels: u64,
    /// A JPEG source of at least this many pixels is decoded at 1/2, 1/4 or 1/8 by its DCT
    /// when the answer is that small (see [`DEFAULT_DCT_MIN_PIXELS`]).
    pub dct_min_pixels: u64,
}

/// Why a stored object could not be turned into an answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RenderError {
    #[error("object is not an image this server reads (WebP, JPEG, PNG or GIF)")]
    NotAnImage,
    #[error("image is {pixels} pixels, over the cap of {max} (--max-pixels)")]
    TooLarge { pixels: u64, max: u64 },
    #[error("image cannot be decoded: {0}")]
    Undecodable(String),
}

/// An encoded answer.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: Bytes,
    pub format: Format,
    pub width: u32,
    pub height: u32,
}

/// Decodes `source`, fits it to `target` (whole when `None`) and encodes it as `format`.
pub fn render(
    source: &[u8],
    target: Option<&Target>,
    format: Format,
    quality: &Quality,
) -> Result<Rendered, RenderError> {
    let (pixels, width, height, rgba) = match sniff(source) {
        SourceKind::Webp => decode_webp(source, target, quality)?,
        kind @ (SourceKind::Jpeg | SourceKind::Other) => {
            decode_other(source, kind, target, quality)?
        }
        SourceKind::NotAnImage => return Err(RenderError::NotAnImage),
    };
    let started = Instant::now();
    let body = match format {
        Format::Webp => encode_webp(&pixels, width, height, rgba, quality.webp)?,
        Format::Jpeg => encode_jpeg(&pixels, width, height, rgba, quality.jpeg)?,
    };
    metrics::histogram!(m::ENCODE_SECONDS).record(started.elapsed().as_secs_f64());
    Ok(Rendered {
        body: Bytes::from(body),
        format,
        width,
        height,
    })
}

type Pixels = (Vec<u8>, u32, u32, bool);

fn check_pixels(w: u32, h: u32, quality: &Quality) -> Result<(), RenderError> {
    let pixels = u64::from(w) * u64::from(h);
    if pixels > quality.max_pixels {
        return Err(RenderError::TooLarge {
            pixels,
            max: quality.max_pixels,
        });
    }
    Ok(())
}

fn decode_webp(
    source: &[u8],
    target: Option<&Target>,
    quality: &Quality,
) -> Result<Pixels, RenderError> {
    let features = webp::BitstreamFeatures::new(source)
        .ok_or_else(|| RenderError::Undecodable("not a valid WebP header".into()))?;
    let (sw, sh) = (features.width(), features.height());
    check_pixels(sw, sh, quality)?;
    let rgba = features.has_alpha();
    let p = plan(sw, sh, target);
    let started = Instant::now();
    let pixels = webp_scaled::decode(source, p.crop, p.width, p.height, rgba)
        .map_err(|e| RenderError::Undecodable(e.into()))?;
    metrics::histogram!(m::DECODE_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::counter!(m::RENDERS, "decode" => "webp_scaled").increment(1);
    Ok((pixels, p.width, p.height, rgba))
}

fn codec_error(e: CodecError, quality: &Quality) -> RenderError {
    match e {
        CodecError::TooLarge { pixels, .. } => RenderError::TooLarge {
            pixels,
            max: quality.max_pixels,
        },
        other => RenderError::Undecodable(other.to_string()),
    }
}

fn decode_other(
    source: &[u8],
    kind: SourceKind,
    target: Option<&Target>,
    quality: &Quality,
) -> Result<Pixels, RenderError> {
    if kind == SourceKind::Jpeg && target.is_some() {
        if let Some(pixels) = decode_jpeg_scaled(source, target, quality)? {
            return Ok(pixels);
        }
    }
    let started = Instant::now();
    let (image, _) =
        recast_codec::decode(source, quality.max_pixels).map_err(|e| codec_error(e, quality))?;
    metrics::histogram!(m::DECODE_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::counter!(m::RENDERS, "decode" => "full").increment(1);
    let rgba = image.color().has_alpha();
    let (sw, sh) = (image.width(), image.height());
    let (src, pixel_type) = if rgba {
        (image.into_rgba8().into_raw(), PixelType::U8x4)
    } else {
        (image.into_rgb8().into_raw(), PixelType::U8x3)
    };
    let p = plan(sw, sh, target);
    if p.crop.is_none() && (p.width, p.height) == (sw, sh) {
        return Ok((src, sw, sh, rgba));
    }
    let crop = p.crop.map(|c| {
        (
            f64::from(c.left),
            f64::from(c.top),
            f64::from(c.width),
            f64::from(c.height),
        )
    });
    let out = resize(src, sw, sh, pixel_type, crop, p.width, p.height)?;
    Ok((out, p.width, p.height, rgba))
}

/// A kept JPEG decoded by its DCT at the smallest scale that still has at least the answer's
/// pixels, then resized; `None` when the JPEG is one the scaled decoder leaves to the full decode
/// (CMYK, more than 8 bits), which the caller then does.
fn decode_jpeg_scaled(
    source: &[u8],
    target: Option<&Target>,
    quality: &Quality,
) -> Result<Option<Pixels>, RenderError> {
    let started = Instant::now();
    let jpeg = ScaledJpeg::open(source, quality.max_pixels).map_err(|e| codec_error(e, quality))?;
    let (sw, sh) = jpeg.upright_size();
    if u64::from(sw) * u64::from(sh) < quality.dct_min_pixels {
        return Ok(None);
    }
    if let Some(why) = jpeg.unscalable() {
        metrics::counter!(m::DCT_FALLBACKS, "reason" => why.name()).increment(1);
        tracing::debug!(reason = why.name(), "jpeg decoded at full size");
        return Ok(None);
    }
    let p = plan(sw, sh, target);
    let (cw, ch) = p.crop.map_or((sw, sh), |c| (c.width, c.height));
    // The part of the source that becomes the answer must keep at least the answer's pixels.
    let need = |out: u32, part: u32, whole: u32| {
        u32::try_from((u64::from(out) * u64::from(whole)).div_ceil(u64::from(part)))
            .unwrap_or(u32::MAX)
    };
    let (need_w, need_h) = (need(p.width, cw, sw), need(p.height, ch, sh));
    if jpeg.reduction(need_w, need_h).is_none() {
        return Ok(None); // nothing to save: zune-jpeg decodes the whole image faster
    }
    let scaled = jpeg
        .decode_at_least(need_w, need_h)
        .map_err(|e| codec_error(e, quality))?;
    metrics::histogram!(m::DECODE_SECONDS).record(started.elapsed().as_secs_f64());
    metrics::counter!(m::RENDERS, "decode" => "jpeg_dct").increment(1);
    let (dw, dh) = scaled.image.dimensions();
    // Source coordinates to decoded ones, inside the part of the decode that is the photo.
    let (x0, y0, ew, eh) = scaled.extent;
    let (fx, fy) = (ew / f64::from(sw), eh / f64::from(sh));
    let crop = match p.crop {
        Some(c) => (
            x0 + f64::from(c.left) * fx,
            y0 + f64::from(c.top) * fy,
            f64::from(c.width) * fx,
            f64::from(c.height) * fy,
        ),
        None => (x0, y0, ew, eh),
    };
    let exact = (x0, y0, ew, eh) == (0.0, 0.0, f64::from(dw), f64::from(dh));
    let out = if (dw, dh) == (p.width, p.height) && p.crop.is_none() && exact {
        scaled.image.into_raw()
    } else {
        resize(
            scaled.image.into_raw(),
            dw,
            dh,
            PixelType::U8x3,
            Some(crop),
            p.width,
            p.height,
        )?
    };
    Ok(Some((out, p.width, p.height, false)))
}

/// `fast_image_resize` (SIMD) of `src`, cropped to (left, top, width, height) first if asked.
fn resize(
    src: Vec<u8>,
    sw: u32,
    sh: u32,
    pixel_type: PixelType,
    crop: Option<(f64, f64, f64, f64)>,
    out_w: u32,
    out_h: u32,
) -> Result<Vec<u8>, RenderError> {
    let started = Instant::now();
    let src = Image::from_vec_u8(sw, sh, src, pixel_type)
        .map_err(|e| RenderError::Undecodable(e.to_string()))?;
    let mut dst = Image::new(out_w, out_h, pixel_type);
    let mut options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    if let Some((left, top, width, height)) = crop {
        options = options.crop(left, top, width, height);
    }
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| RenderError::Undecodable(e.to_string()))?;
    metrics::histogram!(m::RESIZE_SECONDS).record(started.elapsed().as_secs_f64());
    Ok(dst.into_vec())
}

fn encode_webp(
    pixels: &[u8],
    w: u32,
    h: u32,
    rgba: bool,
    quality: f32,
) -> Result<Vec<u8>, RenderError> {
    let encoder = if rgba {
        webp::Encoder::from_rgba(pixels, w, h)
    } else {
        webp::Encoder::from_rgb(pixels, w, h)
    };
    Ok(encoder.encode(quality).to_vec())
}

fn encode_jpeg(
    pixels: &[u8],
    w: u32,
    h: u32,
    rgba: bool,
    quality: u8,
) -> Result<Vec<u8>, RenderError> {
    let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(RenderError::TooLarge {
            pixels: u64::from(w) * u64::from(h),
            max: u64::from(u16::MAX) * u64::from(u16::MAX),
        });
    };
    // JPEG has no alpha: flatten onto white, as a browser shows a transparent photo.
    let flat;
    let rgb = if rgba {
        flat = pixels
            .chunks_exact(4)
            .flat_map(|p| {
                let a = u16::from(p[3]);
                let blend = |c: u8| ((u16::from(c) * a + 255 * (255 - a)) / 255) as u8;
                [blend(p[0]), blend(p[1]), blend(p[2])]
            })
            .collect::<Vec<u8>>();
        &flat[..]
    } else {
        pixels
    };
    let mut out = Vec::with_capacity(rgb.len() / 8);
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(rgb, w16, h16, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| RenderError::Undecodable(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Fit;

    fn quality() -> Quality {
        Quality {
            jpeg: 80,
            webp: 80.0,
            max_pixels: 100_000_000,
            dct_min_pixels: 0,
        }
    }

    fn photo_webp() -> Vec<u8> {
        let jpeg = recast_codec::synth_photo_jpeg(7, 640, 480);
        let (image, _) = recast_codec::decode(&jpeg, 100_000_000).unwrap();
        let rgb = image.to_rgb8();
        webp::Encoder::from_rgb(&rgb, 640, 480)
            .encode(80.0)
            .to_vec()
    }

    #[test]
    fn scaled_webp_decode_gives_the_target_size_in_either_format() {
        let src = photo_webp();
        for format in [Format::Jpeg, Format::Webp] {
            let out = render(&src, Some(&Target::bounding(160)), format, &quality()).unwrap();
            assert_eq!((out.width, out.height), (160, 120));
            let back = image::load_from_memory(&out.body).unwrap();
            assert_eq!((back.width(), back.height()), (160, 120));
        }
        let cover = Target {
            width: Some(50),
            height: Some(100),
            fit: Fit::Cover,
        };
        let out = render(&src, Some(&cover), Format::Jpeg, &quality()).unwrap();
        let back = image::load_from_memory(&out.body).unwrap();
        assert_eq!((back.width(), back.height()), (50, 100));
    }

    #[test]
    fn jpeg_sources_are_resized_too() {
        let jpeg = recast_codec::synth_photo_jpeg(3, 300, 200);
        let out = render(
            &jpeg,
            Some(&Target::bounding(150)),
            Format::Jpeg,
            &quality(),
        )
        .unwrap();
        assert_eq!((out.width, out.height), (150, 100));
    }

    /// `jpeg` with an EXIF block saying `orientation` (an APP1 segment right after SOI).
    fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
        tiff.extend_from_slice(&0x0112u16.to_le_bytes());
        tiff.extend_from_slice(&3u16.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&u32::from(orientation).to_le_bytes());
        tiff.extend_from_slice(&0u32.to_le_bytes());
        let len = u16::try_from(2 + 6 + tiff.len()).unwrap();
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(b"Exif\0\0");
        out.extend_from_slice(&tiff);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        let sum: u64 = a
            .iter()
            .zip(b)
            .map(|(x, y)| u64::from(x.abs_diff(*y)))
            .sum();
        sum as f64 / a.len() as f64
    }

    #[test]
    fn dct_scaled_jpeg_matches_the_full_decode_in_size_orientation_and_pixels() {
        let full = Quality {
            dct_min_pixels: u64::MAX,
            ..quality()
        };
        let cover = Target {
            width: Some(120),
            height: Some(120),
            fit: Fit::Cover,
        };
        // Orientation 6 turns the stored 900x600 upright to 600x900; 8 the other way round.
        for orientation in [1, 3, 6, 8] {
            let jpeg = with_orientation(&recast_codec::synth_photo_jpeg(9, 900, 600), orientation);
            for target in [Target::bounding(200), Target::bounding(320), cover] {
                let scaled =
                    decode_other(&jpeg, SourceKind::Jpeg, Some(&target), &quality()).unwrap();
                let reference =
                    decode_other(&jpeg, SourceKind::Jpeg, Some(&target), &full).unwrap();
                assert_eq!(
                    (scaled.1, scaled.2),
                    (reference.1, reference.2),
                    "orientation {orientation}, {target:?}"
                );
                let mad = mean_abs_diff(&scaled.0, &reference.0);
                assert!(
                    mad < 3.0,
                    "orientation {orientation}, {target:?}: mean abs diff {mad:.2}"
                );
            }
            let upright = decode_other(
                &jpeg,
                SourceKind::Jpeg,
                Some(&Target::bounding(300)),
                &quality(),
            )
            .unwrap();
            let expected = if orientation >= 5 {
                (200, 300)
            } else {
                (300, 200)
            };
            assert_eq!(
                (upright.1, upright.2),
                expected,
                "orientation {orientation}"
            );
        }
        // A wrong orientation would be far off: the check above can fail.
        let plain = recast_codec::synth_photo_jpeg(9, 900, 600);
        let turned = with_orientation(&plain, 3);
        let a = decode_other(
            &plain,
            SourceKind::Jpeg,
            Some(&Target::bounding(200)),
            &quality(),
        );
        let b = decode_other(
            &turned,
            SourceKind::Jpeg,
            Some(&Target::bounding(200)),
            &quality(),
        );
        assert!(mean_abs_diff(&a.unwrap().0, &b.unwrap().0) > 10.0);
    }

    #[test]
    fn refuses_what_is_not_an_image_or_too_large() {
        assert!(matches!(
            render(b"hello", None, Format::Jpeg, &quality()),
            Err(RenderError::NotAnImage)
        ));
        let small = Quality {
            max_pixels: 1000,
            ..quality()
        };
        assert!(matches!(
            render(&photo_webp(), None, Format::Jpeg, &small),
            Err(RenderError::TooLarge { .. })
        ));
    }
}

//! Pure CPU: bytes of a stored photo in, bytes of the answer out. A WebP is decoded straight at
//! the target scale by libwebp; any other image (a kept JPEG original) is decoded by the codec
//! crate (EXIF orientation applied, as the migration does) and resized by `fast_image_resize`.

use std::time::Instant;

use bytes::Bytes;
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use recast_codec::CodecError;

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

/// Encoder settings and the memory bound.
#[derive(Debug, Clone, Copy)]
pub struct Quality {
    pub jpeg: u8,
    pub webp: f32,
    /// Largest source, in pixels, that is decoded (the worker's per-photo cap).
    pub max_pixels: u64,
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
        SourceKind::Jpeg | SourceKind::Other => decode_other(source, target, quality)?,
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
    Ok((pixels, p.width, p.height, rgba))
}

fn decode_other(
    source: &[u8],
    target: Option<&Target>,
    quality: &Quality,
) -> Result<Pixels, RenderError> {
    let started = Instant::now();
    let (image, _) = recast_codec::decode(source, quality.max_pixels).map_err(|e| match e {
        CodecError::TooLarge { pixels, .. } => RenderError::TooLarge {
            pixels,
            max: quality.max_pixels,
        },
        other => RenderError::Undecodable(other.to_string()),
    })?;
    metrics::histogram!(m::DECODE_SECONDS).record(started.elapsed().as_secs_f64());
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
    let started = Instant::now();
    let src = Image::from_vec_u8(sw, sh, src, pixel_type)
        .map_err(|e| RenderError::Undecodable(e.to_string()))?;
    let mut dst = Image::new(p.width, p.height, pixel_type);
    let mut options =
        ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::CatmullRom));
    if let Some(c) = p.crop {
        options = options.crop(c.left.into(), c.top.into(), c.width.into(), c.height.into());
    }
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| RenderError::Undecodable(e.to_string()))?;
    metrics::histogram!(m::RESIZE_SECONDS).record(started.elapsed().as_secs_f64());
    Ok((dst.into_vec(), p.width, p.height, rgba))
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

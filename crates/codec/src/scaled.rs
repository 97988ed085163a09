//! A JPEG decoded straight at 1/2, 1/4 or 1/8 of its size by its inverse DCT (`jpeg-decoder`'s
//! `Decoder::scale`), for thumbnails: a 3-MP photo wanted at 320 px is decoded at 1/4 or 1/8 of
//! its pixels and never held at full size. The rules are [`crate::decode`]'s: the pixel cap from
//! the header, truncated files refused, EXIF orientation applied the same way (image's
//! `Orientation::from_exif_chunk` and `apply_orientation`, which `decode` reaches through its
//! decoder), the pixels left in the colour space they were stored in (no ICC conversion). What
//! this decoder does not turn into RGB the way `decode` does (CMYK and YCCK, 12/16-bit samples)
//! is reported as [`Unscalable`], for the caller to use the full decode instead.

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::{Decoder, PixelFormat};

use crate::truncation::jpeg_is_truncated;
use crate::CodecError;

/// Why a JPEG is decoded at full size by [`crate::decode`] instead of scaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unscalable {
    /// Four channels (CMYK or YCCK): `decode` converts them to RGB; this decoder would not.
    Cmyk,
    /// Samples of more than 8 bits.
    HighBitDepth,
}

impl Unscalable {
    /// A stable name for logs and metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Unscalable::Cmyk => "cmyk",
            Unscalable::HighBitDepth => "high_bit_depth",
        }
    }
}

/// A JPEG whose header has been read, ready to decode at a reduced scale.
pub struct ScaledJpeg<'a> {
    decoder: Decoder<&'a [u8]>,
    width: u16,
    height: u16,
    format: PixelFormat,
    orientation: Orientation,
}

impl std::fmt::Debug for ScaledJpeg<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaledJpeg")
            .field("width", &self.width)
            .field("height", &self.height)
            .field("format", &self.format)
            .field("orientation", &self.orientation)
            .finish()
    }
}

fn jpeg_error(e: jpeg_decoder::Error) -> CodecError {
    CodecError::Decode {
        format: "jpeg".into(),
        message: e.to_string(),
    }
}

/// True for the orientations that turn the image a quarter, so that width and height swap.
fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    )
}

impl<'a> ScaledJpeg<'a> {
    /// Reads the header (dimensions, pixel format, EXIF orientation), refusing an image over
    /// `max_pixels` or a truncated file before any pixel is decoded.
    pub fn open(input: &'a [u8], max_pixels: u64) -> Result<Self, CodecError> {
        if input.is_empty() {
            return Err(CodecError::Empty);
        }
        let mut decoder = Decoder::new(input);
        decoder.read_info().map_err(jpeg_error)?;
        let info = decoder.info().expect("read_info succeeded");
        let pixels = u64::from(info.width) * u64::from(info.height);
        if pixels > max_pixels {
            return Err(CodecError::TooLarge {
                width: info.width.into(),
                height: info.height.into(),
                pixels,
                cap: max_pixels,
            });
        }
        if jpeg_is_truncated(input) {
            return Err(CodecError::Truncated {
                format: "jpeg".into(),
            });
        }
        let orientation = decoder
            .exif_data()
            .and_then(Orientation::from_exif_chunk)
            .unwrap_or(Orientation::NoTransforms);
        Ok(ScaledJpeg {
            decoder,
            width: info.width,
            height: info.height,
            format: info.pixel_format,
            orientation,
        })
    }

    /// Width and height of the whole image once upright.
    pub fn upright_size(&self) -> (u32, u32) {
        let (w, h) = (u32::from(self.width), u32::from(self.height));
        if swaps_axes(self.orientation) {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// `Some` when this image must be decoded at full size by [`crate::decode`] instead.
    pub fn unscalable(&self) -> Option<Unscalable> {
        match self.format {
            PixelFormat::L8 | PixelFormat::RGB24 => None,
            PixelFormat::CMYK32 => Some(Unscalable::Cmyk),
            PixelFormat::L16 => Some(Unscalable::HighBitDepth),
        }
    }

    /// The largest DCT reduction (8, 4 or 2) that still gives at least `min_width`×`min_height`
    /// once upright; `None` when only the whole image does (then the full decoder is cheaper).
    pub fn reduction(&self, min_width: u32, min_height: u32) -> Option<u32> {
        let (need_w, need_h) = if swaps_axes(self.orientation) {
            (min_height, min_width)
        } else {
            (min_width, min_height)
        };
        let (w, h) = (u32::from(self.width), u32::from(self.height));
        [8, 4, 2]
            .into_iter()
            .find(|d| w.div_ceil(*d) >= need_w && h.div_ceil(*d) >= need_h)
    }

    /// Decodes at the smallest DCT scale (1/8, 1/4, 1/2 or whole) that is at least
    /// `min_width`×`min_height` once upright, and returns the upright RGB pixels (grey is widened
    /// to RGB, as `decode`'s callers do). Refuses what [`ScaledJpeg::unscalable`] names.
    pub fn decode_at_least(
        mut self,
        min_width: u32,
        min_height: u32,
    ) -> Result<ScaledImage, CodecError> {
        if let Some(why) = self.unscalable() {
            return Err(CodecError::Decode {
                format: "jpeg".into(),
                message: format!("{} JPEG needs the full decode", why.name()),
            });
        }
        let (w, h) = (u32::from(self.width), u32::from(self.height));
        // The scale is chosen here and handed to the decoder as the exact scaled size: its own
        // rule takes a scale that is large enough on either axis, we want both.
        if let Some(d) = self.reduction(min_width, min_height) {
            let sw = u16::try_from(w.div_ceil(d)).expect("smaller than a u16 width");
            let sh = u16::try_from(h.div_ceil(d)).expect("smaller than a u16 height");
            self.decoder.scale(sw, sh).map_err(jpeg_error)?;
        }
        let pixels = self.decoder.decode().map_err(jpeg_error)?;
        let info = self.decoder.info().expect("decode succeeded");
        let (ow, oh) = (u32::from(info.width), u32::from(info.height));
        let bad_size = || CodecError::Decode {
            format: "jpeg".into(),
            message: "decoder returned fewer pixels than its header says".into(),
        };
        let mut image = match info.pixel_format {
            PixelFormat::RGB24 => {
                DynamicImage::ImageRgb8(RgbImage::from_raw(ow, oh, pixels).ok_or_else(bad_size)?)
            }
            PixelFormat::L8 => DynamicImage::ImageRgb8(
                DynamicImage::ImageLuma8(GrayImage::from_raw(ow, oh, pixels).ok_or_else(bad_size)?)
                    .into_rgb8(),
            ),
            PixelFormat::CMYK32 | PixelFormat::L16 => unreachable!("refused above"),
        };
        image.apply_orientation(self.orientation);
        // The decoder rounds a partial last block up to a whole pixel: the photo covers
        // w/scale x h/scale of the stored-way-up pixels, from their top-left corner, which the
        // orientation may have moved to another corner.
        let (fw, fh) = (f64::from(w) / scale(w, ow), f64::from(h) / scale(h, oh));
        let (pw, ph) = (f64::from(ow) - fw, f64::from(oh) - fh);
        let extent = match self.orientation {
            Orientation::NoTransforms => (0.0, 0.0, fw, fh),
            Orientation::FlipHorizontal => (pw, 0.0, fw, fh),
            Orientation::Rotate180 => (pw, ph, fw, fh),
            Orientation::FlipVertical => (0.0, ph, fw, fh),
            Orientation::Rotate90FlipH => (0.0, 0.0, fh, fw),
            Orientation::Rotate90 => (ph, 0.0, fh, fw),
            Orientation::Rotate270FlipH => (ph, pw, fh, fw),
            Orientation::Rotate270 => (0.0, pw, fh, fw),
        };
        Ok(ScaledImage {
            image: image.into_rgb8(),
            extent,
        })
    }
}

/// The whole-pixel scale (1, 2, 4 or 8) that made `out` pixels of `full`.
fn scale(full: u32, out: u32) -> f64 {
    [1u32, 2, 4, 8]
        .into_iter()
        .find(|d| full.div_ceil(*d) == out)
        .map_or(f64::from(full) / f64::from(out.max(1)), f64::from)
}

/// An upright, DCT-scaled decode.
#[derive(Debug, Clone)]
pub struct ScaledImage {
    pub image: RgbImage,
    /// Where the whole photo lies in `image` (left, top, width, height, in its pixels): a hair
    /// smaller than `image` when the photo's size is not a multiple of the scale.
    pub extent: (f64, f64, f64, f64),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_at_the_smallest_scale_that_covers_the_request() {
        let jpeg = crate::synth_photo_jpeg(5, 800, 600);
        let open = || ScaledJpeg::open(&jpeg, 100_000_000).unwrap();
        assert_eq!(open().upright_size(), (800, 600));
        assert_eq!(open().unscalable(), None);
        // 1/8 is 100x75: enough for 100x75, not for 101 wide.
        assert_eq!(
            open().decode_at_least(100, 75).unwrap().image.dimensions(),
            (100, 75)
        );
        assert_eq!(
            open().decode_at_least(101, 10).unwrap().image.dimensions(),
            (200, 150)
        );
        assert_eq!(
            open().decode_at_least(320, 240).unwrap().image.dimensions(),
            (400, 300)
        );
        assert_eq!(
            open().decode_at_least(401, 1).unwrap().image.dimensions(),
            (800, 600)
        );
    }

    #[test]
    fn refuses_what_decode_refuses() {
        let jpeg = crate::synth_photo_jpeg(5, 800, 600);
        assert!(matches!(
            ScaledJpeg::open(&jpeg, 1000),
            Err(CodecError::TooLarge { .. })
        ));
        assert!(matches!(
            ScaledJpeg::open(&jpeg[..jpeg.len() / 2], 100_000_000),
            Err(CodecError::Truncated { .. })
        ));
        assert!(matches!(
            ScaledJpeg::open(b"", 100_000_000),
            Err(CodecError::Empty)
        ));
    }
}

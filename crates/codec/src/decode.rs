use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::truncation::jpeg_is_truncated;
use crate::CodecError;

/// Images with more pixels than this are refused from their header (100 megapixels).
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;

/// What the header of an image says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

impl ImageInfo {
    pub fn format_name(&self) -> String {
        format!("{:?}", self.format).to_lowercase()
    }
}

type MemoryReader<'a> = ImageReader<Cursor<&'a [u8]>>;

fn reader(input: &[u8]) -> Result<(MemoryReader<'_>, ImageFormat), CodecError> {
    if input.is_empty() {
        return Err(CodecError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(input))
        .with_guessed_format()
        .expect("reading from memory cannot fail");
    let format = reader.format().ok_or(CodecError::UnknownFormat)?;
    Ok((reader, format))
}

fn decode_error(format: ImageFormat, e: image::ImageError) -> CodecError {
    CodecError::Decode {
        format: format!("{format:?}").to_lowercase(),
        message: e.to_string(),
    }
}

/// Reads only the header: format and dimensions (as stored, before orientation).
pub fn probe(input: &[u8]) -> Result<ImageInfo, CodecError> {
    let (reader, format) = reader(input)?;
    let decoder = reader.into_decoder().map_err(|e| decode_error(format, e))?;
    let (width, height) = decoder.dimensions();
    Ok(ImageInfo {
        format,
        width,
        height,
    })
}

/// A decoded, upright image and the metadata worth carrying into its WebP.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: DynamicImage,
    /// Format and dimensions as stored (before orientation).
    pub info: ImageInfo,
    /// The embedded ICC profile, when it describes RGB data: the pixels handed to the encoder are
    /// RGB, so a CMYK or grey profile would describe the wrong thing and is dropped.
    pub icc: Option<Vec<u8>>,
    /// The raw EXIF block (a TIFF structure), when asked for and present.
    pub exif: Option<Vec<u8>>,
}

/// Decodes an image, refusing it from its header when it has more than `max_pixels`, and applies
/// its EXIF orientation so the pixels are upright.
pub fn decode(input: &[u8], max_pixels: u64) -> Result<(DynamicImage, ImageInfo), CodecError> {
    let d = decode_with_metadata(input, max_pixels, false)?;
    Ok((d.image, d.info))
}

/// [`decode`], also returning the ICC profile and, when `want_exif`, the EXIF block.
pub fn decode_with_metadata(
    input: &[u8],
    max_pixels: u64,
    want_exif: bool,
) -> Result<Decoded, CodecError> {
    let (mut reader, format) = reader(input)?;
    let mut limits = Limits::default();
    // Room for the decoded pixels at up to 16 bits per channel with alpha, and nothing more.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(format, e))?;
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels > max_pixels {
        return Err(CodecError::TooLarge {
            width,
            height,
            pixels,
            cap: max_pixels,
        });
    }
    if format == ImageFormat::Jpeg && jpeg_is_truncated(input) {
        return Err(CodecError::Truncated {
            format: "jpeg".into(),
        });
    }
    // Metadata that cannot be read is treated as absent: it never stops a photo converting.
    let icc = decoder
        .icc_profile()
        .ok()
        .flatten()
        .filter(|p| is_rgb_profile(p));
    let exif = if want_exif {
        decoder.exif_metadata().ok().flatten()
    } else {
        None
    };
    let orientation = decoder.orientation().map_err(|e| decode_error(format, e))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(format, e))?;
    image.apply_orientation(orientation);
    Ok(Decoded {
        image,
        info: ImageInfo {
            format,
            width,
            height,
        },
        icc,
        exif,
    })
}

/// True when an ICC profile's header says its data colour space is RGB (bytes 16..20).
fn is_rgb_profile(profile: &[u8]) -> bool {
    profile.get(16..20) == Some(b"RGB ")
}

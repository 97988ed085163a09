use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

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

/// Decodes an image, refusing it from its header when it has more than `max_pixels`, and applies
/// its EXIF orientation so the pixels are upright.
pub fn decode(input: &[u8], max_pixels: u64) -> Result<(DynamicImage, ImageInfo), CodecError> {
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
    let orientation = decoder.orientation().map_err(|e| decode_error(format, e))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(format, e))?;
    image.apply_orientation(orientation);
    Ok((
        image,
        ImageInfo {
            format,
            width,
            height,
        },
    ))
}

use image::DynamicImage;

use crate::{decode, libwebp_enc, CodecError, DEFAULT_MAX_PIXELS};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EncodeOptions {
    /// WebP quality 0..=100.
    pub quality: f32,
    /// libwebp method 0 (fastest) ..= 6 (smallest).
    pub method: u8,
    /// Images above this many pixels are refused from their header.
    pub max_pixels: u64,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            quality: 80.0,
            method: 4,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

/// A converted photo.
#[derive(Debug, Clone)]
pub struct Transcoded {
    pub webp: Vec<u8>,
    /// Dimensions of the WebP (upright, after orientation).
    pub width: u32,
    pub height: u32,
    /// The source format, lowercase (`jpeg`, `png`, ...).
    pub source_format: String,
}

/// Encodes pixels as lossy WebP; alpha is kept when the image has it.
pub fn encode_webp(image: &DynamicImage, options: &EncodeOptions) -> Result<Vec<u8>, CodecError> {
    import(image)?
        .encode(&config(options)?)
        .map_err(CodecError::Encode)
}

/// [`encode_webp`], consuming the image: its pixels are handed to libwebp in strips, the RGB
/// shrinking as libwebp's YUV planes fill (`libwebp_enc::import_rgb_in_strips`), and are gone
/// before the encode, so a large photo's RGB (3 bytes a pixel), its YUV (1.5) and the encoder's
/// working memory are never all held at once (a 62.5 MP photo: ~200 MB instead of ~300). Images
/// with alpha, or not 8-bit RGB, are imported whole and dropped before the encode.
pub(crate) fn encode_webp_owned(
    image: DynamicImage,
    options: &EncodeOptions,
) -> Result<Vec<u8>, CodecError> {
    match image {
        DynamicImage::ImageRgb8(rgb) => encode_rgb_in_strips(rgb, libwebp_enc::STRIP_ROWS, options),
        image => {
            let config = config(options)?;
            let imported = import(&image)?;
            drop(image);
            imported.encode(&config).map_err(CodecError::Encode)
        }
    }
}

/// RGB pixels encoded after an import in strips of `strip_rows` rows (even): what
/// [`encode_webp_owned`] does with [`libwebp_enc::STRIP_ROWS`]; public for the test that holds it
/// to the whole import's bitstream.
#[doc(hidden)]
pub fn encode_rgb_in_strips(
    rgb: image::RgbImage,
    strip_rows: usize,
    options: &EncodeOptions,
) -> Result<Vec<u8>, CodecError> {
    let config = config(options)?;
    let (width, height) = rgb.dimensions();
    libwebp_enc::import_rgb_in_strips(rgb.into_raw(), width, height, strip_rows)
        .and_then(|imported| imported.encode(&config))
        .map_err(CodecError::Encode)
}

fn config(options: &EncodeOptions) -> Result<webp::WebPConfig, CodecError> {
    let mut config = webp::WebPConfig::new()
        .map_err(|()| CodecError::Encode("libwebp config init failed".into()))?;
    config.quality = options.quality;
    config.method = i32::from(options.method);
    Ok(config)
}

/// The image's pixels in libwebp's YUV(A) planes (alpha kept when the image has it).
fn import(image: &DynamicImage) -> Result<libwebp_enc::Imported, CodecError> {
    let (width, height) = (image.width(), image.height());
    let alpha = image.color().has_alpha();
    let converted;
    let pixels: &[u8] = match (alpha, image) {
        (true, DynamicImage::ImageRgba8(p)) => p.as_raw(),
        (false, DynamicImage::ImageRgb8(p)) => p.as_raw(),
        (true, _) => {
            converted = image.to_rgba8().into_raw();
            &converted
        }
        (false, _) => {
            converted = image.to_rgb8().into_raw();
            &converted
        }
    };
    libwebp_enc::import(pixels, width, height, alpha).map_err(CodecError::Encode)
}

/// Decodes a photo, applies its orientation and encodes it as WebP.
pub fn transcode(input: &[u8], options: &EncodeOptions) -> Result<Transcoded, CodecError> {
    let (image, info) = decode(input, options.max_pixels)?;
    let webp = encode_webp(&image, options)?;
    Ok(Transcoded {
        webp,
        width: image.width(),
        height: image.height(),
        source_format: info.format_name(),
    })
}

use image::DynamicImage;

use crate::{decode, CodecError, DEFAULT_MAX_PIXELS};

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
    let (width, height) = (image.width(), image.height());
    let mut config = webp::WebPConfig::new()
        .map_err(|()| CodecError::Encode("libwebp config init failed".into()))?;
    config.quality = options.quality;
    config.method = i32::from(options.method);
    let encoded = if image.color().has_alpha() {
        let rgba;
        let pixels = match image.as_rgba8() {
            Some(p) => p,
            None => {
                rgba = image.to_rgba8();
                &rgba
            }
        };
        webp::Encoder::from_rgba(pixels.as_raw(), width, height).encode_advanced(&config)
    } else {
        let rgb;
        let pixels = match image.as_rgb8() {
            Some(p) => p,
            None => {
                rgb = image.to_rgb8();
                &rgb
            }
        };
        webp::Encoder::from_rgb(pixels.as_raw(), width, height).encode_advanced(&config)
    };
    let memory = encoded.map_err(|e| CodecError::Encode(format!("{e:?}")))?;
    Ok(memory.to_vec())
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

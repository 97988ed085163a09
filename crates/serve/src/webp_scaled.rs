//! libwebp's scaled (and cropped) decoding, which the `webp` crate does not expose: the decoder
//! writes the thumbnail's pixels straight from the bitstream, so a 3-MP WebP shrunk to 320 px is
//! never decoded at full size. This is the crate's only unsafe code (the workspace forbids
//! unsafe; this crate denies it and allows it here alone): one call into libwebp's `WebPDecode`
//! with a buffer we own and whose size libwebp checks against the requested output before writing.

#![allow(unsafe_code)]

use libwebp_sys::{VP8StatusCode, WebPDecode, WebPDecoderConfig, WebPRGBABuffer, WEBP_CSP_MODE};

/// A rectangle of the source, in source pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub left: u32,
    pub top: u32,
    pub width: u32,
    pub height: u32,
}

/// Decodes `data` (a still WebP) cropped to `crop` (or whole) and scaled to `out_w`×`out_h`,
/// as packed RGB or RGBA rows. `Err` carries libwebp's status name.
pub fn decode(
    data: &[u8],
    crop: Option<Crop>,
    out_w: u32,
    out_h: u32,
    rgba: bool,
) -> Result<Vec<u8>, &'static str> {
    let mut config = WebPDecoderConfig::new().map_err(|()| "decoder ABI mismatch")?;
    let channels = if rgba { 4 } else { 3 };
    let stride = out_w as usize * channels;
    let mut pixels = vec![0u8; stride * out_h as usize];
    let (src_w, src_h) = match crop {
        Some(c) => {
            config.options.use_cropping = 1;
            config.options.crop_left = c.left as i32;
            config.options.crop_top = c.top as i32;
            config.options.crop_width = c.width as i32;
            config.options.crop_height = c.height as i32;
            (c.width, c.height)
        }
        None => (0, 0),
    };
    if crop.is_none() || (src_w, src_h) != (out_w, out_h) {
        config.options.use_scaling = 1;
        config.options.scaled_width = out_w as i32;
        config.options.scaled_height = out_h as i32;
    }
    config.output.colorspace = if rgba {
        WEBP_CSP_MODE::MODE_RGBA
    } else {
        WEBP_CSP_MODE::MODE_RGB
    };
    config.output.is_external_memory = 1;
    config.output.u.RGBA = WebPRGBABuffer {
        rgba: pixels.as_mut_ptr(),
        stride: stride as i32,
        size: pixels.len(),
    };
    // SAFETY: `data` is a live slice of `data.len()` bytes; `config` was initialised by libwebp
    // (WebPDecoderConfig::new) and points its output at `pixels`, which outlives the call and
    // whose stride and size libwebp checks (CheckDecBuffer) against the cropped and scaled
    // dimensions before it writes a byte. With external memory libwebp allocates nothing we
    // would have to free.
    let status = unsafe { WebPDecode(data.as_ptr(), data.len(), &mut config) };
    match status {
        VP8StatusCode::VP8_STATUS_OK => Ok(pixels),
        VP8StatusCode::VP8_STATUS_OUT_OF_MEMORY => Err("out of memory"),
        VP8StatusCode::VP8_STATUS_INVALID_PARAM => Err("invalid crop or scale"),
        VP8StatusCode::VP8_STATUS_BITSTREAM_ERROR => Err("corrupt bitstream"),
        VP8StatusCode::VP8_STATUS_UNSUPPORTED_FEATURE => Err("unsupported feature (animation?)"),
        VP8StatusCode::VP8_STATUS_SUSPENDED => Err("suspended"),
        VP8StatusCode::VP8_STATUS_USER_ABORT => Err("aborted"),
        VP8StatusCode::VP8_STATUS_NOT_ENOUGH_DATA => Err("truncated"),
    }
}

//! libwebp's lossy encoder fed 8-bit RGB(A) **straight into its YUV planes**, which the `webp`
//! crate does not do: its `Encoder` sets the picture's `use_argb`, so libwebp first copies the
//! pixels into a 4-byte ARGB plane and then converts that plane to YUV. The result is the same
//! bitstream byte for byte (both paths end in libwebp's `ImportYUVAFromRGBA` with no dithering;
//! `an_encode_is_the_webp_crates_byte_for_byte` checks it), but the ARGB plane costs 4 bytes a
//! pixel: 250 MB for a 62.5 MP photo, on top of its decoded pixels (3 bytes a pixel) and the YUV
//! planes (1.5), and a pass over memory per encode.
//!
//! This is the codec's only FFI (the workspace forbids unsafe; this crate denies it and allows
//! it here and in the score's AVX2 dispatch, as `recast-serve` does for its scaled decoding): a
//! picture initialised by libwebp, imported from a slice whose length is checked against its
//! dimensions first, encoded into libwebp's memory writer, and both freed on every path by their
//! guards.

#![allow(unsafe_code)]

use std::ffi::c_void;

use libwebp_sys::{
    WebPConfig, WebPEncode, WebPMemoryWrite, WebPMemoryWriter, WebPMemoryWriterClear,
    WebPMemoryWriterInit, WebPPicture, WebPPictureAlloc, WebPPictureFree, WebPPictureImportRGB,
    WebPPictureImportRGBA, WebPValidateConfig,
};

/// libwebp's largest side (`WEBP_MAX_DIMENSION`).
const MAX_SIDE: u32 = 16383;

/// Owns an imported picture: freed however the encode ends.
struct Picture(WebPPicture);

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: the picture was initialised by `WebPPicture::new` (libwebp's init), so its
        // buffers are either null or libwebp's own; WebPPictureFree frees them and nulls them.
        unsafe { WebPPictureFree(&mut self.0) }
    }
}

/// Owns libwebp's memory writer: its buffer is freed however the encode ends.
struct Writer(WebPMemoryWriter);

impl Drop for Writer {
    fn drop(&mut self) {
        // SAFETY: the writer was initialised by WebPMemoryWriterInit; Clear frees its buffer
        // (allocated by libwebp, or null) and resets it.
        unsafe { WebPMemoryWriterClear(&mut self.0) }
    }
}

/// A picture of `width` x `height` for YUV planes (not ARGB: an import converts the pixels
/// straight into them), once `len` bytes are known to hold that many pixels of `channels` bytes.
fn yuv_picture(len: usize, width: u32, height: u32, channels: usize) -> Result<Picture, String> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!(
            "{width}x{height} is outside libwebp's 1..={MAX_SIDE} pixels a side"
        ));
    }
    if len < width as usize * channels * height as usize {
        return Err(format!(
            "{len} bytes of pixels for a {width}x{height} image of {channels} channels"
        ));
    }
    let mut picture = Picture(
        WebPPicture::new().map_err(|()| "libwebp's encoder ABI does not match".to_string())?,
    );
    picture.0.use_argb = 0;
    picture.0.width = width as i32;
    picture.0.height = height as i32;
    Ok(picture)
}

/// Pixels imported into libwebp's YUV planes, ready to encode: the caller's RGB(A) buffer is
/// no longer needed once this exists.
pub(crate) struct Imported(Picture);

/// Imports `pixels` (rows of `width` 8-bit RGB pixels, or RGBA when `alpha`, no padding) into
/// a picture's YUV(A) planes. `Err` says what libwebp refused.
pub(crate) fn import(
    pixels: &[u8],
    width: u32,
    height: u32,
    alpha: bool,
) -> Result<Imported, String> {
    let channels: usize = if alpha { 4 } else { 3 };
    let stride = width as usize * channels;
    let mut picture = yuv_picture(pixels.len(), width, height, channels)?;
    // SAFETY: `pixels` holds at least `height` rows of `stride` bytes (checked above), which is
    // all the import reads; it allocates the picture's planes itself (freed by `Picture`).
    let imported = unsafe {
        if alpha {
            WebPPictureImportRGBA(&mut picture.0, pixels.as_ptr(), stride as i32)
        } else {
            WebPPictureImportRGB(&mut picture.0, pixels.as_ptr(), stride as i32)
        }
    };
    if imported == 0 {
        return Err(format!(
            "importing the pixels failed: {:?}",
            picture.0.error_code
        ));
    }
    Ok(Imported(picture))
}

/// Rows imported at a time by [`import_rgb_in_strips`]: an even number, so that every strip's
/// chroma rows pair the same source rows as a whole import's do.
pub(crate) const STRIP_ROWS: usize = 256;

/// [`import`] of RGB pixels (no alpha) that consumes them: strips of `strip_rows` rows (even)
/// are imported from the bottom up, each into a small picture whose planes are copied into the
/// whole picture's, and the RGB buffer is shrunk past each strip as it goes. The whole
/// picture's planes are allocated at once but only touched strip by strip, so the RGB (3 bytes
/// a pixel) and the YUV (1.5) are never both whole in memory: a 62.5 MP photo holds ~190 MB at
/// the import's peak instead of ~280. The planes are the same bytes as a whole import's (the
/// conversion has no dithering and pairs rows 2k, 2k+1 for chroma; an odd last row pairs with
/// itself in both), which `a_strip_import_is_the_whole_imports_bitstream` checks.
pub(crate) fn import_rgb_in_strips(
    mut pixels: Vec<u8>,
    width: u32,
    height: u32,
    strip_rows: usize,
) -> Result<Imported, String> {
    assert!(
        strip_rows >= 2 && strip_rows.is_multiple_of(2),
        "strips of an even number of rows"
    );
    let (w, h) = (width as usize, height as usize);
    let stride = w * 3;
    let mut picture = yuv_picture(pixels.len(), width, height, 3)?;
    // SAFETY: an initialised picture with its dimensions set; libwebp allocates its YUV planes
    // (uninitialised, so their pages cost nothing until written), freed by `Picture`.
    if unsafe { WebPPictureAlloc(&mut picture.0) } == 0 {
        return Err(format!(
            "allocating the picture failed: {:?}",
            picture.0.error_code
        ));
    }
    let (y_stride, uv_stride) = (picture.0.y_stride as usize, picture.0.uv_stride as usize);
    let uv_width = w.div_ceil(2);
    let mut end = h;
    while end > 0 {
        // Strips start at even rows; the bottom one takes what is left over.
        let start = (end - 1) / strip_rows * strip_rows;
        let rows = end - start;
        let strip = import(
            &pixels[start * stride..end * stride],
            width,
            rows as u32,
            false,
        )?;
        let part = &strip.0 .0;
        for r in 0..rows {
            // SAFETY: row `start + r` of the whole picture's Y plane (`height` rows of
            // `y_stride` >= `width` bytes, allocated above) and row `r` of the strip's (`rows`
            // rows of `width`), two distinct allocations.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    part.y.add(r * part.y_stride as usize),
                    picture.0.y.add((start + r) * y_stride),
                    w,
                );
            }
        }
        for r in 0..rows.div_ceil(2) {
            let (from, to) = (r * part.uv_stride as usize, (start / 2 + r) * uv_stride);
            // SAFETY: as above, for the U and V planes: `(height + 1) / 2` rows of `uv_stride`
            // >= `(width + 1) / 2` bytes in the whole picture, `(rows + 1) / 2` in the strip;
            // `start` is even, so the strip's chroma row r is the picture's `start / 2 + r`.
            unsafe {
                std::ptr::copy_nonoverlapping(part.u.add(from), picture.0.u.add(to), uv_width);
                std::ptr::copy_nonoverlapping(part.v.add(from), picture.0.v.add(to), uv_width);
            }
        }
        drop(strip);
        pixels.truncate(start * stride);
        pixels.shrink_to_fit();
        end = start;
    }
    Ok(Imported(picture))
}

impl Imported {
    /// Encodes the picture with `config` as a lossy WebP. `Err` says what libwebp refused.
    pub(crate) fn encode(mut self, config: &WebPConfig) -> Result<Vec<u8>, String> {
        // SAFETY: `config` is a live WebPConfig (libwebp only reads it).
        if unsafe { WebPValidateConfig(config) } == 0 {
            return Err("invalid encoder configuration".into());
        }
        let picture = &mut self.0 .0;
        let mut writer = Writer(WebPMemoryWriter {
            mem: std::ptr::null_mut(),
            size: 0,
            max_size: 0,
            pad: [0],
        });
        // SAFETY: initialises the writer in place (an empty buffer).
        unsafe { WebPMemoryWriterInit(&mut writer.0) };
        picture.writer = Some(WebPMemoryWrite);
        picture.custom_ptr = (&mut writer.0 as *mut WebPMemoryWriter).cast::<c_void>();
        // SAFETY: the picture holds valid planes of its dimensions; its writer appends to
        // `writer`, which lives until after the call and is not moved while the picture points
        // at it.
        let encoded = unsafe { WebPEncode(config, picture) };
        if encoded == 0 {
            return Err(format!("{:?}", picture.error_code));
        }
        Ok(if writer.0.size == 0 {
            Vec::new()
        } else {
            // SAFETY: after a successful encode the writer's `mem` holds `size` bytes libwebp
            // wrote.
            unsafe { std::slice::from_raw_parts(writer.0.mem, writer.0.size) }.to_vec()
        })
    }
}

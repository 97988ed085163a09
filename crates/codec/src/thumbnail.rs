use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::DynamicImage;

/// A JPEG thumbnail whose longer side is at most `max_side` (never upscaled).
pub fn thumbnail_jpeg(image: &DynamicImage, max_side: u32, quality: u8) -> Vec<u8> {
    let small = if image.width().max(image.height()) > max_side {
        image.thumbnail(max_side, max_side)
    } else {
        image.clone()
    };
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&small.to_rgb8())
        .expect("encoding RGB8 to memory cannot fail");
    out.into_inner()
}

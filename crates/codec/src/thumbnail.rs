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

/// A flat grey JPEG thumbnail, standing in for one that cannot be made from an undecodable photo.
pub fn placeholder_thumbnail_jpeg(side: u32) -> Vec<u8> {
    let grey = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        side,
        side,
        image::Rgb([128, 128, 128]),
    ));
    thumbnail_jpeg(&grey, side, 80)
}

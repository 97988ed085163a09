//! The first guess of the per-photo quality (`predict.rs`): the statistics it reads and the
//! source JPEG's own quality, on real photos.

mod common;

use common::shared_photo;
use image::codecs::jpeg::JpegEncoder;
use image::DynamicImage;
use recast_codec::{decode, jpeg_quality, predicted_quality, PhotoStats};

fn jpeg_at(image: &DynamicImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(image)
        .unwrap();
    out
}

#[test]
fn a_jpegs_own_quality_is_read_from_its_quantisation_table() {
    let (image, _) = decode(&shared_photo("coffee.jpg"), u64::MAX).unwrap();
    for quality in [40u8, 60, 75, 90, 95] {
        let estimated = jpeg_quality(&jpeg_at(&image, quality)).unwrap();
        assert!(
            (estimated - f64::from(quality)).abs() <= 2.0,
            "saved at {quality}, estimated {estimated:.1}"
        );
    }
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(jpeg_quality(&png), None);
    assert_eq!(jpeg_quality(&[0xFF, 0xD8, 0xFF]), None);
}

#[test]
fn detail_and_flatness_tell_a_photo_from_its_blurred_self_and_the_guess_follows_the_target() {
    let (image, _) = decode(&shared_photo("astronaut.jpg"), u64::MAX).unwrap();
    let sharp = PhotoStats::of(&image);
    let blurred = PhotoStats::of(&image.blur(4.0));
    assert!(sharp.detail > 2.0 * blurred.detail, "{sharp:?} {blurred:?}");
    assert!(sharp.flat < blurred.flat, "{sharp:?} {blurred:?}");
    let flat = PhotoStats::of(&DynamicImage::new_rgb8(64, 64));
    assert_eq!((flat.detail, flat.flat, flat.chroma), (0.0, 1.0, 0.0));
    let mut last = 0.0;
    for target in [50.0, 60.0, 70.0, 80.0, 90.0] {
        let q = predicted_quality(&sharp, Some(90.0), target);
        assert!((30.0..=95.0).contains(&q), "{target}: {q}");
        assert!(q >= last, "target {target}: {q} after {last}");
        last = q;
    }
    assert!(
        predicted_quality(&sharp, Some(90.0), 80.0) > predicted_quality(&sharp, Some(90.0), 60.0)
    );
}

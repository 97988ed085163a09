//! recast's own SSIMULACRA2 (`ssim2.rs`, behind `ssimulacra2_whole`) against the `ssimulacra2`
//! crate's, on real photos at several qualities: the per-photo quality relies on it scoring like
//! the crate (and libjxl), only faster.

mod common;

use common::shared_photo;
use image::{DynamicImage, RgbImage};
use recast_codec::{
    decode, encode_webp, quality_score, ssimulacra2_streamed, ssimulacra2_whole, EncodeOptions,
};

#[test]
fn our_ssimulacra2_scores_within_half_a_point_of_the_crates() {
    let mut compared = 0;
    for name in ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"] {
        let (image, _) = decode(&shared_photo(name), u64::MAX).unwrap();
        let mut last = f64::NEG_INFINITY;
        for quality in [20.0, 50.0, 80.0, 95.0] {
            let options = EncodeOptions {
                quality,
                ..EncodeOptions::default()
            };
            let webp = encode_webp(&image, &options).unwrap();
            // The crate's score of the whole image (`u64::MAX` pixels: no tiles).
            let theirs = quality_score(&image, &webp, u64::MAX).unwrap().unwrap();
            let decoded = webp::Decoder::new(&webp).decode().unwrap();
            assert!(!decoded.is_alpha());
            let decoded = DynamicImage::ImageRgb8(
                RgbImage::from_raw(decoded.width(), decoded.height(), decoded.to_vec()).unwrap(),
            );
            let ours = ssimulacra2_whole(&image, &decoded).unwrap();
            assert!(
                (ours - theirs).abs() <= 0.5,
                "{name} at quality {quality}: ours {ours:.2}, the crate's {theirs:.2}"
            );
            // And it measures something: the score rises with the quality.
            assert!(
                ours > last,
                "{name}: {ours:.2} at {quality} after {last:.2}"
            );
            last = ours;
            compared += 1;
        }
    }
    assert_eq!(compared, 16);
}

#[test]
fn an_identical_image_scores_100_and_a_size_mismatch_is_not_scored() {
    let (image, _) = decode(&shared_photo("chelsea.jpg"), u64::MAX).unwrap();
    let score = ssimulacra2_whole(&image, &image).unwrap();
    assert!((score - 100.0).abs() < 1e-6, "{score}");
    let smaller = image.crop_imm(0, 0, 100, 100);
    assert_eq!(ssimulacra2_whole(&image, &smaller), None);
    let tiny = image.crop_imm(0, 0, 7, 100);
    assert_eq!(ssimulacra2_whole(&tiny, &tiny), None);
}

/// The row-by-row form the per-photo quality uses gives the whole-plane form's score, on real
/// photos, on sizes that are odd at some scale, on one too small for all six scales, and with
/// alpha. Not bit for bit: it skips the channels whose weights are all under 0.01 (X and B at
/// full resolution), which may move the score by 0.04 points at the very most.
#[test]
fn the_streamed_score_is_the_whole_plane_score_within_a_hundredth() {
    let mut compared = 0;
    for name in ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"] {
        let (image, _) = decode(&shared_photo(name), u64::MAX).unwrap();
        for (w, h) in [(image.width(), image.height()), (301, 203), (37, 9), (8, 8)] {
            let source = image.crop_imm(3, 5, w.min(image.width() - 3), h.min(image.height() - 5));
            for quality in [30.0, 80.0] {
                let options = EncodeOptions {
                    quality,
                    ..EncodeOptions::default()
                };
                let webp = encode_webp(&source, &options).unwrap();
                let decoded = webp::Decoder::new(&webp).decode().unwrap();
                let decoded = DynamicImage::ImageRgb8(
                    RgbImage::from_raw(decoded.width(), decoded.height(), decoded.to_vec())
                        .unwrap(),
                );
                let whole = ssimulacra2_whole(&source, &decoded).unwrap();
                let streamed = ssimulacra2_streamed(&source, &decoded).unwrap();
                assert!(
                    (whole - streamed).abs() < 0.01,
                    "{name} {w}x{h} at {quality}: whole {whole}, streamed {streamed}"
                );
                assert!(whole < 100.0, "{name} {w}x{h} at {quality}: {whole}");
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 24);
    // Alpha: a photo with a transparent gradient, against itself with the alpha changed.
    let (image, _) = decode(&shared_photo("chelsea.jpg"), u64::MAX).unwrap();
    let mut rgba = image.to_rgba8();
    for (x, _, px) in rgba.enumerate_pixels_mut() {
        px[3] = (x % 256) as u8;
    }
    let mut other = rgba.clone();
    for px in other.pixels_mut() {
        px[3] = px[3].saturating_add(40);
    }
    let (a, b) = (
        DynamicImage::ImageRgba8(rgba),
        DynamicImage::ImageRgba8(other),
    );
    let whole = ssimulacra2_whole(&a, &b).unwrap();
    assert!((whole - ssimulacra2_streamed(&a, &b).unwrap()).abs() < 0.01);
    assert!(whole < 100.0);
    assert_eq!(ssimulacra2_streamed(&a, &a.crop_imm(0, 0, 50, 50)), None);
}

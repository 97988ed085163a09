//! What the per-photo quality predicts (`predict.rs`): the source JPEG's own quality, on real
//! photos, and the quality the probe model asks for.

mod common;

use common::shared_photo;
use image::codecs::jpeg::JpegEncoder;
use image::DynamicImage;
use recast_codec::{decode, jpeg_quality, quality_after_probe, PROBE_QUALITY};

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
fn the_quality_after_the_probe_falls_as_the_probes_score_rises() {
    for target in [50.0, 60.0, 70.0, 80.0, 90.0] {
        // A probe that scored exactly the goal: the answer is near the probe, aimed above it.
        let goal = target + 0.5;
        let q = quality_after_probe(goal, goal, target);
        assert!((60.0..=95.0).contains(&q), "{target}: {q}");
        let mut previous = 101.0;
        for probe_score in [goal - 10.0, goal - 3.0, goal, goal + 3.0, goal + 10.0] {
            let q = quality_after_probe(probe_score, goal, target);
            assert!(
                q < previous,
                "target {target}, probe {probe_score}: {q} after {previous}"
            );
            previous = q;
        }
        let under = quality_after_probe(goal - 2.0, goal, target);
        assert!(
            under > PROBE_QUALITY,
            "a probe under the goal steps up: {under}"
        );
    }
}

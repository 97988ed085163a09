//! The per-photo quality, the no-saving rule, the pixel cap of every format, and broken inputs,
//! through `convert` on real photos.

mod common;

use std::io::Cursor;

use common::{shared_photo, upright_chelsea, webp};
use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageFormat, RgbaImage};
use recast_codec::{
    convert, decode, quality_score, CodecError, Conversion, ConvertOptions, EncodeOptions,
    KeepReason, DEFAULT_MAX_PIXELS, DEFAULT_MAX_QUALITY, DEFAULT_TARGET_SCORE,
};

fn with_quality(quality: f32) -> ConvertOptions {
    ConvertOptions {
        encode: EncodeOptions {
            quality,
            ..EncodeOptions::default()
        },
        ..ConvertOptions::default()
    }
}

#[test]
fn the_score_falls_with_the_quality_and_photos_reach_the_target_at_the_defaults() {
    let jpeg = shared_photo("astronaut.jpg");
    let (image, _) = decode(&jpeg, DEFAULT_MAX_PIXELS).unwrap();
    let score_at = |q: f32| {
        let webp = recast_codec::encode_webp(
            &image,
            &EncodeOptions {
                quality: q,
                ..EncodeOptions::default()
            },
        )
        .unwrap();
        quality_score(&image, &webp, u64::MAX).unwrap().unwrap()
    };
    let (low, high) = (score_at(5.0), score_at(95.0));
    assert!(low + 15.0 < high, "q5 scores {low:.1}, q95 {high:.1}");
    assert!(high > 80.0, "q95 scores only {high:.1}");

    for name in ["astronaut.jpg", "chelsea.jpg", "coffee.jpg", "rocket.jpg"] {
        let c = webp(&shared_photo(name), &ConvertOptions::default());
        let score = c.score.expect("measured");
        assert!(score >= DEFAULT_TARGET_SCORE, "{name}: {score:.1}");
        assert!(
            (recast_codec::MIN_QUALITY..=DEFAULT_MAX_QUALITY).contains(&c.quality),
            "{name}: quality {}",
            c.quality
        );
        assert!(c.tries >= 1, "{name}: no probe");
    }
}

#[test]
fn the_chosen_quality_and_bytes_never_fall_as_the_target_rises() {
    for name in ["coffee.jpg", "rocket.jpg"] {
        let jpeg = shared_photo(name);
        let mut last: Option<(f64, f32, usize)> = None;
        let mut first_quality = None;
        for target in [50.0, 60.0, 65.0, 70.0, 75.0] {
            let c = webp(
                &jpeg,
                &ConvertOptions {
                    target_score: target,
                    ..ConvertOptions::default()
                },
            );
            assert!(
                c.score.unwrap() >= target,
                "{name} at {target}: {:?}",
                c.score
            );
            if let Some((t, q, bytes)) = last {
                assert!(
                    c.quality >= q && c.out.webp.len() >= bytes,
                    "{name}: target {target} gave quality {} and {} bytes, target {t} gave \
                     quality {q} and {bytes} bytes",
                    c.quality,
                    c.out.webp.len()
                );
            }
            first_quality.get_or_insert(c.quality);
            last = Some((target, c.quality, c.out.webp.len()));
        }
        // Honest only if the target moved the choice at all.
        assert!(
            last.unwrap().1 > first_quality.unwrap(),
            "{name}: targets 50 to 75 all chose quality {}",
            last.unwrap().1
        );
    }
}

#[test]
fn a_target_no_quality_reaches_keeps_the_original_with_reason_quality() {
    // The source is a PNG so that even the maximum quality saves bytes and only the score
    // decides.
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(upright_chelsea())
        .write_to(&mut png, ImageFormat::Png)
        .unwrap();
    let impossible = ConvertOptions {
        target_score: 99.0,
        max_quality: 90.0,
        ..ConvertOptions::default()
    };
    match convert(png.get_ref(), &impossible).unwrap() {
        Conversion::Keep {
            reason: KeepReason::Quality,
            detail,
        } => assert!(
            detail.contains("for the target 99.0, even at the maximum quality 90"),
            "{detail}"
        ),
        other => panic!("expected kept: quality, got {other:?}"),
    }
    assert_eq!(KeepReason::Quality.to_string(), "quality");
    // The same photo and target with room to go higher converts.
    let reachable = ConvertOptions {
        target_score: 70.0,
        ..impossible
    };
    assert!(webp(png.get_ref(), &reachable).score.unwrap() >= 70.0);
}

#[test]
fn a_webp_that_saves_under_5_percent_keeps_the_original() {
    // A heavily compressed JPEG re-encoded at a high WebP quality grows.
    let mut small = Vec::new();
    JpegEncoder::new_with_quality(&mut small, 20)
        .encode_image(&upright_chelsea())
        .unwrap();
    match convert(&small, &with_quality(95.0)).unwrap() {
        Conversion::Keep {
            reason: KeepReason::NoSaving,
            detail,
        } => assert!(detail.contains("5% needed"), "{detail}"),
        other => panic!("expected kept: no saving, got {other:?}"),
    }
    assert_eq!(KeepReason::NoSaving.to_string(), "no saving");
    // The same photo at a saving setting converts (the guard relaxed: a q20 JPEG's artefacts
    // are hard to keep at a low WebP quality).
    let saving = ConvertOptions {
        check_quality: false,
        ..with_quality(40.0)
    };
    assert!(webp(&small, &saving).out.webp.len() < small.len() * 95 / 100);
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn encoded(format: ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let image = DynamicImage::ImageRgba8(RgbaImage::from_pixel(
        width,
        height,
        image::Rgba([90, 120, 200, 255]),
    ));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn assert_refused(input: &[u8], what: &str, pixels: u64) {
    match decode(input, DEFAULT_MAX_PIXELS) {
        Err(CodecError::TooLarge { pixels: p, .. }) => assert_eq!(p, pixels, "{what}"),
        other => panic!("{what}: expected TooLarge, got {:?}", other.map(|(_, i)| i)),
    }
    assert!(matches!(
        convert(input, &ConvertOptions::default()),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn png_and_gif_headers_claiming_60000_squared_are_refused_before_decoding() {
    // PNG: IHDR width and height, with its CRC made right so only the size is wrong.
    let mut png = encoded(ImageFormat::Png, 16, 16);
    png[16..20].copy_from_slice(&60000u32.to_be_bytes());
    png[20..24].copy_from_slice(&60000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    assert_refused(&png, "png", 3_600_000_000);

    // GIF: the logical screen size (little-endian u16s after the signature).
    let mut gif = encoded(ImageFormat::Gif, 16, 16);
    gif[6..8].copy_from_slice(&60000u16.to_le_bytes());
    gif[8..10].copy_from_slice(&60000u16.to_le_bytes());
    assert_refused(&gif, "gif", 3_600_000_000);
}

#[test]
fn a_webp_header_claiming_16383_squared_is_refused_before_decoding() {
    // A lossy WebP's VP8 frame header holds 14-bit sizes, at most 16383: 268 MP.
    let mut webp = recast_codec::encode_webp(
        &DynamicImage::ImageRgb8(upright_chelsea()),
        &EncodeOptions::default(),
    )
    .unwrap();
    assert_eq!(&webp[12..16], b"VP8 ");
    webp[26..28].copy_from_slice(&16383u16.to_le_bytes());
    webp[28..30].copy_from_slice(&16383u16.to_le_bytes());
    match decode(&webp, DEFAULT_MAX_PIXELS) {
        Err(CodecError::TooLarge { pixels, .. }) => assert_eq!(pixels, 16383 * 16383),
        other => panic!("expected TooLarge, got {:?}", other.map(|(_, i)| i)),
    }
    // convert never decodes a WebP: it reports it from the header as it is.
    assert!(matches!(
        convert(&webp, &ConvertOptions::default()),
        Ok(Conversion::AlreadyWebp {
            width: 16383,
            height: 16383
        })
    ));
}

#[test]
fn empty_truncated_and_not_an_image_are_errors_of_bad_input() {
    let options = ConvertOptions::default();
    assert!(matches!(convert(b"", &options), Err(CodecError::Empty)));
    assert!(matches!(
        convert(b"plain text, not a photo", &options),
        Err(CodecError::UnknownFormat)
    ));
    let jpeg = shared_photo("rocket.jpg");
    // Cut in the headers, and cut in the scan (which the JPEG decoder alone would pad with grey).
    for cut in [200, jpeg.len() / 3, jpeg.len() - 10] {
        match convert(&jpeg[..cut], &options) {
            Err(e) => assert!(e.is_bad_input(), "cut at {cut}: {e}"),
            Ok(other) => panic!("cut at {cut}: {other:?}"),
        }
    }
    assert!(matches!(
        convert(&jpeg[..jpeg.len() / 3], &options),
        Err(CodecError::Truncated { .. })
    ));
}

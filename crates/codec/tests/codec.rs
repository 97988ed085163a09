//! Conversions of real photos (../shared/photos) and of broken inputs made from them.

use std::path::PathBuf;

use image::GenericImageView;
use recast_codec::{
    decode, probe, synth_photo_jpeg, thumbnail_jpeg, transcode, CodecError, EncodeOptions,
};

fn shared_photo(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("RECAST_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/photos")
        });
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test photo {} is missing: {e}", path.display()))
}

#[test]
fn real_photo_becomes_a_smaller_webp_of_the_same_size() {
    let jpeg = shared_photo("chelsea.jpg");
    let info = probe(&jpeg).unwrap();
    let out = transcode(&jpeg, &EncodeOptions::default()).unwrap();
    assert_eq!((out.width, out.height), (info.width, info.height));
    assert_eq!(out.source_format, "jpeg");
    assert_eq!(&out.webp[..4], b"RIFF");
    assert_eq!(&out.webp[8..12], b"WEBP");
    let back = image::load_from_memory(&out.webp).unwrap();
    assert_eq!(back.dimensions(), (info.width, info.height));
    assert!(
        out.webp.len() < jpeg.len(),
        "{} >= {}",
        out.webp.len(),
        jpeg.len()
    );
}

#[test]
fn higher_quality_costs_more_bytes() {
    let jpeg = shared_photo("coffee.jpg");
    let low = transcode(
        &jpeg,
        &EncodeOptions {
            quality: 40.0,
            ..Default::default()
        },
    )
    .unwrap();
    let high = transcode(
        &jpeg,
        &EncodeOptions {
            quality: 95.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(low.webp.len() < high.webp.len());
}

#[test]
fn broken_inputs_are_refused_with_a_reason() {
    assert!(matches!(
        transcode(b"", &EncodeOptions::default()),
        Err(CodecError::Empty)
    ));
    assert!(matches!(
        transcode(b"this is not a photo at all", &EncodeOptions::default()),
        Err(CodecError::UnknownFormat)
    ));
    let jpeg = shared_photo("rocket.jpg");
    let truncated = &jpeg[..jpeg.len() / 3];
    // The decoder alone would fill the missing rows with grey; the worker's path refuses it.
    match transcode(truncated, &EncodeOptions::default()) {
        Err(e @ CodecError::Truncated { .. }) => assert!(e.is_bad_input(), "{e}"),
        other => panic!("expected Truncated, got {:?}", other.map(|o| o.webp.len())),
    }
    let header_only = &jpeg[..200];
    assert!(transcode(header_only, &EncodeOptions::default()).is_err());
}

/// Rewrites the SOF dimensions of a JPEG so the header claims another size.
fn with_claimed_size(mut jpeg: Vec<u8>, width: u16, height: u16) -> Vec<u8> {
    let sof = jpeg
        .windows(2)
        .position(|w| w[0] == 0xFF && (0xC0..=0xC2).contains(&w[1]))
        .expect("a JPEG has a SOF marker");
    jpeg[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    jpeg[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    jpeg
}

#[test]
fn a_header_claiming_60000_squared_is_refused_before_decoding() {
    let huge = with_claimed_size(shared_photo("chelsea.jpg"), 60000, 60000);
    let info = probe(&huge).unwrap();
    assert_eq!((info.width, info.height), (60000, 60000));
    match decode(&huge, recast_codec::DEFAULT_MAX_PIXELS) {
        Err(CodecError::TooLarge { pixels, .. }) => assert_eq!(pixels, 3_600_000_000),
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

#[test]
fn thumbnails_fit_the_box_and_synthetic_photos_decode() {
    let jpeg = synth_photo_jpeg(7, 640, 480);
    assert_eq!(
        synth_photo_jpeg(7, 640, 480),
        jpeg,
        "synthesis is not deterministic"
    );
    let (img, _) = decode(&jpeg, u64::MAX).unwrap();
    assert_eq!(img.dimensions(), (640, 480));
    let thumb = image::load_from_memory(&thumbnail_jpeg(&img, 160, 80)).unwrap();
    assert_eq!(thumb.dimensions(), (160, 120));
    let same = image::load_from_memory(&thumbnail_jpeg(&img, 2000, 80)).unwrap();
    assert_eq!(same.dimensions(), (640, 480), "upscaled");
    // Photo-like, not flat: a 0.3 MP synthetic photo is tens of kilobytes as JPEG q90.
    assert!(jpeg.len() > 30_000, "{} bytes", jpeg.len());
}

/// recast imports pixels straight into libwebp's YUV planes (`libwebp_enc.rs`); the `webp`
/// crate goes through an ARGB copy. The bitstream must be the same, with and without alpha.
#[test]
fn an_encode_is_the_webp_crates_byte_for_byte() {
    let (photo, _) = decode(&shared_photo("chelsea.jpg"), u64::MAX).expect("decodes");
    let rgb = photo.to_rgb8();
    let (w, h) = rgb.dimensions();
    // An alpha ramp over the photo, so the alpha plane is neither empty nor uniform.
    let rgba = image::RgbaImage::from_fn(w, h, |x, y| {
        let p = rgb.get_pixel(x, y).0;
        image::Rgba([p[0], p[1], p[2], ((x + y) % 256) as u8])
    });
    for (quality, method) in [(80.0, 4), (55.0, 2), (92.0, 6)] {
        let options = EncodeOptions {
            quality,
            method,
            max_pixels: u64::MAX,
        };
        let mut config = webp::WebPConfig::new().expect("config");
        config.quality = quality;
        config.method = i32::from(method);
        let theirs = webp::Encoder::from_rgb(rgb.as_raw(), w, h)
            .encode_advanced(&config)
            .expect("encodes");
        let ours =
            recast_codec::encode_webp(&image::DynamicImage::ImageRgb8(rgb.clone()), &options)
                .expect("encodes");
        assert!(ours.len() > 1000, "a real WebP: {} bytes", ours.len());
        assert!(
            *theirs == *ours,
            "RGB at quality {quality}, method {method}: the bitstreams differ"
        );
        let theirs = webp::Encoder::from_rgba(rgba.as_raw(), w, h)
            .encode_advanced(&config)
            .expect("encodes");
        let ours =
            recast_codec::encode_webp(&image::DynamicImage::ImageRgba8(rgba.clone()), &options)
                .expect("encodes");
        assert!(
            *theirs == *ours,
            "RGBA at quality {quality}, method {method}: the bitstreams differ"
        );
    }
}

/// libwebp takes at most 16383 pixels a side: a wider image is refused with that reason, not a
/// crash or an empty WebP.
#[test]
fn an_image_wider_than_libwebp_takes_is_refused_with_the_reason() {
    let wide = image::DynamicImage::ImageRgb8(image::RgbImage::new(16384, 2));
    match recast_codec::encode_webp(&wide, &EncodeOptions::default()) {
        Err(CodecError::Encode(reason)) => {
            assert!(
                reason.contains("16384x2") && reason.contains("16383"),
                "{reason}"
            )
        }
        other => panic!("expected an encode error, got {other:?}"),
    }
}

/// Importing the pixels into libwebp in strips from the bottom up (what a worker does without
/// `--target-score`, to hold less memory) gives the whole import's bitstream: odd and even
/// widths and heights, strips that do and do not divide the height, one strip, strips of 2.
#[test]
fn a_strip_import_is_the_whole_imports_bitstream() {
    let (photo, _) = decode(&shared_photo("chelsea.jpg"), u64::MAX).expect("decodes");
    let rgb = photo.to_rgb8();
    let options = EncodeOptions {
        quality: 75.0,
        method: 4,
        max_pixels: u64::MAX,
    };
    for (w, h) in [
        (rgb.width(), rgb.height()),
        (301, 201),
        (300, 199),
        (97, 64),
    ] {
        let crop =
            image::imageops::crop_imm(&rgb, 3, 5, w.min(rgb.width() - 3), h.min(rgb.height() - 5))
                .to_image();
        let whole =
            recast_codec::encode_webp(&image::DynamicImage::ImageRgb8(crop.clone()), &options)
                .expect("encodes");
        assert!(whole.len() > 500, "a real WebP: {} bytes", whole.len());
        for strip in [2, 16, 64, 256, 100_000] {
            let strips =
                recast_codec::encode_rgb_in_strips(crop.clone(), strip, &options).expect("encodes");
            assert!(
                strips == whole,
                "{}x{} in strips of {strip} rows: {} bytes against {}",
                crop.width(),
                crop.height(),
                strips.len(),
                whole.len()
            );
        }
    }
}

//! What users really upload, from real photos: orientations, colour models, bit depths, alpha,
//! animation, metadata. Each WebP is decoded back and compared with the upright source.

mod common;

use std::io::Cursor;

use common::{
    decode_webp, exif_u16, fixture, ifd0_tags, ifd0_value, jpeg_exif, mean_abs_diff, shared_photo,
    upright_chelsea, webp, webp_metadata,
};
use image::codecs::gif::{GifEncoder, Repeat};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{
    DynamicImage, Frame, GenericImageView, ImageBuffer, ImageEncoder, Rgb, Rgba, RgbaImage,
};
use recast_codec::{Conversion, ConvertOptions};

const TAG_ORIENTATION: u16 = 0x0112;
const TAG_GPS: u16 = 0x8825;

#[test]
fn orientations_3_6_and_8_are_applied_to_the_pixels() {
    let upright = upright_chelsea();
    for n in [3, 6, 8] {
        let jpeg = fixture(&format!("orient-{n}.jpg"));
        let stored = image::load_from_memory(&jpeg).unwrap();
        let c = webp(&jpeg, &ConvertOptions::default());
        let back = decode_webp(&c.out.webp).to_rgb8();
        assert_eq!(back.dimensions(), upright.dimensions(), "orientation {n}");
        let diff = mean_abs_diff(&back, &upright);
        assert!(
            diff < 6.0,
            "orientation {n}: differs from upright by {diff:.1}"
        );
        // The stored pixels really were turned: without the tag the photo would be wrong.
        if stored.dimensions() == upright.dimensions() {
            let unturned = mean_abs_diff(&stored.to_rgb8(), &upright);
            assert!(unturned > 20.0, "orientation {n} fixture is not turned");
        } else {
            assert_eq!(stored.dimensions(), (upright.height(), upright.width()));
        }
        // Nothing in the WebP can turn it again.
        assert_eq!(
            webp_metadata(&c.out.webp).1,
            None,
            "orientation {n}: EXIF kept"
        );
    }
}

#[test]
fn kept_exif_has_no_gps_and_no_orientation_but_keeps_the_rest() {
    let jpeg = fixture("orient-6.jpg");
    let source = jpeg_exif(&jpeg).expect("the fixture has EXIF");
    let tags = ifd0_tags(&source);
    assert!(
        tags.contains(&TAG_GPS) && tags.contains(&TAG_ORIENTATION),
        "{tags:x?}"
    );
    let gps = ifd0_value(&source, TAG_GPS).unwrap() as usize;

    let keep = ConvertOptions {
        keep_exif: true,
        ..ConvertOptions::default()
    };
    let c = webp(&jpeg, &keep);
    let exif = webp_metadata(&c.out.webp).1.expect("EXIF carried");
    let tags = ifd0_tags(&exif);
    assert!(!tags.contains(&TAG_GPS), "GPS pointer left: {tags:x?}");
    assert!(
        !tags.contains(&TAG_ORIENTATION),
        "orientation left: {tags:x?}"
    );
    assert!(exif.windows(13).any(|w| w == b"RecastTestCam"), "Make lost");
    // The block is edited in place, so the GPS IFD is where it was: erased, entries and all.
    assert_eq!(exif.len(), source.len());
    let entries = usize::from(exif_u16(&source, gps));
    assert!(entries >= 4, "the fixture's GPS IFD has {entries} entries");
    assert!(
        exif[gps..gps + 2 + 12 * entries].iter().all(|&b| b == 0),
        "GPS IFD not erased"
    );
    assert_eq!(decode_webp(&c.out.webp).dimensions(), (451, 300));

    let default = webp(&jpeg, &ConvertOptions::default());
    assert_eq!(
        webp_metadata(&default.out.webp).1,
        None,
        "EXIF kept by default"
    );
}

/// Plain CMYK with an Adobe marker, stored inverted as Photoshop does, made with jpeg-encoder
/// (ImageMagick only writes YCCK) from a naive RGB to CMYK split.
fn adobe_cmyk_jpeg(rgb: &image::RgbImage) -> Vec<u8> {
    let cmyk: Vec<u8> = rgb
        .pixels()
        .flat_map(|Rgb([r, g, b])| {
            let k = 255 - r.max(g).max(b);
            let ink = |c: u8| {
                if k == 255 {
                    0
                } else {
                    ((255 - c - k) as u32 * 255 / (255 - k as u32)) as u8
                }
            };
            [ink(*r), ink(*g), ink(*b), k]
        })
        .collect();
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 95)
        .encode(
            &cmyk,
            rgb.width() as u16,
            rgb.height() as u16,
            jpeg_encoder::ColorType::Cmyk,
        )
        .unwrap();
    out
}

#[test]
fn cmyk_adobe_inverted_and_ycck_come_out_in_the_right_colours() {
    let upright = upright_chelsea();
    let adobe = adobe_cmyk_jpeg(&upright);
    assert!(adobe.windows(5).any(|w| w == b"Adobe"));
    for (name, jpeg) in [("adobe cmyk", adobe), ("ycck", fixture("ycck.jpg"))] {
        let c = webp(&jpeg, &ConvertOptions::default());
        let back = decode_webp(&c.out.webp).to_rgb8();
        let diff = mean_abs_diff(&back, &upright);
        // An inverted or mis-transformed decode is off by ~100; a right one by encode noise.
        assert!(
            diff < 8.0,
            "{name}: differs from the RGB photo by {diff:.1}"
        );
    }
}

#[test]
fn grayscale_stays_grey_and_progressive_decodes_whole() {
    let gray = fixture("gray.jpg");
    let c = webp(&gray, &ConvertOptions::default());
    let back = decode_webp(&c.out.webp).to_rgb8();
    let luma = DynamicImage::ImageRgb8(upright_chelsea()).to_luma8();
    let tint = back
        .pixels()
        .map(|Rgb([r, g, b])| r.abs_diff(*g).max(g.abs_diff(*b)))
        .max()
        .unwrap();
    assert!(tint <= 6, "grey photo got colour: {tint}");
    let grey_back = DynamicImage::ImageRgb8(back).to_rgb8();
    let luma_rgb = DynamicImage::ImageLuma8(luma).to_rgb8();
    assert!(mean_abs_diff(&grey_back, &luma_rgb) < 6.0);

    let progressive = fixture("progressive.jpg");
    assert!(
        progressive.windows(2).any(|w| w == [0xFF, 0xC2]),
        "fixture is not progressive (no SOF2)"
    );
    let c = webp(&progressive, &ConvertOptions::default());
    let back = decode_webp(&c.out.webp).to_rgb8();
    let coffee = image::load_from_memory(&shared_photo("coffee.jpg"))
        .unwrap()
        .to_rgb8();
    let diff = mean_abs_diff(&back, &coffee);
    assert!(diff < 6.0, "progressive differs by {diff:.1}");
}

#[test]
fn sixteen_bit_png_is_converted_from_all_its_bits() {
    let upright = upright_chelsea();
    let wide: ImageBuffer<Rgb<u16>, Vec<u16>> =
        ImageBuffer::from_fn(upright.width(), upright.height(), |x, y| {
            Rgb(upright.get_pixel(x, y).0.map(|v| u16::from(v) * 257))
        });
    let mut png = Cursor::new(Vec::new());
    DynamicImage::ImageRgb16(wide)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    assert_eq!(png[24], 16, "IHDR bit depth");
    let c = webp(&png, &ConvertOptions::default());
    assert_eq!(c.out.source_format, "png");
    let back = decode_webp(&c.out.webp).to_rgb8();
    let diff = mean_abs_diff(&back, &upright);
    assert!(diff < 6.0, "16-bit PNG differs by {diff:.1}");
}

#[test]
fn alpha_is_kept_in_the_webp() {
    let upright = upright_chelsea();
    let (w, h) = upright.dimensions();
    let rgba = RgbaImage::from_fn(w, h, |x, y| {
        let Rgb([r, g, b]) = *upright.get_pixel(x, y);
        // A left-to-right fade with a fully transparent hole in the middle.
        let hole = (x as i32 - w as i32 / 2).pow(2) + (y as i32 - h as i32 / 2).pow(2) < 40 * 40;
        Rgba([r, g, b, if hole { 0 } else { (x * 255 / (w - 1)) as u8 }])
    });
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(rgba.as_raw(), w, h, image::ExtendedColorType::Rgba8)
        .unwrap();
    let c = webp(&png, &ConvertOptions::default());
    let back = decode_webp(&c.out.webp);
    assert!(back.color().has_alpha(), "alpha dropped");
    let back = back.to_rgba8();
    let worst = back
        .pixels()
        .zip(rgba.pixels())
        .map(|(a, b)| a.0[3].abs_diff(b.0[3]))
        .max()
        .unwrap();
    assert!(worst <= 2, "alpha changed by up to {worst}");
}

#[test]
fn animated_gif_becomes_its_first_frame() {
    // Three frames cut from the real photo at different places.
    let photo = DynamicImage::ImageRgb8(upright_chelsea());
    let (w, h) = (200, 150);
    let crops: Vec<RgbaImage> = [(0, 0), (200, 100), (100, 150)]
        .iter()
        .map(|&(x, y)| photo.crop_imm(x, y, w, h).to_rgba8())
        .collect();
    let mut gif = Vec::new();
    {
        let mut encoder = GifEncoder::new_with_speed(&mut gif, 10);
        encoder.set_repeat(Repeat::Infinite).unwrap();
        for crop in &crops {
            encoder.encode_frame(Frame::new(crop.clone())).unwrap();
        }
    }
    let frames = image::AnimationDecoder::into_frames(
        image::codecs::gif::GifDecoder::new(Cursor::new(&gif)).unwrap(),
    )
    .count();
    assert_eq!(frames, 3, "the fixture is animated");
    let c = webp(&gif, &ConvertOptions::default());
    assert_eq!(c.out.source_format, "gif");
    assert_eq!(c.source_frames, 3, "frames left behind are not reported");
    let back = decode_webp(&c.out.webp).to_rgb8();
    assert_eq!(back.dimensions(), (w, h));
    let rgb = |i: usize| DynamicImage::ImageRgba8(crops[i].clone()).to_rgb8();
    let (first, second) = (mean_abs_diff(&back, &rgb(0)), mean_abs_diff(&back, &rgb(1)));
    assert!(
        first < 8.0 && second > 3.0 * first,
        "differs from frame 1 by {first:.1}, from frame 2 by {second:.1}"
    );
}

#[test]
fn an_already_webp_photo_is_reported_not_reencoded() {
    let first = webp(&shared_photo("rocket.jpg"), &ConvertOptions::default());
    match recast_codec::convert(&first.out.webp, &ConvertOptions::default()).unwrap() {
        Conversion::AlreadyWebp { width, height } => {
            assert_eq!((width, height), (first.out.width, first.out.height))
        }
        other => panic!("expected AlreadyWebp, got {other:?}"),
    }
}

fn jpeg_with_icc(profile: Vec<u8>) -> Vec<u8> {
    let upright = upright_chelsea();
    let mut jpeg = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut jpeg, 92);
    encoder.set_icc_profile(profile).unwrap();
    encoder
        .write_image(
            upright.as_raw(),
            upright.width(),
            upright.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    jpeg
}

#[test]
fn an_rgb_icc_profile_is_carried_and_a_cmyk_one_dropped() {
    let p3 = moxcms::ColorProfile::new_display_p3().encode().unwrap();
    assert_eq!(&p3[16..20], b"RGB ");
    let c = webp(&jpeg_with_icc(p3.clone()), &ConvertOptions::default());
    assert_eq!(webp_metadata(&c.out.webp).0, Some(p3.clone()));
    assert_eq!(decode_webp(&c.out.webp).dimensions(), (451, 300));

    // The pixels handed to the encoder are RGB, so a CMYK profile would describe them wrongly.
    let mut cmyk = p3;
    cmyk[16..20].copy_from_slice(b"CMYK");
    let c = webp(&jpeg_with_icc(cmyk), &ConvertOptions::default());
    assert_eq!(webp_metadata(&c.out.webp).0, None);
}

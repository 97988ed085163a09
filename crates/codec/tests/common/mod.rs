//! Test photos: the shared real photos, the edge cases `scripts/codec-fixtures` makes from them
//! (once per test process; the script itself makes them once per set-up and waits for another
//! process making them), and helpers to compare pixels and read a WebP's metadata.
#![allow(dead_code)] // each test binary uses its own part of these helpers

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use image::{DynamicImage, ImageDecoder, RgbImage};
use recast_codec::{Conversion, ConvertOptions, Converted};

pub fn photos_dir() -> PathBuf {
    std::env::var_os("RECAST_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/photos"))
}

pub fn shared_photo(name: &str) -> Vec<u8> {
    let path = photos_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test photo {} is missing: {e}", path.display()))
}

/// A file made by `scripts/codec-fixtures`; the tests fail, never skip, if it cannot be made.
pub fn fixture(name: &str) -> Vec<u8> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(make_fixtures);
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("fixture {} is missing: {e}", path.display()))
}

fn make_fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/codec-fixtures");
    // Keyed by the script's content, so a changed script makes a fresh set.
    let text = std::fs::read(&script).expect("scripts/codec-fixtures exists");
    let key = text.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("codec-fixtures-{key:016x}"));
    let out = Command::new("bash")
        .arg(&script)
        .arg(&dir)
        .env("RECAST_TEST_PHOTOS", photos_dir())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "scripts/codec-fixtures failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

pub fn upright_chelsea() -> RgbImage {
    image::load_from_memory(&shared_photo("chelsea.jpg"))
        .unwrap()
        .to_rgb8()
}

/// Mean absolute difference per channel, 0..=255, of two images of the same size.
pub fn mean_abs_diff(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "sizes differ");
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

/// Converts with `options` and expects a WebP.
pub fn webp(input: &[u8], options: &ConvertOptions) -> Converted {
    match recast_codec::convert(input, options) {
        Ok(Conversion::Webp(c)) => {
            assert_eq!(&c.out.webp[..4], b"RIFF");
            assert_eq!(&c.out.webp[8..12], b"WEBP");
            c
        }
        other => panic!("expected a WebP, got {other:?}"),
    }
}

pub fn decode_webp(webp: &[u8]) -> DynamicImage {
    image::load_from_memory_with_format(webp, image::ImageFormat::WebP).unwrap()
}

/// The ICC profile and EXIF block of a WebP, read by the image crate's own WebP decoder.
pub fn webp_metadata(webp: &[u8]) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let mut d = image::codecs::webp::WebPDecoder::new(std::io::Cursor::new(webp)).unwrap();
    (d.icc_profile().unwrap(), d.exif_metadata().unwrap())
}

/// The EXIF block of a JPEG, as the image crate reads it.
pub fn jpeg_exif(jpeg: &[u8]) -> Option<Vec<u8>> {
    let mut d = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(jpeg)).unwrap();
    d.exif_metadata().unwrap()
}

/// Tags of IFD0 of a little- or big-endian EXIF block.
pub fn ifd0_tags(exif: &[u8]) -> Vec<u16> {
    ifd0_entries(exif).into_iter().map(|(tag, _)| tag).collect()
}

/// The value field (or offset) of an IFD0 entry, for LONG-typed entries such as IFD pointers.
pub fn ifd0_value(exif: &[u8], tag: u16) -> Option<u32> {
    ifd0_entries(exif)
        .into_iter()
        .find(|(t, _)| *t == tag)
        .map(|(_, v)| v)
}

/// A u16 of an EXIF block at `at`, in the block's byte order.
pub fn exif_u16(exif: &[u8], at: usize) -> u16 {
    let b = [exif[at], exif[at + 1]];
    if &exif[..2] == b"MM" {
        u16::from_be_bytes(b)
    } else {
        u16::from_le_bytes(b)
    }
}

fn exif_u32(exif: &[u8], at: usize) -> u32 {
    let b = [exif[at], exif[at + 1], exif[at + 2], exif[at + 3]];
    if &exif[..2] == b"MM" {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn ifd0_entries(exif: &[u8]) -> Vec<(u16, u32)> {
    let ifd0 = exif_u32(exif, 4) as usize;
    (0..usize::from(exif_u16(exif, ifd0)))
        .map(|i| ifd0 + 2 + 12 * i)
        .map(|e| (exif_u16(exif, e), exif_u32(exif, e + 8)))
        .collect()
}

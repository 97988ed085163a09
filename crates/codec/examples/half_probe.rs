//! The probe at half resolution against the probe at full resolution: for each photo, the whole
//! SSIMULACRA2 score of a quality-Q WebP of the photo and of its 2x2-averaged half, and the CPU
//! time of each (encode, decode, score). `half_probe Q PHOTO...` (CSV on stdout).
mod common;
use common::cpu;
use image::{DynamicImage, RgbImage};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quality: f32 = args[1].parse().expect("a quality");
    println!("photo,full_score,half_score,full_ms,half_ms");
    for path in &args[2..] {
        let src = std::fs::read(path).expect("a photo");
        let (img, _) = recast_codec::decode(&src, u64::MAX).expect("decodes");
        let c0 = cpu();
        let full = probe(&img, quality);
        let c1 = cpu();
        let half = probe(&halve(&img.to_rgb8()), quality);
        let c2 = cpu();
        let name = std::path::Path::new(path)
            .file_name()
            .unwrap()
            .to_string_lossy();
        println!("{name},{full:.2},{half:.2},{},{}", c1 - c0, c2 - c1);
    }
}

fn probe(img: &DynamicImage, quality: f32) -> f64 {
    let options = recast_codec::EncodeOptions {
        quality,
        method: 4,
        max_pixels: u64::MAX,
    };
    let webp = recast_codec::encode_webp(img, &options).expect("encodes");
    let d = webp::Decoder::new(&webp).decode().expect("decodes");
    let decoded = DynamicImage::ImageRgb8(
        RgbImage::from_raw(d.width(), d.height(), d.to_vec()).expect("rgb"),
    );
    recast_codec::ssimulacra2_streamed(img, &decoded).expect("scored")
}

/// Each pixel the mean of a 2x2 block (in 8-bit sRGB, rounded).
pub fn halve(img: &RgbImage) -> DynamicImage {
    let (w, h) = (img.width() / 2, img.height() / 2);
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        let p = |dx, dy| img.get_pixel(2 * x + dx, 2 * y + dy).0;
        let (a, b, c, d) = (p(0, 0), p(1, 0), p(0, 1), p(1, 1));
        image::Rgb(std::array::from_fn(|i| {
            ((u16::from(a[i]) + u16::from(b[i]) + u16::from(c[i]) + u16::from(d[i]) + 2) / 4) as u8
        }))
    }))
}

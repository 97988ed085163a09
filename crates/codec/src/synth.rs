use std::io::Cursor;

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};

/// A photo-like JPEG (quality 90): a sky gradient with a sun, layered hills with texture, and sensor
/// grain, so that it compresses like a real photo rather than like a flat test pattern. The same
/// seed gives the same image.
pub fn synth_photo_jpeg(seed: u64, width: u32, height: u32) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let sky_top = [
        rng.f32() * 60.0 + 20.0,
        rng.f32() * 80.0 + 60.0,
        rng.f32() * 60.0 + 160.0,
    ];
    let sky_low = [
        rng.f32() * 80.0 + 170.0,
        rng.f32() * 70.0 + 150.0,
        rng.f32() * 60.0 + 140.0,
    ];
    let sun = (
        rng.f32() * width as f32,
        rng.f32() * height as f32 * 0.4,
        height as f32 * (0.04 + rng.f32() * 0.05),
    );
    let layers: Vec<([f32; 3], f32, f32, f32, f32)> = (0..3)
        .map(|i| {
            let base = 0.45 + 0.15 * i as f32 + rng.f32() * 0.05;
            let colour = [
                30.0 + rng.f32() * 60.0 + i as f32 * 10.0,
                60.0 + rng.f32() * 70.0,
                20.0 + rng.f32() * 40.0,
            ];
            (
                colour,
                base,
                rng.f32() * 0.08 + 0.02,
                rng.f32() * 6.0 + 2.0,
                rng.f32() * std::f32::consts::TAU,
            )
        })
        .collect();
    let (w, h) = (width as f32, height as f32);
    let img = RgbImage::from_fn(width, height, |x, y| {
        let (fx, fy) = (x as f32 / w, y as f32 / h);
        let mut px = [0f32; 3];
        for (c, p) in px.iter_mut().enumerate() {
            *p = sky_top[c] + (sky_low[c] - sky_top[c]) * fy;
        }
        let d = ((x as f32 - sun.0).powi(2) + (y as f32 - sun.1).powi(2)).sqrt();
        let glow =
            (1.0 - d / (sun.2 * 4.0)).max(0.0).powi(2) * 90.0 + if d < sun.2 { 120.0 } else { 0.0 };
        for p in &mut px {
            *p += glow;
        }
        for (colour, base, amp, freq, phase) in &layers {
            let ridge = base
                + amp * ((fx * freq + phase).sin() + 0.4 * (fx * freq * 3.7 + phase * 2.0).sin());
            if fy > ridge {
                let depth = (fy - ridge) * 2.0;
                let texture = ((fx * 900.0).sin() * (fy * 700.0 + fx * 300.0).cos()) * 14.0;
                for (c, p) in px.iter_mut().enumerate() {
                    *p = colour[c] * (1.0 - depth * 0.5) + texture;
                }
            }
        }
        let grain = (rng.f32() - 0.5) * 18.0;
        Rgb(px.map(|v| (v + grain).clamp(0.0, 255.0) as u8))
    });
    let mut out = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .expect("encoding RGB8 to memory cannot fail");
    out.into_inner()
}

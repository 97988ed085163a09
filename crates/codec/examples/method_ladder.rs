//! For each photo, each libwebp method and a ladder of qualities: bytes, whole score and the CPU
//! time of the encode and of the score. `method_ladder METHODS QUALITIES PHOTO...`, e.g.
//! `method_ladder 0,2,4 40,50,60,70,80,90 a.jpg b.jpg` (CSV on stdout).
mod common;
use common::cpu;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let methods: Vec<u8> = args[1]
        .split(',')
        .map(|m| m.parse().expect("method"))
        .collect();
    let qualities: Vec<f32> = args[2]
        .split(',')
        .map(|q| q.parse().expect("quality"))
        .collect();
    println!("photo,mp,method,quality,bytes,score,encode_ms,score_ms");
    for path in &args[3..] {
        let src = std::fs::read(path).expect("a photo");
        let (img, _) = recast_codec::decode(&src, u64::MAX).expect("decodes");
        let mp = f64::from(img.width()) * f64::from(img.height()) / 1e6;
        for &method in &methods {
            for &quality in &qualities {
                let options = recast_codec::EncodeOptions {
                    quality,
                    method,
                    max_pixels: u64::MAX,
                };
                let c0 = cpu();
                let webp = recast_codec::encode_webp(&img, &options).expect("encodes");
                let c1 = cpu();
                let d = webp::Decoder::new(&webp).decode().expect("decodes");
                let decoded = image::DynamicImage::ImageRgb8(
                    image::RgbImage::from_raw(d.width(), d.height(), d.to_vec()).expect("rgb"),
                );
                // The score's CPU time is the fastest of `SCORE_RUNS` (default 1) runs: the
                // least disturbed by other work on the machine.
                let mut score = 0.0;
                let mut score_ms = u64::MAX;
                for _ in 0..score_runs() {
                    let c = cpu();
                    score = recast_codec::ssimulacra2_streamed(&img, &decoded).expect("scored");
                    score_ms = score_ms.min(cpu() - c);
                }
                let name = std::path::Path::new(path)
                    .file_name()
                    .unwrap()
                    .to_string_lossy();
                println!(
                    "{name},{mp:.2},{method},{quality},{},{score:.2},{},{}",
                    webp.len(),
                    c1 - c0,
                    score_ms
                );
            }
        }
    }
}

fn score_runs() -> usize {
    std::env::var("SCORE_RUNS").map_or(1, |r| r.parse().expect("a number of runs"))
}

//! Scores one photo encoded at a quality on the whole image, with the `ssimulacra2` crate and
//! with recast's own implementation, and times both: `score_whole PHOTO QUALITY`.
mod common;
use common::cpu;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let src = std::fs::read(&args[1]).expect("a photo");
    let q: f32 = args[2].parse().expect("a quality");
    let (img, _) = recast_codec::decode(&src, u64::MAX).expect("decodes");
    let options = recast_codec::EncodeOptions {
        quality: q,
        ..Default::default()
    };
    let webp = recast_codec::encode_webp(&img, &options).expect("encodes");
    let d = webp::Decoder::new(&webp).decode().expect("decodes");
    assert!(!d.is_alpha());
    let decoded = image::DynamicImage::ImageRgb8(
        image::RgbImage::from_raw(d.width(), d.height(), d.to_vec()).expect("rgb"),
    );
    let c0 = cpu();
    let t = Instant::now();
    let ours = recast_codec::ssimulacra2_whole(&img, &decoded).expect("scored");
    let t_ours = t.elapsed();
    let cpu_ours = cpu() - c0;
    let c2 = cpu();
    let streamed = recast_codec::ssimulacra2_streamed(&img, &decoded).expect("scored");
    let cpu_streamed = cpu() - c2;
    let c3 = cpu();
    for _ in 0..10 {
        let _ = webp::Decoder::new(&webp).decode().expect("decodes");
    }
    let cpu_decode = (cpu() - c3) / 10;
    println!("streamed {streamed:.3} cpu {cpu_streamed} ms; webp decode {cpu_decode} ms");
    let c1 = cpu();
    let _again = recast_codec::encode_webp(&img, &options).expect("encodes");
    let cpu_encode = cpu() - c1;
    let t = Instant::now();
    if let Some(out) = args.get(3).filter(|a| a.ends_with(".webp")) {
        std::fs::write(out, &webp).expect("written");
    }
    let crate_score = if args.get(3).is_some_and(|a| a == "crate") {
        recast_codec::quality_score(&img, &webp, u64::MAX)
            .expect("scored")
            .expect("scored")
    } else {
        f64::NAN
    };
    println!("{} q{q}: ours {ours:.2} in {t_ours:?} cpu {cpu_ours} ms (encode {cpu_encode} ms), crate {crate_score:.2} in {:?}", args[1], t.elapsed());
}

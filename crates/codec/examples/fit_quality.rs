//! Data for fitting the per-photo quality's probe model (`predict.rs`): for each photo, its
//! whole SSIMULACRA2 score at a ladder of WebP qualities, one CSV line each.
//! `fit_quality PHOTO... > table.csv`; `scripts/fit-quality` fits the model on such a table.
use recast_codec::{decode, encode_webp, ssimulacra2_streamed, EncodeOptions};

const LADDER: [f32; 12] = [
    30.0, 40.0, 50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0, 90.0, 95.0,
];

fn main() {
    let header: Vec<String> = LADDER.iter().map(|q| format!("s{q}")).collect();
    println!("photo,mp,jpeg_quality,{}", header.join(","));
    for path in std::env::args().skip(1) {
        let input = std::fs::read(&path).expect("a photo");
        let (image, _) = decode(&input, u64::MAX).expect("decodes");
        let jpeg_quality = recast_codec::jpeg_quality(&input).unwrap_or(f64::NAN);
        let scores: Vec<String> = LADDER
            .iter()
            .map(|&quality| {
                let options = EncodeOptions {
                    quality,
                    ..EncodeOptions::default()
                };
                let webp = encode_webp(&image, &options).expect("encodes");
                // libwebp's decoder, as the search uses.
                let decoded = webp::Decoder::new(&webp).decode().expect("decodes");
                let decoded = image::DynamicImage::ImageRgb8(
                    image::RgbImage::from_raw(decoded.width(), decoded.height(), decoded.to_vec())
                        .expect("w x h"),
                );
                format!(
                    "{:.3}",
                    ssimulacra2_streamed(&image, &decoded).expect("scored")
                )
            })
            .collect();
        println!(
            "{},{:.3},{:.1},{}",
            std::path::Path::new(&path)
                .file_name()
                .unwrap()
                .to_string_lossy(),
            f64::from(image.width()) * f64::from(image.height()) / 1e6,
            jpeg_quality,
            scores.join(",")
        );
    }
}

//! The per-photo quality on each photo given: quality, whole score, encodes, bytes, CPU time;
//! writes the WebPs to OUT when given. `choose OUT PHOTO...` (a quick look without `recast bench`).
mod common;
use common::cpu;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let out = std::path::Path::new(&args[1]);
    let options = recast_codec::ConvertOptions::default();
    for path in &args[2..] {
        let input = std::fs::read(path).expect("a photo");
        let before = cpu();
        let conversion = recast_codec::convert(&input, &options).expect("converts");
        let ms = cpu() - before;
        match conversion {
            recast_codec::Conversion::Webp(c) => {
                let name = std::path::Path::new(path).with_extension("webp");
                std::fs::write(out.join(name.file_name().expect("a name")), &c.out.webp)
                    .expect("written");
                println!(
                    "{path} q{} score {:.2} encodes {} bytes {} cpu {ms} ms",
                    c.quality,
                    c.score.unwrap_or(f64::NAN),
                    c.tries,
                    c.out.webp.len()
                );
            }
            other => println!("{path} {other:?} cpu {ms} ms"),
        }
    }
}

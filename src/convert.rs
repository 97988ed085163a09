//! `recast convert IN OUT`: one photo through the same conversion as the workers, for an
//! operator choosing settings. Prints the outcome, sizes and quality figure on one line.

use anyhow::Context;
use recast_codec::{Conversion, ConvertOptions, EncodeOptions};

use crate::cli::{ConvertArgs, ConvertSettings};

impl ConvertSettings {
    /// The codec options these flags stand for.
    pub fn options(&self) -> ConvertOptions {
        ConvertOptions {
            encode: EncodeOptions {
                quality: self.quality,
                method: self.method,
                max_pixels: self.max_pixels,
            },
            max_quality: self.max_quality,
            keep_exif: self.keep_exif,
            ..ConvertOptions::default()
        }
        .with_target(self.target_score)
    }
}

pub async fn run(args: ConvertArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || convert_file(&args)).await?
}

fn convert_file(args: &ConvertArgs) -> anyhow::Result<()> {
    let input = std::fs::read(&args.input)
        .with_context(|| format!("failed to read {}", args.input.display()))?;
    let conversion = recast_codec::convert(&input, &args.settings.options())
        .with_context(|| format!("failed to convert {}", args.input.display()))?;
    match conversion {
        Conversion::Webp(c) => {
            std::fs::write(&args.output, &c.out.webp)
                .with_context(|| format!("failed to write {}", args.output.display()))?;
            let score = c
                .score
                .map_or_else(|| "not measured".to_string(), |s| format!("{s:.1}"));
            let frames = if c.source_frames > 1 {
                format!(" (first of {} frames)", c.source_frames)
            } else {
                String::new()
            };
            println!(
                "webp: {} {}x{}{frames} {} -> {} {} ({:.1}% of the source), quality {}, ssimulacra2 {score}, {} {}",
                c.out.source_format,
                c.out.width,
                c.out.height,
                crate::tables::bytes(input.len() as u64),
                args.output.display(),
                crate::tables::bytes(c.out.webp.len() as u64),
                100.0 * c.out.webp.len() as f64 / input.len() as f64,
                c.quality,
                c.tries,
                if c.tries == 1 { "encode" } else { "encodes" },
            );
        }
        Conversion::AlreadyWebp { width, height } => println!(
            "already webp: {width}x{height} {}, not re-encoded; {} not written",
            crate::tables::bytes(input.len() as u64),
            args.output.display()
        ),
        Conversion::Keep { reason, detail } => println!(
            "kept: {reason}: {detail}; {} not written",
            args.output.display()
        ),
    }
    Ok(())
}

//! The per-photo table of `recast bench --vs-cwebp`: what the per-photo quality chose for each
//! photo against a fixed-quality `cwebp`, its CPU time against one `cwebp` encode, and the
//! totals the per-photo quality is judged by.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use recast_codec::{CodecError, Conversion, ConvertOptions};

use crate::bench::Photo;
use crate::tables;

fn bytes(n: usize) -> String {
    tables::bytes(n as u64)
}

/// One photo's figures.
pub struct PhotoRow<'a> {
    pub name: String,
    pub megapixels: f64,
    /// The full conversion's outcome; `None` when it failed.
    pub conversion: Option<&'a Conversion>,
    pub cwebp_bytes: usize,
    /// CPU time of the full conversion (decode, quality search, encode) on one thread.
    pub cpu: Option<Duration>,
    /// CPU time of one `cwebp` process at the fixed quality (its decode included).
    pub cwebp_cpu: Option<Duration>,
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{}", d.as_millis()))
}

pub fn print_per_photo(rows: &[PhotoRow<'_>], options: &ConvertOptions) {
    println!(
        "per photo: target ssimulacra2 {}, max quality {}; cwebp at fixed quality {}",
        options.target_score, options.max_quality, options.encode.quality
    );
    println!(
        "{:<16} {:>5} {:>5} {:>7} {:>7} {:>11} {:>11} {:>7} {:>9} {:>9}",
        "photo", "MP", "q", "score", "encodes", "bytes", "cwebp q80", "ratio", "cpu ms", "cwebp ms"
    );
    let (mut ours, mut theirs, mut kept) = (0usize, 0usize, 0usize);
    let (mut cpu, mut cwebp_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut worst = f64::INFINITY;
    for r in rows {
        let (q, score, probes, size) = match r.conversion {
            Some(Conversion::Webp(c)) => (
                format!("{}", c.quality),
                c.score.map_or("-".into(), |s| format!("{s:.1}")),
                c.tries.to_string(),
                Some(c.out.webp.len()),
            ),
            Some(Conversion::Keep { reason, .. }) => {
                (format!("kept: {reason}"), "-".into(), "-".into(), None)
            }
            Some(Conversion::AlreadyWebp { .. }) => ("webp".into(), "-".into(), "-".into(), None),
            None => ("failed".into(), "-".into(), "-".into(), None),
        };
        if let Some(Conversion::Webp(c)) = r.conversion {
            worst = worst.min(c.score.unwrap_or(f64::INFINITY));
        }
        match size {
            Some(n) => {
                ours += n;
                theirs += r.cwebp_bytes;
            }
            None => kept += 1,
        }
        cpu += r.cpu.unwrap_or_default();
        cwebp_cpu += r.cwebp_cpu.unwrap_or_default();
        println!(
            "{:<16} {:>5.1} {:>5} {:>7} {:>7} {:>11} {:>11} {:>7} {:>9} {:>9}",
            r.name,
            r.megapixels,
            q,
            score,
            probes,
            size.map_or("-".into(), bytes),
            bytes(r.cwebp_bytes),
            size.map_or("-".into(), |n| format!(
                "{:.3}",
                n as f64 / r.cwebp_bytes as f64
            )),
            ms(r.cpu),
            ms(r.cwebp_cpu),
        );
    }
    println!(
        "totals: converted {} photos ({kept} kept), recast {} against cwebp q{} {} = {:.3}x bytes; \
         cpu recast {:.2} s against cwebp {:.2} s = {:.2}x per photo; worst score {worst:.1}",
        rows.len() - kept,
        bytes(ours),
        options.encode.quality,
        bytes(theirs),
        ours as f64 / theirs as f64,
        cpu.as_secs_f64(),
        cwebp_cpu.as_secs_f64(),
        cpu.as_secs_f64() / cwebp_cpu.as_secs_f64(),
    );
}

/// Writes each converted photo as DIR/NAME.webp (NAME: the photo's file name without its
/// extension); photos that kept their original are not written.
pub fn write_webps(
    dir: &Path,
    photos: &[Photo],
    converted: &[Result<Conversion, CodecError>],
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    for (p, c) in photos.iter().zip(converted) {
        if let Ok(Conversion::Webp(c)) = c {
            let out = dir.join(
                p.path
                    .with_extension("webp")
                    .file_name()
                    .context("a file name")?,
            );
            std::fs::write(&out, &c.out.webp)
                .with_context(|| format!("failed to write {}", out.display()))?;
        }
    }
    Ok(())
}

//! `recast bench DIR`: codec speed, size and quality on a folder of photos, on one thread and on
//! N, optionally beside `cwebp` at the same settings in the same run.
//!
//! Passes, each over every photo and each timed as a whole (wall clock), best of `--rounds`:
//! - *decode+encode*: the conversion with the quality guard off, the same work `cwebp` does;
//!   its WebP sizes are the ones compared with cwebp's;
//! - *convert*: the full conversion the workers run, quality guard (and its re-encodes) included;
//! - *cwebp*: one `cwebp` process per photo, N at a time.
//!
//! Quality figures are SSIMULACRA2 against the decoded source, measured after the timed passes
//! at the same settings for recast's and cwebp's output alike.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use recast_codec::{Conversion, ConvertOptions, KeepReason, DEFAULT_COMPARE_PIXELS};

use crate::bench_table::{print_per_photo, write_webps, PhotoRow};
use crate::cli::BenchArgs;

pub(crate) struct Photo {
    pub(crate) path: PathBuf,
    pub(crate) bytes: Vec<u8>,
    pub(crate) megapixels: f64,
}

/// Wall time of one pass at one thread count, and what each photo gave.
struct Pass<T> {
    timing: Timing,
    results: Vec<T>,
    /// CPU time of each photo (its thread's and its child processes'), on one thread only.
    cpu_each: Vec<Option<Duration>>,
}

/// Wall and CPU time of a pass. CPU time tells the threads' own cost apart from waiting for
/// cores that something else on the machine holds: if a photo costs the same CPU time on N
/// threads as on one, the N threads do not slow each other, and wall-clock scaling then
/// depends only on how many cores are free.
#[derive(Clone, Copy)]
struct Timing {
    wall: Duration,
    cpu: Option<Duration>,
}

impl Timing {
    const UNSET: Timing = Timing {
        wall: Duration::MAX,
        cpu: None,
    };

    fn best(self, other: Timing) -> Timing {
        Timing {
            wall: self.wall.min(other.wall),
            cpu: match (self.cpu, other.cpu) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

/// CPU time of this process and of its waited-for children (the cwebp processes), from
/// /proc/self/stat; `None` where that does not exist.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, then utime, stime, cutime, cstime are fields 14 to 17.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    // Linux reports these in USER_HZ, 100 per second on every architecture it exports them.
    Some(Duration::from_millis(ticks * 10))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || bench(&args)).await?
}

fn bench(args: &BenchArgs) -> anyhow::Result<()> {
    let photos = load(&args.dir)?;
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let megapixels: f64 = photos.iter().map(|p| p.megapixels).sum();
    let input_bytes: usize = photos.iter().map(|p| p.bytes.len()).sum();
    let options = args.settings.options();
    // Sizes are reported, not judged: every photo yields its WebP, so recast's and cwebp's
    // totals cover the same photos. The no-saving rule is counted separately below.
    let encode_only = ConvertOptions {
        check_quality: false,
        min_saving: f64::NEG_INFINITY,
        ..options
    };
    let guarded = ConvertOptions {
        min_saving: f64::NEG_INFINITY,
        ..options
    };
    println!(
        "recast bench {} — {} photos, {:.1} MP, {}, quality {}, method {}, 1 and {threads} threads, best of {} rounds",
        args.dir.display(),
        photos.len(),
        megapixels,
        crate::tables::bytes(input_bytes as u64),
        options.encode.quality,
        options.encode.method,
        args.rounds.max(1),
    );

    let encode = |p: &Photo| recast_codec::convert(&p.bytes, &encode_only);
    let convert = |p: &Photo| recast_codec::convert(&p.bytes, &guarded);
    let scratch = std::env::temp_dir().join(format!("recast-bench-{}", std::process::id()));
    if args.vs_cwebp {
        std::fs::create_dir_all(&scratch)?;
    }
    let run_cwebp = |p: &Photo| cwebp(&p.path, &scratch, &options);
    // Best wall time of each pass, on one thread [0] and on N [1]. The passes of one round run
    // back to back, recast's and cwebp's interleaved, so that whatever else the machine is doing
    // weighs on both alike, and the best of several rounds is the least disturbed.
    let (mut enc, mut conv, mut theirs) =
        ([Timing::UNSET; 2], [Timing::UNSET; 2], [Timing::UNSET; 2]);
    let (mut encoded, mut converted, mut cwebp_out) = (None, None, None);
    // CPU time of each photo in the first one-thread pass of convert and cwebp.
    let (mut conv_cpu, mut cwebp_cpu) = (None, None);
    for _ in 0..args.rounds.max(1) {
        for (slot, n) in [(0, 1), (1, threads)] {
            let pass = run_pass(&photos, n, encode);
            enc[slot] = enc[slot].best(pass.timing);
            encoded.get_or_insert(pass.results);
            if args.vs_cwebp {
                let pass = run_pass(&photos, n, run_cwebp);
                theirs[slot] = theirs[slot].best(pass.timing);
                if n == 1 {
                    cwebp_cpu.get_or_insert(pass.cpu_each);
                }
                cwebp_out.get_or_insert(pass.results);
            }
            let pass = run_pass(&photos, n, convert);
            conv[slot] = conv[slot].best(pass.timing);
            if n == 1 {
                conv_cpu.get_or_insert(pass.cpu_each);
            }
            converted.get_or_insert(pass.results);
        }
    }
    if args.vs_cwebp {
        std::fs::remove_dir_all(&scratch).ok();
    }
    let ours: Vec<Vec<u8>> = encoded
        .expect("at least one round")
        .into_iter()
        .zip(&photos)
        .map(|(r, p)| webp_of(r, &p.path))
        .collect::<anyhow::Result<_>>()?;
    let converted = converted.expect("at least one round");
    let cwebp = match cwebp_out {
        Some(outputs) => Some((
            theirs,
            outputs.into_iter().collect::<anyhow::Result<Vec<_>>>()?,
        )),
        None => None,
    };

    let rate = |d: Duration| megapixels / d.as_secs_f64();
    let per_cpu = |t: Timing| t.cpu.map_or("-".to_string(), |c| format!("{:.2}", rate(c)));
    let row = |name: &str, [one, many]: [Timing; 2]| {
        println!(
            "{name:<22} {:>7.2} MP/s {:>12.2} MP/s {:>9.2}x {:>12} {:>8}",
            rate(one.wall),
            rate(many.wall),
            one.wall.as_secs_f64() / many.wall.as_secs_f64(),
            per_cpu(one),
            per_cpu(many),
        );
    };
    println!(
        "{:<22} {:>12} {:>17} {:>10} {:>21}",
        "",
        "1 thread",
        format!("{threads} threads"),
        "scaling",
        "MP per CPU-s: 1 / N"
    );
    row("recast decode+encode", enc);
    row("recast convert", conv);
    if let Some((cw, _)) = &cwebp {
        row("cwebp", *cw);
        let ratio = |ours: [Timing; 2]| {
            format!(
                "{:>10.2}x {:>16.2}x",
                cw[0].wall.as_secs_f64() / ours[0].wall.as_secs_f64(),
                cw[1].wall.as_secs_f64() / ours[1].wall.as_secs_f64()
            )
        };
        println!("{:<22} {}", "decode+encode / cwebp", ratio(enc));
        println!("{:<22} {}", "convert / cwebp", ratio(conv));
    }

    let our_bytes: usize = ours.iter().map(Vec::len).sum();
    print!(
        "bytes                  in {}, recast {} ({:.3} of in)",
        crate::tables::bytes(input_bytes as u64),
        crate::tables::bytes(our_bytes as u64),
        our_bytes as f64 / input_bytes as f64
    );
    if let Some((_, outputs)) = &cwebp {
        let theirs: usize = outputs.iter().map(Vec::len).sum();
        print!(
            ", cwebp {} ({:.3} of in), recast/cwebp {:.3}",
            crate::tables::bytes(theirs as u64),
            theirs as f64 / input_bytes as f64,
            our_bytes as f64 / theirs as f64
        );
    }
    println!();

    let scores = |outputs: &[Vec<u8>]| -> anyhow::Result<Vec<f64>> {
        let mut scores = Vec::new();
        for (p, webp) in photos.iter().zip(outputs) {
            let (image, _) = recast_codec::decode(&p.bytes, options.encode.max_pixels)?;
            let score = recast_codec::quality_score(&image, webp, DEFAULT_COMPARE_PIXELS)
                .with_context(|| format!("failed to score {}", p.path.display()))?;
            scores.extend(score);
        }
        Ok(scores)
    };
    print!(
        "ssimulacra2 at q{}      recast {}",
        options.encode.quality,
        summary(&scores(&ours)?)
    );
    if let Some((_, outputs)) = &cwebp {
        print!(", cwebp {}", summary(&scores(outputs)?));
    }
    println!();
    println!("{}", outcomes(&converted, &photos, &ours, &options));
    if let (Some((_, outputs)), Some(ours_cpu), Some(their_cpu)) = (&cwebp, conv_cpu, cwebp_cpu) {
        let rows: Vec<PhotoRow> = photos
            .iter()
            .zip(&converted)
            .zip(outputs)
            .zip(ours_cpu.iter().zip(&their_cpu))
            .map(|(((p, c), theirs), (ours_cpu, their_cpu))| PhotoRow {
                name: p
                    .path
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into()),
                megapixels: p.megapixels,
                conversion: c.as_ref().ok(),
                cwebp_bytes: theirs.len(),
                cpu: *ours_cpu,
                cwebp_cpu: *their_cpu,
            })
            .collect();
        print_per_photo(&rows, &options);
    }
    if let Some(dir) = &args.write_webps {
        write_webps(dir, &photos, &converted)?;
    }
    Ok(())
}

fn load(dir: &Path) -> anyhow::Result<Vec<Photo>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to read {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.retain(|p| p.is_file());
    paths.sort();
    let mut photos = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path)?;
        // Only photos are benchmarked; anything else in the folder is named and skipped.
        match recast_codec::probe(&bytes) {
            Ok(info) => photos.push(Photo {
                megapixels: f64::from(info.width) * f64::from(info.height) / 1e6,
                path,
                bytes,
            }),
            Err(e) => eprintln!("skipping {}: {e}", path.display()),
        }
    }
    if photos.is_empty() {
        bail!("no photos in {}", dir.display());
    }
    Ok(photos)
}

/// One photo's result and, on one thread, its CPU time; `None` until a thread has taken it.
type Slot<T> = Option<(T, Option<Duration>)>;

/// Runs `work` over every photo on `threads` threads, each taking the next photo not yet taken.
fn run_pass<T: Send>(
    photos: &[Photo],
    threads: usize,
    work: impl Fn(&Photo) -> T + Sync,
) -> Pass<T> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Slot<T>>> = Mutex::new((0..photos.len()).map(|_| None).collect());
    let (started, cpu_before) = (Instant::now(), cpu_time());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(photo) = photos.get(i) else { break };
                // On one thread the process's CPU time is this photo's alone.
                let before = if threads <= 1 { cpu_time() } else { None };
                let out = work(photo);
                let cpu = before.zip(cpu_time()).map(|(b, a)| a - b);
                results.lock().expect("no thread panics holding it")[i] = Some((out, cpu));
            });
        }
    });
    let timing = Timing {
        wall: started.elapsed(),
        cpu: cpu_time()
            .zip(cpu_before)
            .map(|(after, before)| after - before),
    };
    let (results, cpu_each) = results
        .into_inner()
        .expect("no thread panicked")
        .into_iter()
        .map(|r| r.expect("every photo was taken"))
        .unzip();
    Pass {
        timing,
        results,
        cpu_each,
    }
}

fn webp_of(
    result: Result<Conversion, recast_codec::CodecError>,
    path: &Path,
) -> anyhow::Result<Vec<u8>> {
    match result.with_context(|| format!("failed to convert {}", path.display()))? {
        Conversion::Webp(c) => Ok(c.out.webp),
        other => bail!("{} gave no WebP: {other:?}", path.display()),
    }
}

/// One `cwebp` at the same quality, method and metadata handling as recast (ICC always, EXIF
/// only when kept; cwebp cannot drop GPS from it, so `--keep-exif` compares slightly unequal
/// metadata).
fn cwebp(input: &Path, scratch: &Path, options: &ConvertOptions) -> anyhow::Result<Vec<u8>> {
    let name = input.file_name().context("a file has a name")?;
    let output = scratch.join(name).with_extension("webp");
    let metadata = if options.keep_exif { "icc,exif" } else { "icc" };
    let status = Command::new("cwebp")
        .args(["-quiet", "-metadata", metadata, "-q"])
        .arg(options.encode.quality.to_string())
        .arg("-m")
        .arg(options.encode.method.to_string())
        .arg(input)
        .arg("-o")
        .arg(&output)
        .status()
        .context("failed to run cwebp (Debian package `webp`)")?;
    if !status.success() {
        bail!("cwebp failed on {}: {status}", input.display());
    }
    Ok(std::fs::read(&output)?)
}

fn summary(scores: &[f64]) -> String {
    if scores.is_empty() {
        return "not measured".into();
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    let worst = scores.iter().copied().fold(f64::INFINITY, f64::min);
    format!("mean {mean:.1} worst {worst:.1}")
}

/// What the full conversion decided, counting the no-saving rule on the decode+encode sizes.
fn outcomes(
    converted: &[Result<Conversion, recast_codec::CodecError>],
    photos: &[Photo],
    webps: &[Vec<u8>],
    options: &ConvertOptions,
) -> String {
    let (mut first_try, mut reencoded, mut kept_quality, mut failed) = (0, 0, 0, 0);
    for r in converted {
        match r {
            Ok(Conversion::Webp(c)) if c.tries == 1 => first_try += 1,
            Ok(Conversion::Webp(_)) => reencoded += 1,
            Ok(Conversion::Keep {
                reason: KeepReason::Quality,
                ..
            }) => kept_quality += 1,
            Ok(_) => {}
            Err(_) => failed += 1,
        }
    }
    let no_saving = photos
        .iter()
        .zip(webps)
        .filter(|(p, w)| w.len() as f64 > p.bytes.len() as f64 * (1.0 - options.min_saving))
        .count();
    format!(
        "outcomes (convert)     {first_try} webp at the first try, {reencoded} encoded more than once, \
         {kept_quality} kept: quality, {failed} failed; {no_saving} would be kept: no saving"
    )
}

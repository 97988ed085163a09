//! Command-line interface: every flag also reads from `RECAST_<FLAG>`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use recast_core::OriginalsPolicy;

use crate::flags::parse_originals;
pub use crate::flags::{
    BudgetArgs, ConvertSettings, DbArg, FleetArgs, RunSettingsArgs, SpotWatch, WorkTuning,
};

/// Exit codes, documented in the README.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// The command failed; stderr says why.
    pub const FAILED: u8 = 1;
    /// `verify` found violations (it lists them on stdout).
    pub const VIOLATIONS: u8 = 3;
}

#[derive(Debug, Parser)]
#[command(
    name = "recast",
    version,
    about = "Idempotent bulk migration of photo stores to WebP"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(
        long,
        global = true,
        env = "RECAST_LOG_FORMAT",
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Show couple and photo ids in logs in clear (default: salted hashes; salt from RECAST_LOG_SALT).
    #[arg(long, global = true, env = "RECAST_LOG_IDS_IN_CLEAR")]
    pub log_ids_in_clear: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fill a store with demo couples' photos and thumbnails (and import it with --db).
    Seed(SeedArgs),
    /// Create (or resume) a run and enqueue every couple not yet enqueued.
    Launch(LaunchArgs),
    /// Run a worker: receive jobs and migrate their photos.
    Work(Box<WorkArgs>),
    /// Show where a run stands.
    Status(StatusArgs),
    /// Seed, launch and work on embedded backends in one process, then print a summary.
    Demo(DemoArgs),
    /// Create an SQS queue with its dead-letter queue, or show a queue's counts.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Convert one photo as a worker would, and say what happened (outcome, sizes, quality).
    Convert(ConvertArgs),
    /// Codec speed, size and quality on a folder of photos, optionally against cwebp.
    Bench(BenchArgs),
    /// The conversion ceiling of a run: convert exactly the photos it converted, with its
    /// settings, on N threads, and nothing else; prints photos/s (writes nothing).
    Ceiling(CeilingArgs),
    /// Dry run: predict a run's result, requests, duration, cost and binding limit from the
    /// catalog and a sample of its photos; writes nothing.
    Plan(PlanArgs),
    /// The result and cost tables of a run and an HTML page of charts, from what was recorded.
    Report(ReportArgs),
    /// Audit a run against the store; list each violation and exit 3 if there is any.
    Verify(VerifyArgs),
    /// Answer legacy thumbnail and original URLs (and /v1/KEY?w=) from the WebPs, resized on
    /// demand; no database.
    Serve(ServeArgs),
    /// Fill the catalog from what you have: an S3 Inventory report, a live listing of the store,
    /// or the app's own manifest, through key patterns.
    Import(ImportArgs),
    /// The completion report of a run: one row per photo with its outcome and new key.
    Export(ExportArgs),
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Create an SQS queue NAME and its dead-letter queue NAME-dlq with a redrive policy; print the URL.
    Create {
        name: String,
        /// Receives of one message before SQS moves it to the dead-letter queue.
        #[arg(long, default_value_t = 5)]
        max_receives: u32,
        /// The queue's default visibility timeout.
        #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
        visibility_timeout: Duration,
    },
    /// Show a queue's visible, in-flight and dead-letter counts.
    Stats {
        /// Queue URL (SQS or sqlite://).
        url: String,
    },
}

#[derive(Debug, Args)]
pub struct SeedArgs {
    /// Catalog to import the seeded store into (the same import as `recast import --from STORE`);
    /// without it, seed writes the store only and prints the import command.
    #[arg(long, env = "RECAST_DB")]
    pub db: Option<String>,
    /// Object store URL: s3://BUCKET/PREFIX or file:///DIR.
    #[arg(long, env = "RECAST_STORE")]
    pub store: String,
    /// Folder of photos to copy (cycling); without it, photo-like images are generated.
    #[arg(long, env = "RECAST_PHOTOS")]
    pub photos: Option<PathBuf>,
    /// Couples to add.
    #[arg(long, env = "RECAST_COUPLES", default_value_t = 50)]
    pub couples: u32,
    /// Fewest photos one couple owns.
    #[arg(long, env = "RECAST_MIN_PHOTOS", default_value_t = 1)]
    pub min_photos: u32,
    /// Most photos one couple owns (each owns min..=max).
    #[arg(long, env = "RECAST_MAX_PHOTOS", default_value_t = 6)]
    pub max_photos: u32,
    /// Thumbnails per photo (1..=6).
    #[arg(long, env = "RECAST_THUMBS", default_value_t = 5, value_parser = clap::value_parser!(u32).range(0..=6))]
    pub thumbs: u32,
}

#[derive(Debug, Args)]
pub struct LaunchArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Queue URL: an SQS queue URL, or sqlite://PATH[?in_flight_cap=N&max_receives=N].
    #[arg(long, env = "RECAST_QUEUE")]
    pub queue: String,
    /// Run name; an existing run is resumed with its frozen settings.
    #[arg(long, env = "RECAST_RUN", default_value = "main")]
    pub run: String,
    #[command(flatten)]
    pub settings: RunSettingsArgs,
    /// Send again every couple of the run that is not complete (messages lost to a purge, the
    /// queue's retention or a wrong queue); safe, since jobs are idempotent.
    #[arg(long, env = "RECAST_REQUEUE")]
    pub requeue: bool,
}

#[derive(Debug, Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Object store URL: s3://BUCKET/PREFIX or file:///DIR.
    #[arg(long, env = "RECAST_STORE")]
    pub store: String,
    /// Queue URL: an SQS queue URL, or sqlite://PATH.
    #[arg(long, env = "RECAST_QUEUE")]
    pub queue: String,
    #[command(flatten)]
    pub tuning: WorkTuning,
    /// Exit once the queue has nothing visible or in flight.
    #[arg(long, env = "RECAST_EXIT_WHEN_IDLE")]
    pub exit_when_idle: bool,
    /// Name of this worker in the records (default: host and process id).
    #[arg(long, env = "RECAST_WORKER_NAME")]
    pub worker_name: Option<String>,
    #[command(flatten)]
    pub fleet: FleetArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Run name (default: the most recent run).
    #[arg(long, env = "RECAST_RUN")]
    pub run: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long, conflicts_with = "watch")]
    pub json: bool,
    /// Redraw every --interval with rates and an ETA, until the run is complete.
    #[arg(long)]
    pub watch: bool,
    /// Time between two redraws of --watch.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Count by a full scan of photos, thumbnails and progress instead of reading the counters
    /// (slow on a big catalog), and repair the counters if they differ.
    #[arg(long, conflicts_with = "watch")]
    pub recount: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Object store URL of the photos: s3://BUCKET/PREFIX or file:///DIR (only read).
    #[arg(long, env = "RECAST_STORE")]
    pub store: String,
    /// Photos fetched and converted to measure the WebP/original ratio and the CPU cost.
    #[arg(long, default_value_t = 64)]
    pub sample: u32,
    /// Seed of the random sample, to repeat a plan on the same photos (default: a new one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker processes, one per instance.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// EC2 instance type of each worker (vCPUs and spot price from the price table); default:
    /// this machine's cores, priced as c6i.large.
    #[arg(long)]
    pub instance_type: Option<String>,
    /// JSON price file laid over the default prices (see docs/report.md).
    #[arg(long, env = "RECAST_PRICES")]
    pub prices: Option<PathBuf>,
    /// Couples in hand per worker (messages in flight), as the workers will be given
    /// (--concurrency).
    #[arg(long, default_value_t = recast_worker::DEFAULT_CONCURRENCY as u32)]
    pub concurrency: u32,
    /// Photos per progress record, as the workers will be given (--record-batch).
    #[arg(long, default_value_t = recast_worker::DEFAULT_RECORD_BATCH as u32)]
    pub record_batch: u32,
    /// Database statements per second the catalog sustains (an assumption; see docs/report.md).
    #[arg(long, default_value_t = recast_core::DEFAULT_DB_STATEMENTS_PER_SECOND)]
    pub db_statements_per_sec: f64,
    /// The run whose stored fleet budgets are the default of the four budget flags.
    #[arg(long = "run", env = "RECAST_RUN", default_value = "main")]
    pub run: String,
    #[command(flatten)]
    pub budgets: BudgetArgs,
    #[command(flatten)]
    pub settings: RunSettingsArgs,
    /// Print JSON instead of tables.
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print Markdown tables.
    #[arg(long)]
    pub markdown: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Run name (default: the most recent run).
    #[arg(long, env = "RECAST_RUN")]
    pub run: Option<String>,
    /// Folder to write index.html, report.md and report.json into (created if absent).
    #[arg(long)]
    pub out: PathBuf,
    /// JSON price file laid over the default prices (see docs/report.md).
    #[arg(long, env = "RECAST_PRICES")]
    pub prices: Option<PathBuf>,
    /// EC2 instance type the workers ran on, for their price (the catalog does not record it).
    #[arg(long, default_value = "c6i.large")]
    pub instance_type: String,
    /// Width of the charts' time buckets (default: from the run's length, 1 s to 6 h).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub bucket: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Object store URL: s3://BUCKET/PREFIX or file:///DIR (only read).
    #[arg(long, env = "RECAST_STORE")]
    pub store: String,
    /// Run name (default: the most recent run).
    #[arg(long, env = "RECAST_RUN")]
    pub run: Option<String>,
    /// Audit this many photos picked at random instead of every photo.
    #[arg(long)]
    pub sample: Option<u32>,
    /// Seed of --sample (default: a new one, printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// WebPs decoded, at most (the first ones audited); the others are checked by size and CRC32C.
    #[arg(long, default_value_t = 16)]
    pub decode: u32,
    /// Store requests in flight at once.
    #[arg(long, default_value_t = 16)]
    pub parallelism: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Folder for the embedded catalog, queue and store (its previous demo files are replaced).
    #[arg(long, env = "RECAST_DEMO_DIR", default_value = "recast-demo")]
    pub dir: PathBuf,
    /// Folder of photos to migrate (cycling); without it, photo-like images are generated.
    #[arg(long, env = "RECAST_PHOTOS")]
    pub photos: Option<PathBuf>,
    #[arg(long, env = "RECAST_COUPLES", default_value_t = 50)]
    pub couples: u32,
    /// Workers, all in this process, sharing one CPU pool.
    #[arg(long, env = "RECAST_WORKERS", default_value_t = 2)]
    pub workers: usize,
    #[arg(long, env = "RECAST_MAX_PHOTOS", default_value_t = 6)]
    pub max_photos: u32,
    #[arg(long, env = "RECAST_THUMBS", default_value_t = 5)]
    pub thumbs: u32,
    #[arg(long, env = "RECAST_ORIGINALS", default_value = "keep", value_parser = parse_originals)]
    pub originals: OriginalsPolicy,
    #[arg(long, env = "RECAST_QUALITY", default_value_t = 80.0)]
    pub quality: f32,
    /// Per-photo quality, as `launch --target-score`: each photo at the lowest quality whose
    /// SSIMULACRA2 score reaches this (the plan, the run and the ceiling all use it).
    #[arg(long, env = "RECAST_TARGET_SCORE")]
    pub target_score: Option<f64>,
    /// Side of generated photos, when --photos is not given (width; height is 3/4 of it).
    #[arg(long, env = "RECAST_SYNTH_WIDTH", default_value_t = recast_ops::seed::DEFAULT_SYNTH_WIDTH)]
    pub synth_width: u32,
    /// Run `plan` on the seeded catalog first, and print predicted against measured at the end.
    #[arg(long)]
    pub plan: bool,
    /// Photos of the plan's sample.
    #[arg(long, default_value_t = 64)]
    pub plan_sample: u32,
}

#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The photo to convert.
    pub input: PathBuf,
    /// Where to write the WebP (not written when the original is kept).
    pub output: PathBuf,
    #[command(flatten)]
    pub settings: ConvertSettings,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Folder of photos (every file in it that is an image).
    pub dir: PathBuf,
    /// Threads of the multi-threaded passes (default: the cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Also run cwebp on the same photos at the same settings and print the ratios.
    #[arg(long)]
    pub vs_cwebp: bool,
    /// Rounds of every pass; the best time of each is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    /// Write each photo's converted WebP here (NAME.webp), for an independent quality check
    /// (scripts/check-ssimulacra2).
    #[arg(long)]
    pub write_webps: Option<PathBuf>,
    #[command(flatten)]
    pub settings: ConvertSettings,
}

#[derive(Debug, Args)]
pub struct CeilingArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Object store URL of the run's originals: s3://BUCKET/PREFIX or file:///DIR (only read).
    #[arg(long, env = "RECAST_STORE")]
    pub store: String,
    /// Run name (default: the most recent run).
    #[arg(long, env = "RECAST_RUN")]
    pub run: Option<String>,
    /// Threads of the conversion (default: the cores), as `work --cpu-threads`.
    #[arg(long, env = "RECAST_CPU_THREADS")]
    pub cpu_threads: Option<usize>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match cli.command {
        Command::Demo(_) => crate::logging::QUIET_FILTER,
        _ => crate::logging::DEFAULT_FILTER,
    };
    crate::logging::init(cli.log_format, filter);
    recast_worker::set_log_ids_in_clear(cli.log_ids_in_clear);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let result = runtime.block_on(async {
        match cli.command {
            Command::Seed(a) => crate::seed::run(a).await,
            Command::Launch(a) => crate::launch::run(a).await,
            Command::Work(a) => crate::work::run(*a).await,
            Command::Status(a) => crate::status::run(a).await,
            Command::Demo(a) => crate::demo::run(a).await,
            Command::Queue(c) => crate::queue::run(c).await,
            Command::Convert(a) => crate::convert::run(a).await,
            Command::Bench(a) => crate::bench::run(a).await,
            Command::Ceiling(a) => crate::ceiling::run(a).await,
            Command::Plan(a) => crate::plan::run(a).await,
            Command::Report(a) => crate::report::run(a).await,
            Command::Verify(a) => crate::verify::run(a).await,
            Command::Serve(a) => crate::serve::run(a).await,
            Command::Import(a) => crate::import::run(a).await,
            Command::Export(a) => crate::export::run(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e)
            if e.downcast_ref::<recast_ops::verify::ViolationsFound>()
                .is_some() =>
        {
            eprintln!("recast: {e}");
            ExitCode::from(exit::VIOLATIONS)
        }
        Err(e) => {
            eprintln!("recast: error: {}", one_line(&e));
            ExitCode::from(exit::FAILED)
        }
    }
}

/// The error and its causes on one line, each cause once: an error whose message already
/// quotes its source (`database query failed: {0}`) would otherwise print it again and again.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if line.contains(&msg) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&msg);
    }
    line
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("database query failed: {0}")]
    struct Quoting(#[from] std::io::Error);

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::other("terminating connection");
        let e = anyhow::Error::from(Quoting(io)).context("failed to launch");
        assert_eq!(
            super::one_line(&e),
            "failed to launch: database query failed: terminating connection"
        );
        let plain = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(super::one_line(&plain), "top: middle: root");
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Object store URL: s3://BUCKET/PREFIX or file:///DIR.
    #[arg(long, env = "RECAST_STORE")]
    pub store: String,
    /// Address to listen on (port 0: a free port, printed on stdout).
    #[arg(long, env = "RECAST_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: String,
    /// Key pattern of the originals ({couple}, {photo}).
    #[arg(
        long,
        env = "RECAST_ORIGINAL",
        default_value = DEFAULT_ORIGINAL_PATTERN
    )]
    pub original: String,
    /// Key pattern of the legacy thumbnails ({couple}, {photo}, {size}).
    #[arg(
        long,
        env = "RECAST_THUMBNAIL",
        default_value = DEFAULT_THUMBNAIL_PATTERN
    )]
    pub thumbnail: String,
    /// Named legacy sizes, NAME=PIXELS,... (longest side); numeric sizes need no entry.
    #[arg(long, env = "RECAST_SIZES")]
    pub sizes: Option<String>,
    /// Widest (and tallest) answer a request may ask for.
    #[arg(long, env = "RECAST_MAX_WIDTH", default_value_t = recast_serve::DEFAULT_MAX_WIDTH)]
    pub max_width: u32,
    /// Largest source decoded, in pixels (memory bound per request).
    #[arg(long, env = "RECAST_MAX_PIXELS", default_value_t = recast_codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Renders at once (default: one per core).
    #[arg(long, env = "RECAST_CPU_THREADS")]
    pub cpu_threads: Option<usize>,
    /// Renders that may wait for a CPU slot; past that, 503 with Retry-After.
    #[arg(long, env = "RECAST_CPU_QUEUE", default_value_t = recast_serve::DEFAULT_CPU_QUEUE)]
    pub cpu_queue: usize,
    /// JPEG quality of answers (1-100).
    #[arg(long, env = "RECAST_JPEG_QUALITY", default_value_t = 80)]
    pub jpeg_quality: u8,
    /// WebP quality of answers (0-100).
    #[arg(long, env = "RECAST_WEBP_QUALITY", default_value_t = 80.0)]
    pub webp_quality: f32,
    /// Decode a kept JPEG original of at least this many pixels by its DCT at 1/2, 1/4 or 1/8
    /// when the answer is that small; smaller ones are decoded whole, which is cheaper for them
    /// (see the README's "Serving thumbnails"). 0: always; above --max-pixels: never.
    #[arg(long, env = "RECAST_DCT_MIN_PIXELS", default_value_t = recast_serve::DEFAULT_DCT_MIN_PIXELS)]
    pub dct_min_pixels: u64,
}

/// Where a store keeps its photos (shared by `import`, `seed` and `serve`).
pub const DEFAULT_ORIGINAL_PATTERN: &str = "photos/{couple}/{photo}.jpg";
pub const DEFAULT_THUMBNAIL_PATTERN: &str = "thumbs/{couple}/{photo}_{size}.jpg";

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// What to read: s3://BUCKET/.../manifest.json (an S3 Inventory report; file:// also works),
    /// s3://BUCKET/PREFIX or file:///DIR (a live listing), csv:PATH or csv:- (the app's manifest
    /// with columns couple,photo,key,role[,bytes]).
    #[arg(long, env = "RECAST_FROM")]
    pub from: String,
    /// Key pattern of originals ({couple}, {photo}); repeat for several (e.g. one per extension).
    #[arg(long, default_values_t = [DEFAULT_ORIGINAL_PATTERN.to_owned()])]
    pub original: Vec<String>,
    /// Key pattern of thumbnails ({couple}, {photo}, {size}); repeat for several.
    #[arg(long, default_values_t = [DEFAULT_THUMBNAIL_PATTERN.to_owned()])]
    pub thumbnail: Vec<String>,
    /// Read and classify everything; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// ListObjectsV2 requests in flight at once for a live listing of S3 (key ranges cut at the
    /// patterns' prefixes, listed concurrently); 1 lists the bucket as one stream.
    #[arg(long, default_value_t = recast_ops::import::DEFAULT_LISTING_STREAMS)]
    pub listing_streams: usize,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// The run (default: the most recent).
    #[arg(long)]
    pub run: Option<String>,
    /// FILE.csv, FILE.jsonl (either with .gz) or s3://BUCKET/KEY.csv[.gz].
    #[arg(long)]
    pub out: String,
    /// Only photos in these states (pending, switched, thumbs_gone, done, failed).
    #[arg(long, value_delimiter = ',')]
    pub state: Vec<String>,
    /// Only photos after this photo id: the `last photo id` a previous export printed.
    #[arg(long, default_value_t = 0)]
    pub after: i64,
}

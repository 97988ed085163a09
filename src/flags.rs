//! Flag groups shared by several verbs, flattened into their argument structs (`cli.rs`): the
//! catalog's URL, the run's frozen settings, the fleet and its budgets, a worker's tuning, the
//! codec's settings. One struct per group, and one constant per default where the default lives
//! in a library crate.

use std::time::Duration;

use clap::{Args, ValueEnum};
use recast_core::OriginalsPolicy;

#[derive(Debug, Args)]
pub struct DbArg {
    /// Catalog database URL: sqlite://PATH or postgres://USER@HOST/DB (a password is better given
    /// in PGPASSWORD or ~/.pgpass than in the URL).
    #[arg(long, env = "RECAST_DB")]
    pub db: String,
    /// Database connections of this process (PostgreSQL).
    #[arg(long, env = "RECAST_DB_POOL", default_value_t = recast_catalog::DEFAULT_POOL_SIZE)]
    pub db_pool: u32,
}

impl DbArg {
    pub async fn open(&self) -> anyhow::Result<std::sync::Arc<dyn recast_catalog::Catalog>> {
        use anyhow::Context;
        recast_catalog::open_with(&self.db, self.db_pool)
            .await
            .context("failed to open the catalog")
    }

    /// The catalog opened so that nothing can be written to it (for status, plan, report, verify
    /// and export): a [`recast_catalog::CatalogRead`], whose methods only read.
    pub async fn open_read_only(
        &self,
    ) -> anyhow::Result<std::sync::Arc<dyn recast_catalog::CatalogRead>> {
        use anyhow::Context;
        recast_catalog::open_read_only(&self.db)
            .await
            .context("failed to open the catalog read-only")
    }
}

/// The settings a run is created with (launch) or planned with (plan).
#[derive(Debug, Args, Clone)]
pub struct RunSettingsArgs {
    /// What to do with originals once their WebP is in and their thumbnails gone.
    #[arg(long, env = "RECAST_ORIGINALS", default_value = "keep", value_parser = parse_originals)]
    pub originals: OriginalsPolicy,
    /// WebP quality (0-100) of every photo; with --target-score, of images too small to score.
    #[arg(long, env = "RECAST_QUALITY", default_value_t = 80.0)]
    pub quality: f32,
    /// libwebp method (0 fastest .. 6 smallest).
    #[arg(long, env = "RECAST_METHOD", default_value_t = 4)]
    pub method: u8,
    /// Per-photo quality: the SSIMULACRA2 score every WebP must reach, each photo getting the
    /// lowest quality reaching it (90 visually lossless, 70 high quality, 50 medium). It costs
    /// several encodes and whole-photo scores per photo (see docs/codec.md); without it every
    /// photo is encoded at --quality.
    #[arg(long, env = "RECAST_TARGET_SCORE")]
    pub target_score: Option<f64>,
    /// Highest WebP quality tried; a photo that misses the target even there keeps its original.
    #[arg(long, env = "RECAST_MAX_QUALITY", default_value_t = recast_core::DEFAULT_MAX_QUALITY)]
    pub max_quality: f32,
    /// Carry EXIF into the WebPs (GPS data and the orientation tag are always removed).
    #[arg(long, env = "RECAST_KEEP_EXIF")]
    pub keep_exif: bool,
}

impl RunSettingsArgs {
    pub fn settings(&self) -> Result<recast_core::RunSettings, recast_core::SettingsError> {
        let s = recast_core::RunSettings {
            quality: self.quality,
            method: self.method,
            originals: self.originals,
            target_score: self.target_score,
            max_quality: self.max_quality,
            keep_exif: self.keep_exif,
        };
        s.validate()?;
        Ok(s)
    }
}

pub(crate) fn parse_originals(s: &str) -> Result<OriginalsPolicy, String> {
    s.parse()
        .map_err(|e: recast_core::SettingsError| e.to_string())
}

/// How a worker takes part in its fleet: budgets, heartbeats, drains and metrics.
#[derive(Debug, Args, Clone)]
pub struct FleetArgs {
    /// The run whose fleet this worker joins (its registry and budgets).
    #[arg(long = "run", env = "RECAST_RUN", default_value = "main")]
    pub run: String,
    #[command(flatten)]
    pub budgets: BudgetArgs,
    /// Heartbeat period in the fleet registry; a worker silent for three counts as gone.
    #[arg(long, env = "RECAST_HEARTBEAT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// p95 database latency above which the worker runs fewer jobs at once.
    #[arg(long, env = "RECAST_DB_LATENCY_TARGET", default_value = "250ms", value_parser = humantime::parse_duration)]
    pub db_latency_target: Duration,
    /// A job running longer records what it did and goes back to the queue.
    #[arg(long, env = "RECAST_MAX_JOB_DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_job_duration: Duration,
    /// On SIGTERM, SIGINT or a spot notice: time to finish or release the jobs in hand and exit.
    #[arg(long, env = "RECAST_DRAIN_DEADLINE", default_value = "90s", value_parser = humantime::parse_duration)]
    pub drain_deadline: Duration,
    /// Serve Prometheus metrics on this address (e.g. 0.0.0.0:9898).
    #[arg(long, env = "RECAST_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Watch the EC2 metadata service for spot interruption notices and rebalance
    /// recommendations (auto: stop watching if it cannot be reached).
    #[arg(long, env = "RECAST_SPOT_WATCH", default_value = "auto")]
    pub spot_watch: SpotWatch,
    /// How often the metadata service is polled.
    #[arg(long, env = "RECAST_SPOT_POLL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub spot_poll: Duration,
}

/// The fleet's four budgets, one flag group for `work` (which stores the given ones in the run)
/// and `plan` (which plans with them). A budget not given is the run's stored one, else the
/// default of `recast_core::Budgets` (the figures in the help).
#[derive(Debug, Args, Clone, Default)]
pub struct BudgetArgs {
    /// Fleet-wide S3 objects deleted per minute per bucket (default: the run's, else 5,000,000).
    #[arg(long, env = "RECAST_S3_DELETES_PER_MIN")]
    pub s3_deletes_per_min: Option<u64>,
    /// Fleet-wide S3 PUT requests per second per prefix (default: the run's, else 3,000).
    #[arg(long, env = "RECAST_S3_PUTS_PER_SEC")]
    pub s3_puts_per_sec: Option<u64>,
    /// Fleet-wide S3 GET requests per second per prefix (default: the run's, else 5,000).
    #[arg(long, env = "RECAST_S3_GETS_PER_SEC")]
    pub s3_gets_per_sec: Option<u64>,
    /// Fleet-wide queue messages in flight (default: the run's, else 100,000; SQS caps 120,000).
    #[arg(long, env = "RECAST_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<u64>,
}

impl BudgetArgs {
    /// The budgets given on the command line, the others left to the run's.
    pub fn overrides(&self) -> recast_core::BudgetOverrides {
        recast_core::BudgetOverrides {
            s3_deletes_per_min: self.s3_deletes_per_min,
            s3_puts_per_sec: self.s3_puts_per_sec,
            s3_gets_per_sec: self.s3_gets_per_sec,
            max_in_flight: self.max_in_flight,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum SpotWatch {
    Auto,
    On,
    Off,
}

#[derive(Debug, Args, Clone)]
pub struct WorkTuning {
    /// Couples in hand at once (the CPU pool, one thread per core, bounds the conversions
    /// running at once).
    #[arg(long, env = "RECAST_CONCURRENCY", default_value_t = recast_worker::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Photos of one couple converted at once.
    #[arg(long, env = "RECAST_PHOTO_PARALLELISM", default_value_t = recast_worker::DEFAULT_PHOTO_PARALLELISM)]
    pub photo_parallelism: usize,
    /// Photos per progress record (one database statement each).
    #[arg(long, env = "RECAST_RECORD_BATCH", default_value_t = recast_worker::DEFAULT_RECORD_BATCH)]
    pub record_batch: usize,
    /// Visibility timeout of a received job; running jobs extend it every half of it.
    #[arg(long, env = "RECAST_VISIBILITY_TIMEOUT", default_value = "2m", value_parser = humantime::parse_duration)]
    pub visibility_timeout: Duration,
    /// Long-poll wait of one receive.
    #[arg(long, env = "RECAST_POLL_WAIT", default_value = "20s", value_parser = humantime::parse_duration)]
    pub poll_wait: Duration,
    /// Threads for decode and encode (default: the cores).
    #[arg(long, env = "RECAST_CPU_THREADS")]
    pub cpu_threads: Option<usize>,
    /// Images with more pixels are refused from their header.
    #[arg(long, env = "RECAST_MAX_PIXELS", default_value_t = recast_codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// How long a sweep's claim on photos lasts; a dead worker's claims pass to others after it.
    #[arg(long, env = "RECAST_SWEEP_LEASE", default_value = "5m", value_parser = humantime::parse_duration)]
    pub sweep_lease: Duration,
    /// Longest a switched photo's thumbnails wait to be deleted: a DeleteObjects request that has
    /// not filled to 1,000 keys goes out once its keys have waited this long.
    #[arg(long, env = "RECAST_SWEEP_MAX_WAIT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub sweep_max_wait: Duration,
}

/// Codec settings shared by `convert` and `bench`.
#[derive(Debug, Args, Clone)]
pub struct ConvertSettings {
    /// WebP quality (0-100): of the photo without --target-score, of images too small to score,
    /// and of `bench`'s fixed-quality passes.
    #[arg(long, env = "RECAST_QUALITY", default_value_t = 80.0)]
    pub quality: f32,
    /// libwebp method (0 fastest .. 6 smallest).
    #[arg(long, env = "RECAST_METHOD", default_value_t = 4)]
    pub method: u8,
    /// Per-photo quality: the SSIMULACRA2 score the WebP must reach, the lowest quality reaching
    /// it chosen (as `launch --target-score`); without it the photo is encoded at --quality.
    #[arg(long, env = "RECAST_TARGET_SCORE")]
    pub target_score: Option<f64>,
    /// Highest WebP quality tried; missing the target even there keeps the original.
    #[arg(long, env = "RECAST_MAX_QUALITY", default_value_t = recast_codec::DEFAULT_MAX_QUALITY)]
    pub max_quality: f32,
    /// Carry EXIF into the WebP (GPS data and the orientation tag are always removed).
    #[arg(long, env = "RECAST_KEEP_EXIF")]
    pub keep_exif: bool,
    /// Images with more pixels are refused from their header.
    #[arg(long, env = "RECAST_MAX_PIXELS", default_value_t = recast_codec::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
}

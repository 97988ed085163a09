//! `recast plan`: a dry run. It reads the catalog's totals, fetches a random sample of real photos
//! and converts them as a worker would on this machine, then predicts with the model of
//! `recast_core::plan`. It writes nothing: the catalog is opened read-only, the store is only
//! read (GET), no queue is opened.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use recast_catalog::{CatalogRead, SamplePhoto};
use recast_codec::Conversion;
use recast_core::{
    plan, Cost, Fleet, InstancePrice, Plan, PlanBudgets, PlanInput, PriceTable, RunSettings,
    SampleMeasure,
};
use recast_store::ObjectStore;
use recast_worker::CpuPool;
use serde::Serialize;

use crate::cli::PlanArgs;
use crate::tables::{self, Table};

/// The instance type plan and report price a machine as when none is named.
pub const DEFAULT_INSTANCE_TYPE: &str = "c6i.large";
/// Originals fetched at once for the sample.
const FETCHES_IN_FLIGHT: usize = 8;

/// A plan with what it was made from, as printed and as `--json` writes it.
#[derive(Debug, Clone, Serialize)]
pub struct PlanReport {
    pub seed: u64,
    /// The instance type priced, and whether the workers run on it or on machines like this one.
    pub instance_type: String,
    pub machine: String,
    pub input: PlanInput,
    pub plan: Plan,
    pub cost: Cost,
    pub storage_per_month_before: f64,
    pub storage_per_month_after: f64,
}

pub async fn run(a: PlanArgs) -> anyhow::Result<()> {
    let settings = a.settings.settings()?;
    let prices = load_prices(a.prices.as_deref())?;
    let (instance_type, instance, machine_cores) = match &a.instance_type {
        Some(t) => (t.clone(), prices.instance(t)?, None),
        None => (
            DEFAULT_INSTANCE_TYPE.to_owned(),
            prices.instance(DEFAULT_INSTANCE_TYPE)?,
            Some(CpuPool::per_core().threads() as u32),
        ),
    };
    let catalog = a.db.open_read_only().await?;
    let store = open_store_for_reading(&a.store).await?;
    let seed = a.seed.unwrap_or_else(|| fastrand::u64(..));
    let cpu = CpuPool::per_core();
    let fleet = Fleet {
        workers: a.workers.max(1),
        instances: a.workers.max(1),
        vcpus_per_instance: machine_cores.unwrap_or(instance.vcpus),
        concurrency: a.concurrency,
        record_batch: a.record_batch,
        attempt_statement: a.db.db.starts_with("sqlite:"),
    };
    // The fleet's budgets as the run stores them (workers given budget flags store theirs), with
    // this command's flags over them.
    let stored = catalog.budgets(&a.run).await?;
    let budgets = PlanBudgets {
        s3_deletes_per_minute: a
            .budgets
            .s3_deletes_per_min
            .unwrap_or(stored.s3_deletes_per_min) as f64,
        s3_puts_per_second: a.budgets.s3_puts_per_sec.unwrap_or(stored.s3_puts_per_sec) as f64,
        s3_gets_per_second: a.budgets.s3_gets_per_sec.unwrap_or(stored.s3_gets_per_sec) as f64,
        sqs_in_flight: a.budgets.max_in_flight.unwrap_or(stored.max_in_flight) as f64,
        db_statements_per_second: a.db_statements_per_sec,
    };
    let machine = match machine_cores {
        Some(cores) => format!("{cores}-core machines like this one, priced as {instance_type}"),
        None => format!("{instance_type} ({} vCPUs)", instance.vcpus),
    };
    let setup = Setup {
        settings,
        sampling: Sampling {
            photos: a.sample,
            seed,
        },
        fleet,
        budgets,
        prices,
        instance: Priced {
            instance_type,
            price: instance,
            machine,
        },
    };
    let report = predict(catalog.as_ref(), store.as_ref(), &cpu, setup).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if a.markdown {
        print!("{}", report.markdown());
    } else {
        print!("{}", report.terminal());
    }
    Ok(())
}

/// Which photos to sample.
#[derive(Debug, Clone, Copy)]
pub struct Sampling {
    pub photos: u32,
    pub seed: u64,
}

/// The instance type priced, and what the fleet's machines are, in words.
#[derive(Debug, Clone)]
pub struct Priced {
    pub instance_type: String,
    pub price: InstancePrice,
    pub machine: String,
}

/// What a plan is made for.
#[derive(Debug, Clone)]
pub struct Setup {
    pub settings: RunSettings,
    pub sampling: Sampling,
    pub fleet: Fleet,
    pub budgets: PlanBudgets,
    pub prices: PriceTable,
    pub instance: Priced,
}

/// Measures the sample and predicts (also used by `demo --plan`).
pub async fn predict(
    catalog: &dyn CatalogRead,
    store: &dyn ObjectStore,
    cpu: &CpuPool,
    setup: Setup,
) -> anyhow::Result<PlanReport> {
    let Setup {
        settings,
        sampling,
        fleet,
        budgets,
        prices,
        instance,
    } = setup;
    let totals = catalog
        .totals()
        .await
        .context("failed to read the catalog's totals")?;
    if totals.photos == 0 {
        bail!("the catalog holds no photos: nothing to plan");
    }
    let sample = measure_sample(catalog, store, cpu, &settings, sampling).await?;
    let input = PlanInput {
        totals,
        sample,
        originals: settings.originals,
        fleet,
        budgets,
    };
    let plan = plan(&input);
    let cost = prices.cost(instance.price, plan.instance_hours, &plan.requests);
    Ok(PlanReport {
        seed: sampling.seed,
        instance_type: instance.instance_type,
        machine: instance.machine,
        storage_per_month_before: prices.storage_per_month(plan.before.bytes),
        storage_per_month_after: prices.storage_per_month(plan.after.bytes),
        input,
        plan,
        cost,
    })
}

/// The default price table, or it with a JSON price file laid over it.
pub fn load_prices(path: Option<&Path>) -> anyhow::Result<PriceTable> {
    match path {
        None => Ok(PriceTable::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("failed to read the price file {}", p.display()))?;
            PriceTable::from_json_over_defaults(&text)
                .with_context(|| format!("failed to read the price file {}", p.display()))
        }
    }
}

/// Opens a store only to read it: a file:// folder must exist already (opening a missing one
/// would create it).
pub async fn open_store_for_reading(url: &str) -> anyhow::Result<Arc<dyn ObjectStore>> {
    if let Some(path) = url
        .strip_prefix("file://")
        .filter(|p| !Path::new(p).is_dir())
    {
        bail!("the store folder {path} does not exist");
    }
    recast_store::open(url)
        .await
        .context("failed to open the store")
}

/// Fetches the sampled originals, converts them all at once on the CPU pool (the worker's
/// conversion, quality guard included) and sums what came out and what it took.
async fn measure_sample(
    catalog: &dyn CatalogRead,
    store: &dyn ObjectStore,
    cpu: &CpuPool,
    settings: &RunSettings,
    sampling: Sampling,
) -> anyhow::Result<SampleMeasure> {
    let photos = catalog
        .sample_photos(sampling.photos.max(1), sampling.seed)
        .await
        .context("failed to pick the sample")?;
    let fetched: Vec<(SamplePhoto, Option<Bytes>)> = futures::stream::iter(photos)
        .map(|p| async move {
            match store.get(&p.original_key).await {
                Ok(bytes) => Ok((p, Some(bytes))),
                Err(e) if e.is_not_found() => Ok((p, None)),
                Err(e) => Err(e).with_context(|| format!("failed to get {}", p.original_key)),
            }
        })
        .buffered(FETCHES_IN_FLIGHT)
        .try_collect()
        .await?;
    let options = recast_worker::conversion_options(settings, recast_codec::DEFAULT_MAX_PIXELS);
    // Each conversion is timed on its own thread while the others run beside it, as in a
    // worker: the sum is the core-seconds the sample took, without the idle tail of a batch.
    // The thread's CPU time is taken where Linux gives it, so that other work on this machine
    // (a build, say) does not count; elsewhere, the conversion's wall time.
    let conversions = fetched.iter().map(|(_, bytes)| {
        let bytes = bytes.clone();
        cpu.run(move || {
            let (started, cpu_before) = (Instant::now(), thread_cpu_seconds());
            let result = bytes.map(|b| recast_codec::convert(&b, &options));
            let seconds = match (cpu_before, thread_cpu_seconds()) {
                (Some(before), Some(after)) => after - before,
                _ => started.elapsed().as_secs_f64(),
            };
            (result, seconds)
        })
    });
    let results = futures::future::join_all(conversions).await;
    let mut m = SampleMeasure {
        cpu_seconds: results.iter().map(|(_, seconds)| seconds).sum(),
        threads: cpu.threads() as u32,
        ..SampleMeasure::default()
    };
    for ((photo, _), (result, _)) in fetched.iter().zip(results) {
        m.photos += 1;
        m.original_bytes += photo.bytes;
        let known_pixels = photo
            .width
            .zip(photo.height)
            .map(|(w, h)| u64::from(w) * u64::from(h));
        let (pixels, outcome) = match result {
            Some(Ok(Conversion::Webp(c))) if c.source_frames <= 1 => (
                Some(u64::from(c.out.width) * u64::from(c.out.height)),
                Outcome::Converted(c.out.webp.len() as u64),
            ),
            // Animated, already a WebP, or not good or small enough: the original stays.
            Some(Ok(_)) => (known_pixels, Outcome::Kept),
            Some(Err(_)) | None => (None, Outcome::Failed),
        };
        if let Some(p) = pixels {
            m.pixels += p;
            m.decoded += 1;
        }
        match outcome {
            Outcome::Converted(webp) => {
                m.converted += 1;
                m.converted_original_bytes += photo.bytes;
                m.webp_bytes += webp;
            }
            Outcome::Kept => {
                m.kept += 1;
                m.kept_original_bytes += photo.bytes;
            }
            Outcome::Failed => {
                m.failed += 1;
                m.failed_original_bytes += photo.bytes;
            }
        }
    }
    Ok(m)
}

/// CPU time of the calling thread (user + system), from /proc/thread-self/stat; `None` where
/// that does not exist. Ten lines rather than a crate for one syscall's worth of numbers, like
/// `recast bench`'s process CPU time.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // After the command name (in parentheses, may hold spaces): state is field 3, utime and
    // stime are fields 14 and 15, in USER_HZ (100 per second wherever Linux exports them).
    let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
    let ticks = fields
        .get(11..13)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    Some(ticks as f64 / 100.0)
}

enum Outcome {
    Converted(u64),
    Kept,
    Failed,
}

/// A figure of a rate or a need: whole above 100, one decimal below; "-" for no limit.
fn figure(v: f64) -> String {
    if !v.is_finite() {
        "-".to_owned()
    } else if v >= 100.0 {
        tables::count(v.round() as u64)
    } else {
        format!("{v:.1}")
    }
}

impl PlanReport {
    fn heading(&self) -> String {
        let p = &self.plan;
        let s = &self.input.sample;
        let f = &self.input.fleet;
        format!(
            "recast plan — {} couples, {} photos, originals {}; {} worker(s) on {}\n\
             sample: {} photos (seed {}): {} converted, {} kept, {} failed; WebP/original {:.3}; \
             {:.3} CPU s per megapixel on {} threads\n",
            tables::count(p.couples),
            tables::count(p.photos),
            self.input.originals,
            f.workers,
            self.machine,
            s.photos,
            self.seed,
            s.converted,
            s.kept,
            s.failed,
            p.webp_ratio,
            p.cpu_seconds_per_megapixel,
            s.threads
        )
    }

    fn footer(&self) -> String {
        let p = &self.plan;
        format!(
            "duration {} at {} photos/s ({} binds); {:.2} instance hours, {}\n",
            tables::duration(p.duration_seconds),
            figure(p.photos_per_second),
            p.binding.as_str(),
            p.instance_hours,
            tables::dollars(self.cost.total_dollars)
        )
    }

    pub fn tables(&self) -> Vec<Table> {
        let p = &self.plan;
        vec![
            result_table(
                "Result (predicted)",
                (p.before, p.after),
                (self.storage_per_month_before, self.storage_per_month_after),
            ),
            cost_table(
                "Cost (predicted)",
                &self.cost,
                &p.requests,
                &self.instance_type,
            ),
            self.limits_table(),
        ]
    }

    fn limits_table(&self) -> Table {
        let mut t = Table::new(
            "Limits (need at full CPU speed against the budget)",
            &["limit", "need", "budget", "unit", "use", "max photos/s", ""],
        );
        for l in &self.plan.limits {
            t.row(vec![
                l.limit.as_str().to_owned(),
                figure(l.need),
                figure(l.cap),
                l.unit.to_owned(),
                tables::percent(100.0 * l.utilisation()),
                figure(l.max_photos_per_second),
                if l.limit == self.plan.binding {
                    "binds".to_owned()
                } else {
                    String::new()
                },
            ]);
        }
        t
    }

    pub fn terminal(&self) -> String {
        let mut out = self.heading();
        for t in self.tables() {
            out.push('\n');
            out.push_str(&t.terminal());
        }
        out.push('\n');
        out.push_str(&self.footer());
        out
    }

    pub fn markdown(&self) -> String {
        let mut out = format!("## {}", self.heading().replace('\n', "\n\n"));
        for t in self.tables() {
            out.push('\n');
            out.push_str(&t.markdown());
        }
        out.push('\n');
        out.push_str(&self.footer());
        out
    }
}

/// The "result" table: objects and storage before and after.
pub fn result_table(
    title: &str,
    (before, after): (recast_core::Footprint, recast_core::Footprint),
    (month_before, month_after): (f64, f64),
) -> Table {
    let change = |b: f64, a: f64| {
        if b == 0.0 {
            "-".to_owned()
        } else {
            format!("{:+.1}%", 100.0 * (a - b) / b)
        }
    };
    let mut t = Table::new(title, &["", "before", "after", "change"]);
    t.row(vec![
        "S3 objects".into(),
        tables::count(before.objects),
        tables::count(after.objects),
        change(before.objects as f64, after.objects as f64),
    ]);
    t.row(vec![
        "S3 storage".into(),
        tables::bytes(before.bytes),
        tables::bytes(after.bytes),
        change(before.bytes as f64, after.bytes as f64),
    ]);
    t.row(vec![
        "storage per month".into(),
        tables::dollars(month_before),
        tables::dollars(month_after),
        change(month_before, month_after),
    ]);
    t
}

/// The "cost" table: instance hours and requests, with their dollars.
pub fn cost_table(
    title: &str,
    cost: &Cost,
    r: &recast_core::TallySnapshot,
    instance_type: &str,
) -> Table {
    let mut t = Table::new(title, &["", "quantity", "dollars"]);
    t.row(vec![
        format!("EC2 spot hours ({instance_type})"),
        format!("{:.3}", cost.instance_hours),
        tables::dollars(cost.instance_dollars),
    ]);
    t.row(vec![
        "SQS requests".into(),
        tables::count(r.sqs_requests),
        tables::dollars(cost.sqs_dollars),
    ]);
    t.row(vec![
        "S3 GET requests".into(),
        tables::count(r.s3_get),
        tables::dollars(cost.s3_get_dollars),
    ]);
    t.row(vec![
        "S3 PUT requests".into(),
        tables::count(r.s3_put),
        tables::dollars(cost.s3_put_dollars),
    ]);
    t.row(vec![
        format!(
            "S3 DeleteObjects requests ({} keys)",
            tables::count(r.s3_deleted_objects)
        ),
        tables::count(r.s3_delete_requests),
        tables::dollars(cost.s3_delete_dollars),
    ]);
    t.row(vec![
        "DB statements (not priced)".into(),
        tables::count(r.db_statements),
        "-".into(),
    ]);
    t.row(vec![
        "total".into(),
        String::new(),
        tables::dollars(cost.total_dollars),
    ]);
    t
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::thread_cpu_seconds;

    #[test]
    fn a_threads_cpu_time_counts_its_work_not_its_waits() {
        let before = thread_cpu_seconds().expect("/proc/thread-self/stat is readable on Linux");
        // Work until the thread has run 0.2 s of CPU, however busy the machine is.
        let started = Instant::now();
        let mut x = 1u64;
        while thread_cpu_seconds().unwrap() - before < 0.2 {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no CPU time counted"
            );
        }
        let worked = thread_cpu_seconds().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let slept = thread_cpu_seconds().unwrap() - worked;
        assert!(slept < 0.05, "sleeping counted {slept} s of CPU");
    }
}

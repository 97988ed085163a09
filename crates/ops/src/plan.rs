//! `plan`'s core: a dry run. It reads the catalog's totals, fetches a random sample of real
//! photos and converts them as a worker would on this machine, then predicts with the model of
//! `recast_core::plan`. It writes nothing: the catalog is a [`CatalogRead`], the store is only
//! read (GET), no queue is opened. The result is a [`PlanReport`]; printing it is the binary's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use recast_catalog::{CatalogError, CatalogRead, SamplePhoto};
use recast_codec::Conversion;
use recast_core::{
    BudgetOverrides, Cost, Fleet, InstancePrice, Plan, PlanBudgets, PlanInput, PriceError,
    PriceTable, RunSettings, SampleMeasure,
};
use recast_store::{ObjectStore, StoreError};
use recast_worker::CpuPool;
use serde::Serialize;

use crate::cpu_time::thread_cpu_seconds;

/// The instance type plan and report price a machine as when none is named.
pub const DEFAULT_INSTANCE_TYPE: &str = "c6i.large";
/// Originals fetched at once for the sample.
const FETCHES_IN_FLIGHT: usize = 8;

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("failed to read the price file {}", path.display())]
    PriceFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("failed to read the price file {}", path.display())]
    PriceTable {
        path: PathBuf,
        #[source]
        source: PriceError,
    },
    #[error(transparent)]
    Price(#[from] PriceError),
    #[error("failed to open the store")]
    OpenStore(#[source] StoreError),
    #[error("failed to read the catalog")]
    Catalog(#[from] CatalogError),
    #[error("the catalog holds no photos: nothing to plan")]
    NoPhotos,
    #[error("failed to get {key}")]
    Get {
        key: String,
        #[source]
        source: StoreError,
    },
}

/// A plan with what it was made from: what `plan` prints and what `--json` writes.
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

/// What the operator asks `plan` for, before the catalog is read: [`setup`] turns it into a
/// [`Setup`] with the run's stored budgets under the ones given here.
#[derive(Debug, Clone)]
pub struct PlanRequest {
    /// The run whose stored budgets are the default of `budgets`.
    pub run: String,
    pub settings: RunSettings,
    pub sampling: Sampling,
    pub prices: PriceTable,
    /// The workers' instance type; `None`: machines like this one (`machine_cores` cores),
    /// priced as [`DEFAULT_INSTANCE_TYPE`].
    pub instance_type: Option<String>,
    pub machine_cores: u32,
    pub workers: u32,
    pub concurrency: u32,
    pub record_batch: u32,
    /// The catalog writes an attempt in its own statement (SQLite), see [`Fleet`].
    pub attempt_statement: bool,
    pub budgets: BudgetOverrides,
    pub db_statements_per_second: f64,
}

/// The setup of a plan: the instance priced, the fleet, and the budgets (those given, else the
/// run's stored ones, else the defaults).
pub async fn setup(catalog: &dyn CatalogRead, r: PlanRequest) -> Result<Setup, PlanError> {
    let (instance_type, price, machine_cores) = match &r.instance_type {
        Some(t) => (t.clone(), r.prices.instance(t)?, None),
        None => (
            DEFAULT_INSTANCE_TYPE.to_owned(),
            r.prices.instance(DEFAULT_INSTANCE_TYPE)?,
            Some(r.machine_cores),
        ),
    };
    let fleet = Fleet {
        workers: r.workers.max(1),
        instances: r.workers.max(1),
        vcpus_per_instance: machine_cores.unwrap_or(price.vcpus),
        concurrency: r.concurrency,
        record_batch: r.record_batch,
        attempt_statement: r.attempt_statement,
    };
    let stored = catalog.budgets(&r.run).await?;
    let budgets = PlanBudgets {
        s3_deletes_per_minute: r
            .budgets
            .s3_deletes_per_min
            .unwrap_or(stored.s3_deletes_per_min) as f64,
        s3_puts_per_second: r.budgets.s3_puts_per_sec.unwrap_or(stored.s3_puts_per_sec) as f64,
        s3_gets_per_second: r.budgets.s3_gets_per_sec.unwrap_or(stored.s3_gets_per_sec) as f64,
        sqs_in_flight: r.budgets.max_in_flight.unwrap_or(stored.max_in_flight) as f64,
        db_statements_per_second: r.db_statements_per_second,
    };
    let machine = match machine_cores {
        Some(cores) => format!("{cores}-core machines like this one, priced as {instance_type}"),
        None => format!("{instance_type} ({} vCPUs)", price.vcpus),
    };
    Ok(Setup {
        settings: r.settings,
        sampling: r.sampling,
        fleet,
        budgets,
        prices: r.prices,
        instance: Priced {
            instance_type,
            price,
            machine,
        },
    })
}

/// Measures the sample and predicts (`plan`, and `demo --plan`).
pub async fn predict(
    catalog: &dyn CatalogRead,
    store: &dyn ObjectStore,
    cpu: &CpuPool,
    setup: Setup,
) -> Result<PlanReport, PlanError> {
    let Setup {
        settings,
        sampling,
        fleet,
        budgets,
        prices,
        instance,
    } = setup;
    let totals = catalog.totals().await?;
    if totals.photos == 0 {
        return Err(PlanError::NoPhotos);
    }
    let sample = measure_sample(catalog, store, cpu, &settings, sampling).await?;
    let input = PlanInput {
        totals,
        sample,
        originals: settings.originals,
        fleet,
        budgets,
    };
    let plan = recast_core::plan(&input);
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
pub fn load_prices(path: Option<&Path>) -> Result<PriceTable, PlanError> {
    match path {
        None => Ok(PriceTable::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|source| PlanError::PriceFile {
                path: p.to_owned(),
                source,
            })?;
            PriceTable::from_json_over_defaults(&text).map_err(|source| PlanError::PriceTable {
                path: p.to_owned(),
                source,
            })
        }
    }
}

/// Opens a store only to read it: a file:// folder must exist already (opening a missing one
/// would create it).
pub async fn open_store_for_reading(url: &str) -> Result<Arc<dyn ObjectStore>, PlanError> {
    recast_store::open_existing(url)
        .await
        .map_err(PlanError::OpenStore)
}

/// What became of one photo of the sample.
enum Outcome {
    Converted(u64),
    Kept,
    Failed,
}

/// Fetches the sampled originals, converts them all at once on the CPU pool (the worker's
/// conversion, quality guard included) and sums what came out and what it took.
async fn measure_sample(
    catalog: &dyn CatalogRead,
    store: &dyn ObjectStore,
    cpu: &CpuPool,
    settings: &RunSettings,
    sampling: Sampling,
) -> Result<SampleMeasure, PlanError> {
    let photos = catalog
        .sample_photos(sampling.photos.max(1), sampling.seed)
        .await?;
    let fetched: Vec<(SamplePhoto, Option<Bytes>)> = futures::stream::iter(photos)
        .map(|p| async move {
            match store.get(&p.original_key).await {
                Ok(bytes) => Ok((p, Some(bytes))),
                Err(e) if e.is_not_found() => Ok((p, None)),
                Err(source) => Err(PlanError::Get {
                    key: p.original_key.clone(),
                    source,
                }),
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

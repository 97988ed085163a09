//! `recast demo`: the whole fleet on one machine — seed, launch, N workers — then a summary with
//! the codec-only ceiling measured in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use recast_catalog::Catalog;
use recast_core::{PhotoState, RunSettings};
use recast_store::ObjectStore;
use recast_worker::{CpuPool, FleetSettings, Progress, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

use recast_ops::plan::{PlanReport, Priced, Sampling, Setup, DEFAULT_INSTANCE_TYPE};
use recast_ops::seed::{import_seeded, seed, seed_patterns, SeedPlan};

use crate::cli::DemoArgs;
use crate::tables::bytes as mb;

/// How often the progress bars are refreshed.
const BAR_REFRESH: Duration = Duration::from_millis(100);

pub async fn run(a: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&a.dir)
        .with_context(|| format!("failed to create {}", a.dir.display()))?;
    let dir = a.dir.canonicalize()?;
    clear_previous_demo(&dir)?;
    let db_url = format!("sqlite://{}", dir.join("catalog.db").display());
    let queue_url = format!("sqlite://{}", dir.join("queue.db").display());
    let store_url = format!("file://{}", dir.join("store").display());
    let catalog = recast_catalog::open(&db_url).await?;
    let queue = recast_queue::open(&queue_url).await?;
    let store = recast_store::open(&store_url).await?;
    let cpu = CpuPool::per_core();
    let settings = RunSettings {
        quality: a.quality,
        target_score: a.target_score,
        originals: a.originals,
        ..RunSettings::default()
    };
    settings.validate()?;
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");

    // 1. Seed.
    let seed_bar = bars.add(
        ProgressBar::new(0)
            .with_style(style.clone())
            .with_prefix("seed"),
    );
    let plan = SeedPlan {
        photos: a.photos.clone(),
        couples: a.couples,
        min_photos: 1,
        max_photos: a.max_photos,
        thumbs: a.thumbs,
        synth_width: a.synth_width,
    };
    seed_bar.set_length(u64::from(plan.couples));
    let seeded = seed(
        &plan,
        catalog.max_ids().await?,
        store.clone(),
        &cpu,
        &|couples| seed_bar.set_position(couples),
    )
    .await?;
    // The catalog is filled through the front door, as an operator's would be.
    import_seeded(
        catalog.as_ref(),
        store.clone(),
        &store_url,
        &seed_patterns(&seeded),
    )
    .await?;
    seed_bar.finish_with_message(format!(
        "couples, {} photos (from {} source images), {} thumbnails",
        seeded.photos, seeded.sources, seeded.thumbnails
    ));

    // 1b. With --plan, a plan of the seeded catalog, made as `recast plan` makes it, before the run.
    let planned = if a.plan {
        let plan_bar = bars.add(ProgressBar::new_spinner().with_prefix("plan"));
        plan_bar.set_message(format!("converting a sample of {} photos", a.plan_sample));
        plan_bar.enable_steady_tick(BAR_REFRESH);
        let report = plan_demo(&a, catalog.as_ref(), store.as_ref(), &cpu, &settings).await?;
        plan_bar.finish_with_message(format!(
            "predicted {} after, {} at {:.2} photos/s",
            mb(report.plan.after.bytes),
            crate::tables::duration(report.plan.duration_seconds),
            report.plan.photos_per_second
        ));
        Some(report)
    } else {
        None
    };

    // 2. The codec-only ceiling: decode+encode of exactly the photos the run converts, on the
    // pool the workers use, nothing else.
    let keys: Vec<String> = crate::ceiling::all_photos(catalog.as_ref())
        .await?
        .into_iter()
        .map(|(_, key)| key)
        .collect();
    let ceiling_bar = bars.add(ProgressBar::new_spinner().with_prefix("ceiling"));
    ceiling_bar.set_message(format!(
        "codec only: {} photos on {} threads",
        keys.len(),
        cpu.threads()
    ));
    ceiling_bar.enable_steady_tick(BAR_REFRESH);
    let ceiling = crate::ceiling::codec_ceiling(&cpu, store.as_ref(), &keys, &settings).await?;
    ceiling_bar.finish_with_message(format!(
        "codec only: {ceiling:.2} photos/s on {} threads",
        cpu.threads()
    ));

    // 3. Launch.
    let (run, launched) =
        crate::launch::launch(catalog.as_ref(), queue.as_ref(), "demo", &settings).await?;

    // 4. Work.
    let progress = Arc::new(Progress::default());
    let work_bar = bars.add(
        ProgressBar::new(seeded.photos)
            .with_style(style)
            .with_prefix("migrate"),
    );
    let started = Instant::now();
    let pool_before = cpu.usage();
    let stop = CancellationToken::new();
    let workers: Vec<_> = (0..a.workers.max(1))
        .map(|i| {
            let config = WorkerConfig {
                name: format!("demo-{i}"),
                poll_wait: Duration::from_millis(250),
                exit_when_idle: true,
                fleet: FleetSettings {
                    run_name: "demo".to_owned(),
                    ..FleetSettings::default()
                },
                ..WorkerConfig::default()
            };
            let w = Worker::new(
                config,
                catalog.clone(),
                store.clone(),
                queue.clone(),
                cpu.clone(),
                progress.clone(),
            );
            let stop = stop.clone();
            tokio::spawn(async move { w.run(stop).await })
        })
        .collect();
    let mut all = futures::future::join_all(workers);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(BAR_REFRESH) => {
                let done = Progress::get(&progress.photos_converted) + Progress::get(&progress.photos_failed);
                work_bar.set_position(done);
                work_bar.set_message(format!("{} failed", Progress::get(&progress.photos_failed)));
            }
            results = &mut all => {
                for r in results {
                    r.context("a worker panicked")?;
                }
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    // The conversion threads' busy time during the migration alone (the pool also seeded and
    // measured the ceiling): a share the machine's load does not distort as it does the ratio.
    let busy = cpu.usage().busy.saturating_sub(pool_before.busy);
    let busy_share = busy.as_secs_f64() / (cpu.threads() as f64 * elapsed.as_secs_f64());
    work_bar.set_position(
        Progress::get(&progress.photos_converted) + Progress::get(&progress.photos_failed),
    );
    work_bar.finish();

    // 5. Summary.
    let status = catalog.status(&run).await?;
    let (objects_before, bytes_before) = status.before();
    let (objects_after, bytes_after) = status.after();
    let finished = status.photos_in(PhotoState::Done) + status.photos_in(PhotoState::Failed);
    let rate = finished as f64 / elapsed.as_secs_f64();
    let reduction = 100.0 * (bytes_before as f64 - bytes_after as f64) / bytes_before.max(1) as f64;
    println!();
    println!(
        "recast demo — {} couples, {} photos, {} workers, originals {}",
        launched.enqueued_total,
        status.photos_total(),
        a.workers,
        run.settings.originals
    );
    println!("  objects       {objects_before:>12} before  {objects_after:>12} after");
    println!(
        "  bytes         {:>12} before  {:>12} after   ({reduction:.1}% less)",
        mb(bytes_before),
        mb(bytes_after)
    );
    println!(
        "  failed photos {:>12}{}",
        status.photos_in(PhotoState::Failed),
        failure_list(&status)
    );
    println!("  elapsed       {:>11.1}s", elapsed.as_secs_f64());
    println!("  end-to-end    {rate:>12.2} photos/s");
    println!(
        "  codec ceiling {ceiling:>12.2} photos/s  (conversion only, {} threads, same photos)",
        cpu.threads()
    );
    println!("  ratio         {:>12.2}  of the ceiling", rate / ceiling);
    println!(
        "  cpu threads   {:>11.1}%  busy converting over the migration's wall time",
        100.0 * busy_share
    );
    println!("  files in      {}", dir.display());
    if let Some(p) = planned {
        println!();
        print!(
            "{}",
            plan_against_reality(&p, bytes_after, elapsed.as_secs_f64()).terminal()
        );
    }
    if !status.is_complete() {
        anyhow::bail!("the run did not complete; see `recast status --db {db_url}`");
    }
    Ok(())
}

fn failure_list(s: &recast_catalog::RunStatus) -> String {
    if s.failures.is_empty() {
        return String::new();
    }
    let list: Vec<String> = s
        .failures
        .iter()
        .map(|(r, n)| format!("{r}: {n}"))
        .collect();
    format!("  ({})", list.join(", "))
}

/// Removes the files an earlier demo left in `dir` (and nothing else).
fn clear_previous_demo(dir: &Path) -> anyhow::Result<()> {
    for name in [
        "catalog.db",
        "catalog.db-wal",
        "catalog.db-shm",
        "queue.db",
        "queue.db-wal",
        "queue.db-shm",
    ] {
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
    }
    match std::fs::remove_dir_all(dir.join("store")) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// The plan `demo --plan` makes: the fleet is the demo's, every worker in this process sharing
/// one CPU pool, so one machine of this machine's cores whatever the number of workers.
async fn plan_demo(
    a: &DemoArgs,
    catalog: &dyn Catalog,
    store: &dyn ObjectStore,
    cpu: &CpuPool,
    settings: &RunSettings,
) -> anyhow::Result<PlanReport> {
    let prices = recast_core::PriceTable::default();
    let instance_type = DEFAULT_INSTANCE_TYPE;
    let fleet = recast_core::Fleet {
        workers: a.workers.max(1) as u32,
        instances: 1,
        vcpus_per_instance: cpu.threads() as u32,
        concurrency: WorkerConfig::default().concurrency as u32,
        record_batch: WorkerConfig::default().record_batch as u32,
        attempt_statement: true,
    };
    let instance = Priced {
        instance_type: instance_type.to_owned(),
        price: prices.instance(instance_type)?,
        machine: format!("this machine ({} threads shared)", cpu.threads()),
    };
    let setup = Setup {
        settings: settings.clone(),
        sampling: Sampling {
            photos: a.plan_sample,
            seed: fastrand::u64(..),
        },
        fleet,
        budgets: recast_core::PlanBudgets::default(),
        prices,
        instance,
    };
    Ok(recast_ops::plan::predict(catalog, store, cpu, setup).await?)
}

/// Predicted against measured: bytes after and duration, with the error of the prediction.
fn plan_against_reality(p: &PlanReport, bytes_after: u64, seconds: f64) -> crate::tables::Table {
    use crate::tables::{bytes, duration, error_percent, Table};
    let mut t = Table::new(
        format!(
            "plan against reality (plan: a sample of {} photos, seed {})",
            p.input.sample.photos, p.seed
        ),
        &["", "predicted", "measured", "error"],
    );
    t.row(vec![
        "bytes after".into(),
        bytes(p.plan.after.bytes),
        bytes(bytes_after),
        format!(
            "{:+.1}%",
            error_percent(p.plan.after.bytes as f64, bytes_after as f64)
        ),
    ]);
    t.row(vec![
        "duration".into(),
        duration(p.plan.duration_seconds),
        duration(seconds),
        format!("{:+.1}%", error_percent(p.plan.duration_seconds, seconds)),
    ]);
    t
}

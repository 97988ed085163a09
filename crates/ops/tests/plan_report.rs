//! `recast_ops::seed`, `plan` and `report` as a library, on real parts: a folder store seeded
//! with generated JPEGs and their thumbnails, imported into a real catalog (SQLite, and the
//! PostgreSQL that scripts/test starts), planned from a sample, then migrated by a real worker
//! over the embedded SQLite queue and reported from what the catalog recorded. Each test asserts
//! on the typed results (`SeedReport`, `PlanReport`, `ReportData`), not on printed text.

use std::sync::Arc;
use std::time::Duration;

use recast_catalog::Catalog;
use recast_catalog::CatalogRead;
use recast_core::{BudgetOverrides, OriginalsPolicy, PhotoState, PriceTable, RunSettings};
use recast_ops::plan::{PlanRequest, Sampling};
use recast_ops::seed::{import_seeded, seed, seed_patterns, SeedPlan, SeedReport};
use recast_store::ObjectStore;
use recast_worker::{CpuPool, FleetSettings, Progress, Worker, WorkerConfig};
use tokio_util::sync::CancellationToken;

const THUMBS: u32 = 3;

/// A small seed: 6 couples of 1..=3 generated photos of 320x240, 3 thumbnails each.
fn shape() -> SeedPlan {
    SeedPlan {
        photos: None,
        couples: 6,
        min_photos: 1,
        max_photos: 3,
        thumbs: THUMBS,
        synth_width: 320,
    }
}

struct Seeded {
    store: Arc<dyn ObjectStore>,
    report: SeedReport,
    /// The store's objects and their bytes, listed after the seed.
    listed: (u64, u64),
}

async fn seed_into(dir: &std::path::Path, catalog: &dyn Catalog, cpu: &CpuPool) -> Seeded {
    let url = format!("file://{}", dir.join("store").display());
    let store = recast_store::open(&url).await.unwrap();
    let positions = std::sync::Mutex::new(Vec::new());
    let report = seed(
        &shape(),
        catalog.max_ids().await.unwrap(),
        store.clone(),
        cpu,
        &|n| positions.lock().unwrap().push(n),
    )
    .await
    .unwrap();
    // Told after each batch (one batch of 100 couples here), ending at every couple.
    assert_eq!(positions.into_inner().unwrap(), vec![6]);
    let imported = import_seeded(catalog, store.clone(), &url, &seed_patterns(&report))
        .await
        .unwrap();
    assert_eq!(imported.originals.objects, report.photos);
    assert_eq!(imported.thumbnails.objects, report.thumbnails);
    let listed = list(store.as_ref()).await;
    Seeded {
        store,
        report,
        listed,
    }
}

/// Objects and bytes in the store.
async fn list(store: &dyn ObjectStore) -> (u64, u64) {
    let objects = store.list("").await.unwrap();
    (objects.len() as u64, objects.iter().map(|o| o.size).sum())
}

async fn seed_has_the_shape_asked(catalog: &dyn Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuPool::new(2);
    let s = seed_into(dir.path(), catalog, &cpu).await;
    let r = &s.report;
    assert_eq!(r.couples, 6);
    assert!((6..=18).contains(&r.photos), "{} photos", r.photos);
    assert_eq!(r.thumbnails, r.photos * u64::from(THUMBS));
    assert_eq!(r.extensions.iter().collect::<Vec<_>>(), ["jpg"]);
    assert_eq!((r.sources, r.undecodable_sources), (12, 0));
    // What the report says it wrote is what the store holds.
    assert_eq!(s.listed, (r.photos + r.thumbnails, r.bytes));
    let totals = catalog.totals().await.unwrap();
    assert_eq!((totals.couples, totals.photos), (6, r.photos));

    // A second seed adds new couples after the first ones.
    let again = seed(
        &shape(),
        catalog.max_ids().await.unwrap(),
        s.store.clone(),
        &cpu,
        &|_| {},
    )
    .await
    .unwrap();
    assert_eq!(again.couples, 6);
    assert_eq!(
        list(s.store.as_ref()).await.0,
        s.listed.0 + again.photos + again.thumbnails
    );
}

fn request(sample: u32, seed: u64) -> PlanRequest {
    PlanRequest {
        run: "r".into(),
        settings: RunSettings::default(),
        sampling: Sampling {
            photos: sample,
            seed,
        },
        prices: PriceTable::default(),
        instance_type: Some("c6i.xlarge".into()),
        machine_cores: 2,
        workers: 2,
        concurrency: 4,
        record_batch: 8,
        attempt_statement: true,
        budgets: BudgetOverrides::default(),
        db_statements_per_second: 1000.0,
    }
}

/// A plan of the seeded catalog: its "before" is what the store holds, one GET per photo, its
/// sample the size asked and repeatable by its seed.
async fn plan_predicts_from_the_catalog_and_a_sample(catalog: Arc<dyn Catalog>) {
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuPool::new(2);
    let s = seed_into(dir.path(), catalog.as_ref(), &cpu).await;
    let read: Arc<dyn CatalogRead> = catalog.clone();
    let plan = |sample, seed| {
        let (read, store, cpu) = (read.clone(), s.store.clone(), cpu.clone());
        async move {
            let setup = recast_ops::plan::setup(read.as_ref(), request(sample, seed))
                .await
                .unwrap();
            recast_ops::plan::predict(read.as_ref(), store.as_ref(), &cpu, setup)
                .await
                .unwrap()
        }
    };
    let p = plan(4, 7).await;
    assert_eq!(p.seed, 7);
    assert_eq!(p.instance_type, "c6i.xlarge");
    assert_eq!(p.input.fleet.workers, 2);
    assert_eq!(p.input.fleet.vcpus_per_instance, 4, "c6i.xlarge's vCPUs");
    let sample = &p.input.sample;
    assert_eq!(sample.photos, 4);
    assert_eq!(sample.converted + sample.kept + sample.failed, 4);
    assert_eq!(sample.failed, 0, "generated JPEGs all decode");
    assert!(sample.cpu_seconds > 0.0);
    assert_eq!(p.plan.photos, s.report.photos);
    assert_eq!(p.plan.couples, 6);
    assert_eq!(p.plan.before.objects, s.listed.0);
    assert_eq!(p.plan.before.bytes, s.listed.1);
    assert_eq!(p.plan.requests.s3_get, s.report.photos);
    if sample.converted > 0 {
        assert!(p.plan.webp_ratio > 0.0 && p.plan.webp_ratio < 1.0);
        // Under keep, the thumbnails go and a WebP comes in per converted photo.
        assert!(p.plan.after.bytes < p.plan.before.bytes);
    }
    assert!(p.cost.total_dollars > 0.0);
    // The budgets are the run's defaults (no run stored, no override).
    assert_eq!(p.input.budgets.s3_puts_per_second, 3_000.0);

    // The same seed samples the same photos.
    let again = plan(4, 7).await;
    assert_eq!(
        (again.input.sample.photos, again.input.sample.original_bytes),
        (sample.photos, sample.original_bytes)
    );

    // An instance type the price table does not know is refused before anything is read.
    let mut unknown = request(4, 7);
    unknown.instance_type = Some("z9.huge".into());
    let e = recast_ops::plan::setup(read.as_ref(), unknown)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("c6i.large"), "{e}");
}

/// Seeds, launches and runs one real worker until the queue is empty, then reports: the
/// report's totals are what the run did.
async fn report_totals_what_a_run_recorded(catalog: Arc<dyn Catalog>) {
    let dir = tempfile::tempdir().unwrap();
    let cpu = CpuPool::new(2);
    let s = seed_into(dir.path(), catalog.as_ref(), &cpu).await;
    let queue = recast_queue::open(&format!("sqlite://{}/q.db", dir.path().display()))
        .await
        .unwrap();
    let settings = RunSettings {
        originals: OriginalsPolicy::Keep,
        ..RunSettings::default()
    };
    let (run, launched) =
        recast_ops::launch::launch(catalog.as_ref(), queue.as_ref(), "r", &settings)
            .await
            .unwrap();
    assert_eq!(launched.enqueued_total, 6);
    let worker = Worker::new(
        WorkerConfig {
            name: "w1".into(),
            poll_wait: Duration::from_millis(200),
            sweep_max_wait: Duration::from_millis(200),
            exit_when_idle: true,
            fleet: FleetSettings {
                run_name: "r".into(),
                ..FleetSettings::default()
            },
            ..WorkerConfig::default()
        },
        catalog.clone(),
        s.store.clone(),
        queue.clone(),
        cpu.clone(),
        Arc::new(Progress::default()),
    );
    worker.run(CancellationToken::new()).await;

    let read: &dyn CatalogRead = catalog.as_ref();
    let data = recast_ops::report::load(read, &run, None).await.unwrap();
    let photos = s.report.photos;
    assert_eq!(data.run, "r");
    assert!(data.status.is_complete(), "{:?}", data.status);
    assert_eq!(data.status.photos_total(), photos);
    assert_eq!(
        data.status.photos_in(PhotoState::Done) + data.status.photos_in(PhotoState::Failed),
        photos
    );
    // Before: what the seed wrote; after: every thumbnail gone, each photo's original kept and
    // a WebP beside it for those converted; and the store agrees.
    let (before, after) = data.footprints();
    assert_eq!((before.objects, before.bytes), s.listed);
    let now = list(s.store.as_ref()).await;
    assert_eq!((after.objects, after.bytes), now);
    assert!(after.objects >= photos && after.objects < before.objects);
    // Every photo recorded once, in the series as in the totals.
    let sum = |series: &recast_ops::report::Series| series.iter().map(|(_, n)| n).sum::<u64>();
    assert_eq!(sum(&data.photos), photos);
    assert_eq!(sum(&data.done), data.status.photos_in(PhotoState::Done));
    assert_eq!(sum(&data.deletes), s.report.thumbnails);
    // One GET per photo, one PUT per converted photo, the thumbnails deleted in requests.
    let r = &data.status.requests;
    assert_eq!(r.s3_get, photos);
    assert_eq!(r.s3_deleted_objects, s.report.thumbnails);
    assert!(r.s3_delete_requests >= 1);
    assert_eq!(data.workers.len(), 1);
    assert_eq!(data.workers[0].worker, "w1");
    assert!(data.worker_hours > 0.0);
    let cost = data.cost(&PriceTable::default(), "c6i.large");
    assert!(cost.instance_dollars > 0.0 && cost.total_dollars >= cost.instance_dollars);
    // The worker's heartbeat samples give the throttling series: recorded, all zero.
    assert!(data.throttles.iter().all(|(_, n)| *n == 0));
    // A chart per figure, each drawn.
    let charts = recast_ops::charts::charts(&data).unwrap();
    assert_eq!(charts.len(), 6);
    assert!(charts.iter().all(|c| c.svg.starts_with("<svg")));
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Catalog>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    (dir, recast_catalog::open(&url).await.unwrap())
}

async fn postgres() -> Arc<dyn Catalog> {
    let url = recast_catalog::conformance::fresh_postgres().await;
    recast_catalog::open(&url).await.unwrap()
}

#[tokio::test]
async fn seed_shape_sqlite() {
    let (_d, c) = sqlite().await;
    seed_has_the_shape_asked(c.as_ref()).await;
}

#[tokio::test]
async fn seed_shape_postgres() {
    seed_has_the_shape_asked(postgres().await.as_ref()).await;
}

#[tokio::test]
async fn plan_from_a_sample_sqlite() {
    let (_d, c) = sqlite().await;
    plan_predicts_from_the_catalog_and_a_sample(c).await;
}

#[tokio::test]
async fn plan_from_a_sample_postgres() {
    plan_predicts_from_the_catalog_and_a_sample(postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_after_a_run_sqlite() {
    let (_d, c) = sqlite().await;
    report_totals_what_a_run_recorded(c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_after_a_run_postgres() {
    report_totals_what_a_run_recorded(postgres().await).await;
}

//! The fault suite: real `recast work` processes against PostgreSQL and the S3/SQS server (moto),
//! reached through a fault-injecting proxy (crates/faultproxy), with PostgreSQL restarted, the
//! S3/SQS server made unreachable and workers SIGKILLed at chosen moments. Whatever happens,
//! nothing may be lost, nothing deleted early, no photo recorded failed because of a fault, and
//! the dead-letter queue must stay empty. Each test prints the faults it injected.

mod common;
#[path = "faults/support.rs"]
mod support;

use std::time::{Duration, Instant};

use recast_faultproxy::{Fault, FaultPlan, FaultProxy, Op};
use support::{seed_and_launch, wait_until, Pg};

/// Upper bound of one test, so that a hang fails loudly.
const DEADLINE: Duration = Duration::from_secs(150);
/// Receives before SQS dead-letters a message: low enough that a fault wasting receives (a job
/// attempt failed by a fault) would show, high enough for the lost-receive and kill faults the
/// tests inject on purpose.
const MAX_RECEIVES: u32 = 8;

fn endpoint() -> String {
    std::env::var("RECAST_TEST_AWS_ENDPOINT").expect(
        "RECAST_TEST_AWS_ENDPOINT is not set: run the tests with scripts/test, which starts the S3/SQS server",
    )
}

/// Seed from FAULT_SEED, or a new one (printed, to replay a failing run).
fn seed() -> u64 {
    std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..))
}

fn worker_warnings(run: &support::Run, names: &[&str], needle: &str) -> usize {
    names
        .iter()
        .map(|n| run.log(n).matches(needle).count())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_lose_nothing_under_faults_and_restarts() {
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let pg = Pg::start();
    let run = seed_and_launch(pg.url(), 16, MAX_RECEIVES).await;
    let seed = seed();
    eprintln!("fault suite: FAULT_SEED={seed}");
    let plan = FaultPlan {
        seed,
        slow_down: 0.06,
        ambiguous_500: 0.04,
        reset: 0.04,
        corrupt: 0.05,
        latency: 0.2,
        latency_ms: (20, 300),
        sqs: true,
    };
    let proxy = FaultProxy::start(&endpoint(), plan).await.unwrap();
    let names = ["w1", "w2"];
    let mut workers: Vec<_> = names
        .iter()
        .map(|n| (run.worker(&proxy.url(), n), *n))
        .collect();

    // PostgreSQL restarts under the workers once a quarter of the WebPs are stored.
    let quarter = run.photos / 4;
    run.wait_for(
        "a quarter of the WebPs are stored",
        DEADLINE,
        &mut workers,
        || proxy.counts().upstream_done(Op::PutObject) >= quarter,
    );
    // Drawn faults are random: so that each kind surely happens at least once, whatever the
    // seed, the next GETs and PUTs get one of each (a corrupt body only shows on a GET).
    proxy.force(Op::GetObject, Fault::Corrupt, 2);
    proxy.force(Op::PutObject, Fault::SlowDown, 1);
    proxy.force(Op::PutObject, Fault::Ambiguous500, 1);
    proxy.force(Op::PutObject, Fault::Reset, 1);
    pg.restart();
    // The S3/SQS server is unreachable for four seconds once half are stored (moto cannot restart
    // without losing its state; the proxy refusing every connection is what clients would see).
    run.wait_for("half the WebPs are stored", DEADLINE, &mut workers, || {
        proxy.counts().upstream_done(Op::PutObject) >= run.photos / 2
    });
    proxy.set_down(true);
    tokio::time::sleep(Duration::from_secs(4)).await;
    proxy.set_down(false);

    for (child, name) in workers {
        run.finish(child, name, deadline);
    }
    let counts = proxy.counts();
    eprintln!(
        "fault suite (seed {seed}): {} photos, 1 PostgreSQL restart, 4 s of S3/SQS down, {:?}\n{counts}\n\
         GET bodies read again by the store: {} after a cut, {} after a CRC32C mismatch\n\
         statements cut by the PostgreSQL restart (57P01, retried): {}",
        run.photos,
        started.elapsed(),
        worker_warnings(&run, &names, "connection cut while reading a GET body"),
        worker_warnings(&run, &names, "GET body does not match its CRC32C"),
        worker_warnings(&run, &names, "terminating connection due to administrator command"),
    );
    run.assert_nothing_lost().await;
    for fault in [
        Fault::SlowDown,
        Fault::Ambiguous500,
        Fault::Reset,
        Fault::Corrupt,
    ] {
        assert!(
            counts.of(fault) > 0,
            "no {fault:?} was injected: the run proves too little (seed {seed})"
        );
    }
    assert!(
        counts.refused() > 0,
        "no request was refused while down: {counts}"
    );
    assert_eq!(run.thumbnails_left().await, 0, "thumbnails left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_record_and_during_a_delete_objects_loses_nothing() {
    let started = Instant::now();
    let deadline = started + DEADLINE;
    let db = recast_catalog::conformance::fresh_postgres().await;
    let run = seed_and_launch(db.clone(), 8, MAX_RECEIVES).await;
    let proxy = FaultProxy::start(&endpoint(), FaultPlan::none())
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&db).await.unwrap();

    // 1. SIGKILL during a record: once a WebP is stored, the test holds a lock on the progress
    // table, so the worker's record statement waits inside PostgreSQL; the worker is killed
    // while it waits, then the lock is let go.
    let mut first = run.worker(&proxy.url(), "k1");
    wait_until("a WebP is stored", DEADLINE, || {
        proxy.counts().upstream_done(Op::PutObject) >= 1
    });
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE photo_progress IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let waiting = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query ILIKE '%photo_progress%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    let until = Instant::now() + Duration::from_secs(30);
    while waiting().await == 0 {
        assert!(
            Instant::now() < until,
            "the worker never wrote progress; its log:\n{}",
            run.log("k1")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL, mid-statement
    first.wait().unwrap();
    lock.rollback().await.unwrap();

    // 2. SIGKILL during a DeleteObjects: its answer is held back (the deletes took effect), and
    // the worker sweeping is killed while it waits for it.
    proxy.hold(Op::DeleteObjects, Some(Duration::from_secs(20)));
    let mut second = run.worker(&proxy.url(), "k2");
    let until = Instant::now() + Duration::from_secs(90);
    while proxy.counts().held() == 0 {
        if let Some(status) = second.try_wait().unwrap() {
            panic!(
                "worker k2 exited ({status}) without a DeleteObjects; its log:\n{}",
                run.log("k2")
            );
        }
        assert!(
            Instant::now() < until,
            "no DeleteObjects was sent; log:\n{}",
            run.log("k2")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    second.kill().unwrap();
    second.wait().unwrap();
    proxy.hold(Op::DeleteObjects, None);

    // 3. A fresh worker finishes the run.
    let last = run.worker(&proxy.url(), "k3");
    run.finish(last, "k3", deadline);
    eprintln!(
        "kill suite: {} photos, SIGKILL during a record and during a DeleteObjects, {:?}\n{}",
        run.photos,
        started.elapsed(),
        proxy.counts()
    );
    run.assert_nothing_lost().await;
    assert_eq!(
        run.thumbnails_left().await,
        0,
        "thumbnails left behind; k3's log:\n{}",
        run.log("k3")
    );
}

/// A PostgreSQL restart under `launch`, at a statement it is sure to be in: the test holds a lock
/// on the checkpoint table, so the launch's first checkpoint write waits inside PostgreSQL, and
/// the server restarts then. The statement is cut (57P01) and the server is down for a moment;
/// the launch retries, finishes, and every couple is enqueued once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_rides_out_a_postgres_restart() {
    const COUPLES: i64 = 2_500; // three of launch's pages
    let pg = Pg::start();
    let env = common::Env::new();
    let catalog = recast_catalog::open(&pg.url()).await.unwrap();
    let couples = recast_catalog::conformance::bare_couples(COUPLES, 0);
    catalog.add_couples(&couples).await.unwrap();
    drop(catalog);

    let pool = sqlx::PgPool::connect(&pg.url()).await.unwrap();
    let mut lock = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE producer_checkpoints IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await
        .unwrap();
    let queue = env.queue();
    let log = std::fs::File::create(env.path("launch.log")).unwrap();
    let mut launch = env
        .recast(&["launch", "--db", &pg.url(), "--queue", &queue])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(env.path("launch.log")).unwrap_or_default();
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
             WHERE wait_event_type = 'Lock' AND query ILIKE '%producer_checkpoints%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting > 0 {
            break;
        }
        if let Some(status) = launch.try_wait().unwrap() {
            panic!(
                "launch ended ({status}) before its checkpoint write; its log:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < until,
            "launch never wrote a checkpoint:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg.restart();
    drop(lock);
    pool.close().await;

    let until = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = launch.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = launch.kill();
            panic!(
                "launch did not finish after the restart; its log:\n{}",
                log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "launch failed ({status}) after the restart; its log:\n{}",
        log()
    );
    assert!(
        log().contains("failed to save the checkpoint; retrying"),
        "the cut statement was not retried:\n{}",
        log()
    );
    let q = recast_queue::SqliteQueue::open(&queue).await.unwrap();
    let stats = recast_queue::JobQueue::stats(&q).await.unwrap();
    assert_eq!(stats.visible, COUPLES as u64, "{stats:?}");
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--db", &pg.url(), "--json"])).unwrap();
    assert_eq!(status["status"]["couples_enqueued"], COUPLES, "{status:#}");
    assert_eq!(status["status"]["producer_finished"], true, "{status:#}");
}

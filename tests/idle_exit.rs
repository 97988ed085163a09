//! A worker under `--exit-when-idle` that drains the queue sweeps at once and exits, instead of
//! waiting for its sweep timer or a long poll: through the real binary on the embedded backends,
//! with real photos. No wall-clock bound is asserted beyond ones derived from the configured waits
//! with a wide margin; the tail is printed.

mod common;

use std::process::Stdio;

use common::{assert_success, shared_photos, Env};

/// The shared small photographs (not the large wallpapers, to keep the run short).
fn small_photos(env: &Env) -> String {
    let dir = env.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(shared_photos()).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".jpg") && !name.starts_with("ukui-") {
            std::fs::copy(entry.path(), dir.join(&name)).unwrap();
        }
    }
    dir.to_str().unwrap().to_owned()
}

/// Files under `dir`, however deep (the store keeps folders a delete emptied).
fn files_under(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .map(|e| e.unwrap().path())
            .map(|p| if p.is_dir() { files_under(&p) } else { 1 })
            .sum()
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// When the last job's record was written, when the last photo was moved to done by a sweep,
/// how many photos are done, and how many in all.
async fn catalog_times(env: &Env) -> (i64, i64, i64, i64) {
    let pool = sqlx::SqlitePool::connect(&env.db()).await.unwrap();
    let (last_record,): (i64,) =
        sqlx::query_as("SELECT max(finished_at) FROM job_attempts WHERE couple_id IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (last_done, done): (i64, i64) =
        sqlx::query_as("SELECT max(updated_at), count(*) FROM photo_progress WHERE state = 'done'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let (photos,): (i64,) = sqlx::query_as("SELECT count(*) FROM photos")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    (last_record, last_done, done, photos)
}

/// Seconds a worker would sit idle after its last record if it waited for its timers: the poll
/// wait it is given (a 20 s long poll) and the sweep's maximum wait (an hour, so no timed sweep
/// can happen during the test: only the final sweep of a drained queue deletes anything).
const POLL_WAIT_S: i64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_drains_the_queue_sweeps_at_once_and_exits() {
    let env = Env::new();
    let photos = small_photos(&env);
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &store,
        "--photos",
        &photos,
        "--couples",
        "8",
        "--min-photos",
        "2",
        "--max-photos",
        "3",
        "--thumbs",
        "3",
    ]);
    env.ok(&["launch", "--db", &db, "--queue", &queue]);
    let poll_wait = format!("{POLL_WAIT_S}s");
    let args = [
        "work",
        "--db",
        &db,
        "--store",
        &store,
        "--queue",
        &queue,
        "--exit-when-idle",
        "--poll-wait",
        &poll_wait,
        "--sweep-max-wait",
        "1h",
        "--spot-watch",
        "off",
    ];
    let out = env
        .recast(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let exited = now_ms();
    assert_success(&out, &args);
    let log = String::from_utf8_lossy(&out.stderr);
    let (last_record, last_done, done, total) = catalog_times(&env).await;
    // Every photo swept although no sweep timer could fire: the drained worker swept at once.
    assert_eq!(done, total, "photos left unswept:\n{log}");
    assert!(total >= 16, "{total} photos seeded");
    assert_eq!(
        files_under(&env.store_dir().join("thumbs")),
        0,
        "thumbnails left:\n{log}"
    );
    // In order: the last record, then the final sweep, then the exit.
    assert!(
        last_record <= last_done && last_done <= exited,
        "record {last_record}, last sweep {last_done}, exit {exited}"
    );
    let tail_ms = exited - last_record;
    println!(
        "idle tail: {tail_ms} ms from the last record to the exit (final sweep {} ms after the record)",
        last_done - last_record
    );
    // A worker that waited for its long poll (or its sweep timer) would take at least the poll
    // wait; the margin is the whole poll wait, so only that regression fails this.
    assert!(
        tail_ms < POLL_WAIT_S * 1000,
        "the worker sat idle {tail_ms} ms after its last record (poll wait {POLL_WAIT_S} s):\n{log}"
    );
    assert!(
        log.contains("queue drained and every photo swept; exiting"),
        "{log}"
    );
}

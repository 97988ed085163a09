//! The tail of a run end to end, through the real binary on the embedded backends: thumbnails of
//! the last photos are deleted within the sweep's maximum wait by a live worker, or by a fresh
//! `--exit-when-idle` worker when none is left; a run is bound to its queue; `launch --requeue`
//! restores messages lost to a purge.

mod common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_success, Env};

/// A folder of `n` small JPEGs with some texture.
fn photos(env: &Env, n: u32) -> String {
    let dir = env.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(320, 240, |x, y| {
            image::Rgb([
                (x % 256) as u8,
                (y % 256) as u8,
                (((x ^ y) + i * 40) & 0x7f) as u8,
            ])
        });
        img.save(dir.join(format!("p{i}.jpg"))).unwrap();
    }
    dir.to_str().unwrap().to_owned()
}

/// ~40 couples of 3 to 4 photos with 5 thumbnails each, launched as run "main".
fn seed_and_launch(env: &Env, couples: u32) {
    let dir = photos(env, 4);
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &store,
        "--photos",
        &dir,
        "--couples",
        &couples.to_string(),
        "--min-photos",
        "3",
        "--max-photos",
        "4",
        "--thumbs",
        "5",
    ]);
    env.ok(&["launch", "--db", &db, "--queue", &queue]);
}

fn work(env: &Env, name: &str, extra: &[&str]) -> Child {
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    let mut args = vec![
        "work",
        "--db",
        &db,
        "--store",
        &store,
        "--queue",
        &queue,
        "--worker-name",
        name,
        "--poll-wait",
        "500ms",
        "--heartbeat",
        "1s",
        "--spot-watch",
        "off",
        "--concurrency",
        "2",
        "--photo-parallelism",
        "2",
    ];
    args.extend_from_slice(extra);
    env.recast(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn sigterm(child: &Child) {
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

fn finish(child: Child) -> Output {
    let out = child.wait_with_output().unwrap();
    assert_success(&out, &["work"]);
    out
}

/// Thumbnails left in the store (seed puts them under `thumbs/`).
fn thumbnails(env: &Env) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { count(&p) } else { 1 })
                .sum()
        })
    }
    count(&env.store_dir().join("thumbs"))
}

fn status(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["status", "--db", &env.db(), "--json"])).unwrap()
}

fn photos_in(s: &serde_json::Value, state: &str) -> u64 {
    s["status"]["by_state"][state]["photos"]
        .as_u64()
        .unwrap_or(0)
}

/// Whether every photo of the run is recorded (switched or further along).
fn all_recorded(env: &Env) -> bool {
    let s = status(env);
    ["switched", "thumbs_gone", "done", "failed"]
        .iter()
        .map(|st| photos_in(&s, st))
        .sum::<u64>()
        == s["photos_total"].as_u64().unwrap()
}

/// Waits until `done` holds, checking every 200 ms, for at most `limit` (a bound far above what
/// the property needs: the test asserts the outcome, the time is printed).
fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

async fn last_record_ms(env: &Env) -> i64 {
    let pool = sqlx::SqlitePool::connect(&env.db()).await.unwrap();
    let (ms,): (i64,) =
        sqlx::query_as("SELECT max(finished_at) FROM job_attempts WHERE couple_id IS NOT NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    ms
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Issue 10's scenario: one of two workers drains on SIGTERM after a few seconds, the other runs
/// on. The live worker deletes every thumbnail within its maximum wait, without exiting.
#[test]
fn a_live_worker_deletes_the_tail_within_the_sweep_max_wait() {
    let env = Env::new();
    seed_and_launch(&env, 40);
    let before = thumbnails(&env);
    assert!(before >= 40 * 3 * 5, "{before} thumbnails seeded");
    let a = work(&env, "tail-a", &["--sweep-max-wait", "8s"]);
    let b = work(&env, "tail-b", &["--sweep-max-wait", "8s"]);
    std::thread::sleep(Duration::from_secs(4));
    sigterm(&a);
    let a = finish(a);
    let a_err = String::from_utf8_lossy(&a.stderr).to_string();
    let jobs_done = wait_for(Duration::from_secs(900), || all_recorded(&env));
    assert!(
        jobs_done.is_some(),
        "the live worker did not finish the jobs"
    );
    let swept = wait_for(Duration::from_secs(120), || thumbnails(&env) == 0);
    let mut b = b;
    assert!(
        b.try_wait().unwrap().is_none(),
        "the live worker exited instead of sweeping"
    );
    sigterm(&b);
    let b = finish(b);
    println!(
        "jobs finished {jobs_done:?} after the SIGTERM; every thumbnail deleted {swept:?} later (max wait 8s)"
    );
    assert_eq!(
        thumbnails(&env),
        0,
        "thumbnails left by the live worker\nA: {a_err}\nB: {}",
        String::from_utf8_lossy(&b.stderr)
    );
    let s = status(&env);
    assert_eq!(
        photos_in(&s, "done"),
        s["photos_total"].as_u64().unwrap(),
        "{s:#}"
    );
}

/// The same run, but no live worker sweeps (both stop before their maximum wait comes): a fresh
/// `work --exit-when-idle` that receives no job sweeps the run it works for, judged from the
/// catalog, and exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_idle_worker_sweeps_a_run_it_received_no_job_of() {
    let env = Env::new();
    seed_and_launch(&env, 40);
    let a = work(&env, "stop-a", &["--sweep-max-wait", "1h"]);
    let b = work(&env, "stop-b", &["--sweep-max-wait", "1h"]);
    std::thread::sleep(Duration::from_secs(4));
    sigterm(&a);
    finish(a);
    let jobs_done = wait_for(Duration::from_secs(900), || all_recorded(&env));
    assert!(jobs_done.is_some(), "the jobs did not finish");
    sigterm(&b);
    finish(b);
    let left = thumbnails(&env);
    assert!(
        left > 0,
        "the stopped workers swept everything: the test proves nothing"
    );

    let started = Instant::now();
    let fresh = finish(work(&env, "fresh", &["--exit-when-idle"]));
    let took = started.elapsed();
    let out = String::from_utf8_lossy(&fresh.stdout);
    assert!(out.contains("0 jobs completed"), "{out}");
    println!("{left} thumbnails left by stopped workers; the fresh worker swept them and exited in {took:?}");
    assert_eq!(
        thumbnails(&env),
        0,
        "{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    let s = status(&env);
    assert_eq!(
        photos_in(&s, "done"),
        s["photos_total"].as_u64().unwrap(),
        "{s:#}"
    );
}

/// A purge mid-run loses messages; `launch --requeue` sends the couples not complete again and
/// the run completes. The last worker exits soon after its last record (figure printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_restores_messages_lost_to_a_purge() {
    let env = Env::new();
    seed_and_launch(&env, 20);
    let a = work(&env, "purged", &[]);
    wait_for(Duration::from_secs(120), || {
        let s = status(&env);
        photos_in(&s, "switched") + photos_in(&s, "done") > 0
    })
    .expect("the first jobs finish");
    let queue_db = env.queue().replace("?max_receives=1000", "");
    let pool = sqlx::SqlitePool::connect(&queue_db).await.unwrap();
    let purged = sqlx::query("DELETE FROM messages")
        .execute(&pool)
        .await
        .unwrap()
        .rows_affected();
    pool.close().await;
    assert!(purged > 0, "nothing to purge: the run finished first");
    sigterm(&a);
    finish(a);
    let s = status(&env);
    assert_ne!(s["complete"], true, "{s:#}");
    assert!(
        s["couples_unfinished"].as_u64().unwrap() > 0,
        "status shows the purged couples as enqueued but unfinished: {s:#}"
    );
    assert!(
        s["oldest_unfinished_age_secs"].is_u64(),
        "status gives the oldest unfinished couple's age: {s:#}"
    );
    let text = env.ok(&["status", "--db", &env.db()]);
    assert!(text.contains("oldest enqueued"), "{text}");

    let (db, queue) = (env.db(), env.queue());
    let out = env.ok(&["launch", "--db", &db, "--queue", &queue, "--requeue"]);
    assert!(out.contains("requeued"), "{out}");
    let fresh = finish(work(&env, "after-requeue", &["--exit-when-idle"]));
    let exited = now_ms();
    let tail = exited - last_record_ms(&env).await;
    println!(
        "purged {purged} messages; {out}the last worker exited {tail} ms after its last record"
    );
    let s = status(&env);
    assert_eq!(
        s["complete"],
        true,
        "{s:#}\n{}",
        String::from_utf8_lossy(&fresh.stderr)
    );
    assert_eq!(
        photos_in(&s, "done"),
        s["photos_total"].as_u64().unwrap(),
        "{s:#}"
    );
    assert_eq!(s["couples_unfinished"], 0, "{s:#}");
    assert!(s["oldest_unfinished_age_secs"].is_null(), "{s:#}");
    assert_eq!(thumbnails(&env), 0);
}

/// A run launched into one queue refuses another: a second launch and a worker both exit 1 with
/// a line naming the bound queue, and nothing is sent to the wrong one.
#[test]
fn a_run_refuses_a_second_queue() {
    let env = Env::new();
    seed_and_launch(&env, 2);
    let wrong = format!("sqlite://{}", env.path("typo-queue.db").display());
    let db = env.db();
    for args in [
        vec!["launch", "--db", &db, "--queue", &wrong],
        vec![
            "work",
            "--db",
            &db,
            "--store",
            &env.store(),
            "--queue",
            &wrong,
            "--exit-when-idle",
            "--spot-watch",
            "off",
        ],
    ] {
        let started = Instant::now();
        let out = env.recast(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("recast: error:"))
            .unwrap_or_default();
        assert!(line.contains("is bound to the queue"), "{err}");
        assert!(line.contains("pass --queue"), "{err}");
        println!("{} refused in {:?}", args[0], started.elapsed());
    }
    // The right queue is still accepted.
    env.ok(&["launch", "--db", &db, "--queue", &env.queue()]);
}

//! Configuration mistakes end to end, through the real binary against PostgreSQL and moto on
//! 127.0.0.1 (scripts/test starts them): each exits 1 within seconds with one line naming the
//! mistake and its fix, instead of retrying forever.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::Env;

/// Runs `recast` and returns its output and time; insists on exit 1 within 20 s.
fn refused(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> (String, Duration) {
    let started = Instant::now();
    let mut cmd = env.recast(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A retry loop would never end: kill it at 20 s and fail.
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    let out: Output = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?} after {took:?}: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("recast: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_owned();
    println!("{:?} -> exit 1 in {took:?}: {line}", args[0]);
    (line, took)
}

/// A seeded and launched run on the test servers.
async fn launched() -> Env {
    let env = Env::on_services().await;
    let photos = env.photos_with_corrupt();
    env.ok(&[
        "seed",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--photos",
        photos.to_str().unwrap(),
        "--couples",
        "2",
        "--max-photos",
        "2",
    ]);
    env.ok(&["launch", "--db", &env.db(), "--queue", &env.queue()]);
    env
}

fn work_args<'a>(db: &'a str, store: &'a str, queue: &'a str) -> Vec<&'a str> {
    vec![
        "work",
        "--db",
        db,
        "--store",
        store,
        "--queue",
        queue,
        "--exit-when-idle",
        "--spot-watch",
        "off",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_does_not_exist_is_named() {
    let env = launched().await;
    let (db, store) = (env.db(), env.store());
    let missing = format!("{}-nope", env.sqs_queue().unwrap());
    let (line, _) = refused(&env, &work_args(&db, &store, &missing), &[]);
    assert!(line.contains("queue does not exist"), "{line}");
    assert!(line.contains("recast queue create"), "{line}");
    let (line, _) = refused(&env, &["launch", "--db", &db, "--queue", &missing], &[]);
    assert!(line.contains("queue does not exist"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_does_not_exist_is_named() {
    let env = launched().await;
    let (db, queue) = (env.db(), env.queue());
    let store = "s3://recast-no-such-bucket-here/migration";
    let (line, _) = refused(&env, &work_args(&db, store, &queue), &[]);
    assert!(line.contains("bucket does not exist"), "{line}");
    assert!(line.contains("--store"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_named() {
    let env = launched().await;
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    let cmd_env = [
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ];
    let (line, _) = refused(&env, &work_args(&db, &store, &queue), &cmd_env);
    assert!(line.contains("no AWS credentials"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_catalog_is_named() {
    let env = Env::new();
    let empty = recast_catalog::conformance::fresh_postgres().await;
    let out = env.path("report");
    let (line, _) = refused(
        &env,
        &["report", "--db", &empty, "--out", out.to_str().unwrap()],
        &[],
    );
    assert!(line.contains("no recast schema"), "{line}");
    // A mistyped SQLite path for a reading verb: named, and not created.
    let typo = format!("sqlite://{}", env.path("catalgo.db").display());
    let (line, _) = refused(
        &env,
        &["report", "--db", &typo, "--out", out.to_str().unwrap()],
        &[],
    );
    assert!(line.contains("catalog"), "{line}");
    assert!(
        !env.path("catalgo.db").exists(),
        "a reading verb created the catalog"
    );
    // `work` on an empty database: no run to work for.
    let (line, _) = refused(&env, &work_args(&empty, &env.store(), &env.queue()), &[]);
    assert!(
        line.contains("does not exist; create it with `recast launch`"),
        "{line}"
    );
}

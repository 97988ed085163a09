//! The CLI verbs end to end, through the real binary.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use common::{assert_success, Env};
use recast_core::JobMessage;

/// A folder with one small JPEG, for seeds where the photos themselves do not matter.
fn tiny_photos(env: &Env) -> String {
    let dir = env.path("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    img.save(dir.join("tiny.jpg")).unwrap();
    dir.to_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_launch_resumes_and_never_enqueues_a_couple_twice() {
    // Enough couples for many of launch's pages (1,000 couples each), so that a kill often lands
    // between two checkpoints; catalog rows only, since launch reads no photo.
    const COUPLES: usize = 20_000;
    let env = Env::new();
    let db = env.db();
    let catalog = recast_catalog::open(&db).await.unwrap();
    catalog
        .add_couples(&common::catalog_couples(COUPLES as i64, |_| false))
        .await
        .unwrap();
    // How long a whole launch takes here (another run, into a queue of its own), so that the
    // kills below land inside a launch however fast this machine is.
    let timing_queue = format!("sqlite://{}", env.path("timing.db").display());
    let started = std::time::Instant::now();
    env.ok(&[
        "launch",
        "--db",
        &db,
        "--queue",
        &timing_queue,
        "--run",
        "r0",
    ]);
    let mut whole = started.elapsed().as_millis() as u64;
    // Kill launches of one run at random moments until some were killed half-way through. A
    // launch that finished before its kill (the timed one ran on a busier machine) leaves that
    // run useless: the next run, into a queue of its own, is killed sooner.
    let mut halfway = 0;
    let mut attempt = 1;
    let (mut run, mut queue) = (String::new(), String::new());
    for _ in 0..40 {
        run = format!("r{attempt}");
        queue = format!(
            "sqlite://{}?max_receives=1000",
            env.path(&format!("queue-{attempt}.db")).display()
        );
        let launch = ["launch", "--db", &db, "--queue", &queue, "--run", &run];
        let mut child = env.recast(&launch).stdout(Stdio::null()).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(fastrand::u64(
            whole / 10..whole * 9 / 10 + 1,
        )));
        child.kill().unwrap();
        child.wait().unwrap();
        let Ok(stored) = catalog.run(Some(&run)).await else {
            continue;
        };
        let enqueued = catalog.checkpoint(&stored).await.unwrap().enqueued;
        if enqueued as usize == COUPLES {
            if halfway > 0 {
                break;
            }
            attempt += 1;
            whole = whole * 2 / 3;
            continue;
        }
        if enqueued > 0 {
            halfway += 1;
        }
        if halfway >= 3 {
            break;
        }
    }
    assert!(
        halfway >= 1,
        "no launch was killed half-way; the test proves nothing"
    );
    let launch = ["launch", "--db", &db, "--queue", &queue, "--run", &run];
    let out = env.ok(&launch);
    assert!(out.contains("resumed"), "{out}");
    assert!(out.contains(&format!("{COUPLES} in all")), "{out}");
    let again = env.ok(&launch);
    assert!(again.contains("enqueued 0 couples now"), "{again}");

    let q = recast_queue::open(&queue).await.unwrap();
    let mut seen = HashSet::new();
    let mut total = 0;
    loop {
        let got = q
            .receive(10, Duration::from_secs(600), Duration::ZERO)
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            let job = JobMessage::parse(&m.body).unwrap();
            assert_eq!(job.run, run);
            assert!(!job.photos.unwrap().is_empty());
            seen.insert(job.couple);
            total += 1;
        }
    }
    assert_eq!(
        (total, seen.len()),
        (COUPLES, COUPLES),
        "couples enqueued twice or missing"
    );
}

#[test]
fn status_reports_a_finished_run_in_text_and_json() {
    let env = Env::new();
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    let photos = tiny_photos(&env);
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &store,
        "--photos",
        &photos,
        "--couples",
        "4",
        "--max-photos",
        "2",
    ]);
    env.ok(&[
        "launch",
        "--db",
        &db,
        "--queue",
        &queue,
        "--originals",
        "delete",
        "--quality",
        "70",
    ]);
    let out = env.ok(&[
        "work",
        "--db",
        &db,
        "--store",
        &store,
        "--queue",
        &queue,
        "--exit-when-idle",
        "--poll-wait",
        "100ms",
    ]);
    assert!(out.contains("4 jobs completed"), "{out}");
    let text = env.ok(&["status", "--db", &db]);
    assert!(text.contains("complete"), "{text}");
    assert!(text.contains("originals: delete"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--db", &db, "--json"])).unwrap();
    assert_eq!(json["complete"], true);
    // The worker registered in the run's fleet and left it when it was done.
    assert_eq!(json["fleet"]["live_workers"], 0);
    assert_eq!(json["fleet"]["workers"].as_array().unwrap().len(), 1);
    assert_eq!(json["fleet"]["workers"][0]["stop_reason"], "idle");
    assert_eq!(json["fleet"]["budgets"]["max_in_flight"], 100_000);
    assert!(
        text.contains("fleet     0 live of 1 registered workers"),
        "{text}"
    );
    let photos = json["photos_total"].as_u64().unwrap();
    assert!(photos >= 4);
    assert_eq!(
        json["status"]["by_state"]["done"]["photos"].as_u64(),
        Some(photos)
    );
    // Under delete only the WebPs are left: one object per photo.
    assert_eq!(json["objects_after"].as_u64(), Some(photos));
    assert_eq!(json["status"]["requests"]["s3_get"].as_u64(), Some(photos));
    let left = walk(&env.store_dir());
    assert_eq!(left.len() as u64, photos, "{left:?}");
    assert!(left.iter().all(|k| k.ends_with(".webp")), "{left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path().to_string_lossy().into_owned());
        }
    }
    out
}

#[test]
fn flags_read_from_the_environment_and_bad_input_is_a_clear_error() {
    let env = Env::new();
    let out = env
        .recast(&["status"])
        .env("RECAST_DB", env.db())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no recast schema") || err.contains("no catalog file"),
        "{err}"
    );

    // A mistyped catalog path is named, and nothing is created or migrated at it: status reads
    // through a handle that has no writing method.
    let typo = env.path("catlog.db");
    let url = format!("sqlite://{}", typo.display());
    for args in [
        vec!["status", "--db", &url],
        vec!["status", "--db", &url, "--watch"],
    ] {
        let out = env.recast(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no catalog file"), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }

    let out = env
        .recast(&["launch", "--db", &env.db(), "--queue", "carrier-pigeon://x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad queue URL"));

    let out = env
        .recast(&[
            "launch",
            "--db",
            &env.db(),
            "--queue",
            &env.queue(),
            "--originals",
            "shred",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a bad flag value is a usage error"
    );

    let out = env
        .recast(&[
            "seed",
            "--db",
            &env.db(),
            "--store",
            &env.store(),
            "--photos",
            "/nonexistent",
            "--couples",
            "1",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent"));
}

#[test]
fn demo_runs_end_to_end_and_prints_its_table() {
    let env = Env::new();
    let dir = env.path("demo");
    let out = env
        .recast(&[
            "demo",
            "--dir",
            dir.to_str().unwrap(),
            "--couples",
            "4",
            "--max-photos",
            "2",
            "--synth-width",
            "320",
        ])
        .output()
        .unwrap();
    assert_success(&out, &["demo"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for line in [
        "objects",
        "bytes",
        "failed photos",
        "elapsed",
        "end-to-end",
        "codec ceiling",
        "ratio",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }
    assert!(text.contains("failed photos            0"), "{text}");
    // Running it again starts afresh in the same folder.
    let again = env
        .recast(&[
            "demo",
            "--dir",
            dir.to_str().unwrap(),
            "--couples",
            "2",
            "--synth-width",
            "320",
            "--plan",
            "--plan-sample",
            "4",
        ])
        .output()
        .unwrap();
    assert_success(&again, &["demo again"]);
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("2 couples"), "{again}");
    // With --plan, the plan made before the run is set against what the run measured.
    assert!(again.contains("plan against reality"), "{again}");
    for row in ["bytes after", "duration"] {
        let line = again
            .lines()
            .find(|l| l.trim_start().starts_with(row))
            .unwrap_or_else(|| panic!("no {row:?} row in:\n{again}"));
        assert!(line.ends_with('%'), "{line}");
    }
}

//! Per-photo quality settings through the real binary: frozen in the run like the others.

mod common;

use common::Env;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_run_keeps_its_own_target_score_and_max_quality() {
    let env = Env::new();
    let (db, queue) = (env.db(), env.queue());
    let dir = env.path("tiny");
    std::fs::create_dir_all(&dir).unwrap();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]))
        .save(dir.join("tiny.jpg"))
        .unwrap();
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &env.store(),
        "--photos",
        dir.to_str().unwrap(),
        "--couples",
        "3",
        "--thumbs",
        "1",
    ]);
    let launch = |target: &str, max: &str| {
        env.ok(&[
            "launch",
            "--db",
            &db,
            "--queue",
            &queue,
            "--run",
            "r1",
            "--target-score",
            target,
            "--max-quality",
            max,
        ])
    };
    let created = launch("62.5", "90");
    assert!(created.contains("created"), "{created}");
    assert!(
        created.contains("target score 62.5, max quality 90"),
        "{created}"
    );
    let resumed = launch("85", "99");
    assert!(resumed.contains("resumed"), "{resumed}");
    assert!(
        resumed.contains("target score 62.5, max quality 90"),
        "{resumed}"
    );

    let catalog = recast_catalog::open(&db).await.unwrap();
    let run = catalog.run(Some("r1")).await.unwrap();
    assert_eq!(run.settings.target_score, Some(62.5));
    assert_eq!(run.settings.max_quality, 90.0);

    // Out of range: refused before anything is created, saying what is allowed.
    let out = env
        .recast(&[
            "launch",
            "--db",
            &db,
            "--queue",
            &queue,
            "--run",
            "r2",
            "--target-score",
            "120",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("target score 120 is outside 0..=100"), "{err}");
    assert!(catalog.run(Some("r2")).await.is_err());

    // Without --target-score the per-photo search is off: every photo at the fixed quality.
    let fixed = env.ok(&[
        "launch",
        "--db",
        &db,
        "--queue",
        &queue,
        "--run",
        "r3",
        "--quality",
        "75",
    ]);
    assert!(fixed.contains("quality 75)"), "{fixed}");
    let run = catalog.run(Some("r3")).await.unwrap();
    assert_eq!(
        (run.settings.target_score, run.settings.quality),
        (None, 75.0)
    );
}

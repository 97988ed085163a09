//! `recast status` reads counters kept by the catalog's triggers; after a real demo run (photos
//! converted, kept, failed, swept, originals deleted) they must equal a full recount. `launch`
//! enqueues each couple once into either queue, in pages, and status counts what it enqueued.

mod common;

use common::{assert_success, Env};

#[test]
fn status_agrees_with_a_recount_after_a_demo_run() {
    let env = Env::new();
    // Two good photos and a corrupt one, cycled through the couples: some photos fail.
    let all = env.photos_with_corrupt();
    let photos = env.path("few");
    std::fs::create_dir_all(&photos).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&all)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let corrupt = names.iter().position(|n| n == "zz-corrupt.jpg").unwrap();
    for name in names.iter().take(2).chain([&names[corrupt]]) {
        std::fs::copy(all.join(name), photos.join(name)).unwrap();
    }
    let dir = env.path("demo");
    let demo = [
        "demo",
        "--dir",
        dir.to_str().unwrap(),
        "--photos",
        photos.to_str().unwrap(),
        "--couples",
        "6",
        "--max-photos",
        "3",
        "--thumbs",
        "2",
        "--originals",
        "delete",
    ];
    let out = env.recast(&demo).output().unwrap();
    assert_success(&out, &demo);
    let db = format!("sqlite://{}", dir.join("catalog.db").display());
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--db", &db, "--json"];
        args.extend_from_slice(extra);
        let out = env.recast(&args).output().unwrap();
        assert_success(&out, &args);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        (json, String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (counted, _) = status(&[]);
    let (scanned, note) = status(&["--recount"]);
    assert!(
        note.contains("agree"),
        "the recount found drifted counters: {note}"
    );
    assert_eq!(counted["status"], scanned["status"]);
    assert_eq!(counted["objects_after"], scanned["objects_after"]);
    let photos_total = counted["photos_total"].as_u64().unwrap();
    assert!(photos_total > 0, "{counted}");
    assert!(
        counted["status"]["failures"]
            .as_object()
            .is_some_and(|f| !f.is_empty()),
        "the corrupt photo is a failure: {counted}"
    );
    assert_eq!(counted["complete"], true, "{counted}");
}

/// Launches couples 1..=n of a fresh catalog at `db` into `queue`, then checks that the queue
/// holds one message per couple with photos (each couple once), that `status` counts them
/// enqueued and unfinished, and that a second launch sends nothing.
async fn launch_enqueues_each_couple_once(env: &Env, db: &str, queue: &str, n: i64) {
    let catalog = recast_catalog::open(db).await.unwrap();
    catalog
        .add_couples(&common::catalog_couples(n, |c| c % 7 == 0))
        .await
        .unwrap();
    catalog.close().await;
    let with_photos = (1..=n).filter(|c| c % 7 != 0).count() as u64;
    let launch = ["launch", "--db", db, "--queue", queue, "--run", "r"];
    let out = env.ok(&launch);
    assert!(
        out.contains(&format!(
            "enqueued {with_photos} couples now, {with_photos} in all"
        )),
        "{out}"
    );
    let q = recast_queue::open(queue).await.unwrap();
    let mut couples = std::collections::HashSet::new();
    loop {
        let got = q
            .receive(
                10,
                std::time::Duration::from_secs(600),
                std::time::Duration::ZERO,
            )
            .await
            .unwrap();
        if got.is_empty() {
            break;
        }
        for m in got {
            let job = recast_core::JobMessage::parse(&m.body).unwrap();
            assert!(
                couples.insert(job.couple),
                "couple {:?} sent twice",
                job.couple
            );
        }
    }
    assert_eq!(
        couples.len() as u64,
        with_photos,
        "one message per couple with photos"
    );
    let status = env.ok(&["status", "--db", db, "--run", "r", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(json["status"]["couples_enqueued"], with_photos, "{json}");
    assert_eq!(json["status"]["couples_total"], n, "{json}");
    assert_eq!(json["status"]["producer_finished"], true, "{json}");
    assert_eq!(json["couples_unfinished"], with_photos, "{json}");
    let again = env.ok(&launch);
    assert!(again.contains("enqueued 0 couples now"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_into_the_sqlite_queue_enqueues_each_couple_once() {
    let env = Env::new();
    // More than two of launch's pages, not a whole number of batches.
    launch_enqueues_each_couple_once(&env, &env.db(), &env.queue(), 2_345).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_into_sqs_enqueues_each_couple_once() {
    let env = Env::on_services().await;
    let queue = env.sqs_queue().unwrap();
    // More than ten batches, so that batches go out together; few, since moto slows down as its
    // queue fills.
    launch_enqueues_each_couple_once(&env, &env.db(), &queue, 157).await;
}

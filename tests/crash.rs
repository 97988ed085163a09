//! The crash test: a real worker process SIGKILLed at random moments, again and again, until the
//! run completes; then nothing may be lost and nothing may be left behind.

mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Env;
use recast_core::{webp_key, PhotoState, Tally};

/// Kills of a running worker before it may finish.
const KILLS: u32 = 10;
/// Upper bound of the whole test, so a hang fails loudly instead of eating CI's time.
const DEADLINE: Duration = Duration::from_secs(600);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_nothing() {
    crash_test(Env::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_workers_lose_nothing_on_postgres_s3_sqs() {
    crash_test(Env::on_services().await).await;
}

async fn crash_test(env: Env) {
    let photos = env.photos_with_corrupt();
    // On the services the queue is SQS (moto), else the embedded one.
    let queue = env.sqs_queue().unwrap_or_else(|| env.queue());
    let (db, store) = (env.db(), env.store());
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &store,
        "--photos",
        photos.to_str().unwrap(),
        "--couples",
        "50",
        "--max-photos",
        "3",
    ]);
    env.ok(&["launch", "--db", &db, "--queue", &queue]);

    let started = Instant::now();
    let work = [
        "work",
        "--db",
        &db,
        "--store",
        &store,
        "--queue",
        &queue,
        "--exit-when-idle",
        "--visibility-timeout",
        "2s",
        "--poll-wait",
        "200ms",
        "--sweep-lease",
        "3s",
    ];
    let mut kills = 0;
    let mut rng = fastrand::Rng::with_seed(
        std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..)),
    );
    loop {
        assert!(
            started.elapsed() < DEADLINE,
            "the run did not complete in {DEADLINE:?}"
        );
        let mut child = env.recast(&work).stdout(Stdio::null()).spawn().unwrap();
        if kills < KILLS {
            let life = Duration::from_millis(rng.u64(150..1500));
            tokio::time::sleep(life).await;
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "worker exited with {status}");
        break;
    }
    assert!(
        kills >= KILLS,
        "only {kills} kills before the run completed; the test proves too little"
    );

    let catalog = recast_catalog::open(&db).await.unwrap();
    let run = catalog.run(None).await.unwrap();
    let status = catalog.status(&run).await.unwrap();
    assert!(status.is_complete(), "{status:?}");
    let progress: std::collections::HashMap<_, _> = catalog
        .all_progress(&run)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.photo, r))
        .collect();
    let store_handle = recast_store::open(&store).await.unwrap();
    let mut jobs = Vec::new();
    let mut after = None;
    loop {
        let page = catalog
            .couples_after(after, 100, &Tally::default())
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.couple);
        jobs.extend(page);
    }
    let (mut migrated, mut failed) = (0, 0);
    for photo in jobs.iter().flat_map(|j| &j.photos) {
        let row = progress
            .get(&photo.id)
            .unwrap_or_else(|| panic!("photo {} has no progress", photo.id));
        let original = store_handle
            .get(&photo.key)
            .await
            .expect("an original was deleted under keep");
        match row.state {
            PhotoState::Done => {
                migrated += 1;
                let webp = store_handle
                    .get(&webp_key(&photo.key))
                    .await
                    .expect("a done photo has no WebP");
                assert_eq!(row.webp.as_ref().unwrap().bytes, webp.len() as u64);
                assert_eq!(
                    row.webp.as_ref().unwrap().crc32c,
                    recast_store::crc32c(&webp)
                );
                let w = image::load_from_memory(&webp).expect("the WebP decodes");
                let o = image::load_from_memory(&original).unwrap();
                assert_eq!(
                    (w.width(), w.height()),
                    (o.width(), o.height()),
                    "photo {}",
                    photo.key
                );
                for t in &photo.thumbs {
                    assert!(
                        store_handle.head(t).await.unwrap().is_none(),
                        "thumbnail {t} of a migrated photo remains"
                    );
                }
            }
            PhotoState::Failed => {
                failed += 1;
                assert_eq!(row.failure.as_deref(), Some("undecodable"), "{}", photo.key);
                assert!(
                    original.starts_with(b"this file is not a JPEG"),
                    "a real photo failed: {}",
                    photo.key
                );
                for t in &photo.thumbs {
                    assert!(
                        store_handle.head(t).await.unwrap().is_some(),
                        "thumbnail {t} of a failed photo was deleted"
                    );
                }
            }
            other => panic!("photo {} ended {other}", photo.key),
        }
    }
    assert!(
        migrated > 50 && failed > 0,
        "migrated {migrated}, failed {failed}"
    );

    let q = recast_queue::open(&queue).await.unwrap();
    let stats = q.stats().await.unwrap();
    assert_eq!(
        (stats.visible, stats.in_flight, stats.dead),
        (0, 0, 0),
        "queue not empty after the run"
    );

    // No staging files were left behind by the kills.
    let leftovers: HashSet<String> = store_handle
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert!(leftovers.iter().all(|k| !k.contains("staging")));

    let again = env.ok(&["launch", "--db", &db, "--queue", &queue]);
    assert!(again.contains("enqueued 0 couples now"), "{again}");
    assert_eq!(q.stats().await.unwrap().visible, 0);
    eprintln!(
        "crash test: {kills} kills, {migrated} migrated, {failed} failed, {:?}",
        started.elapsed()
    );
}

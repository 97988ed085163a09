//! `recast_ops::launch` as a library, against a real SQLite catalog and the embedded SQLite queue:
//! one message per couple with photos, checkpointed by page, so that launching again sends
//! nothing twice, and `requeue` sends what the run has not finished.

use recast_core::RunSettings;
use recast_ops::launch::{launch, requeue};

/// `n` couples; every tenth has no photo (nothing to enqueue for it).
fn couples(n: i64) -> Vec<recast_catalog::NewCouple> {
    recast_catalog::conformance::bare_couples(n, 10)
}

#[tokio::test]
async fn a_launch_enqueues_each_couple_once_and_a_second_one_resumes_with_nothing_to_send() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = recast_catalog::open(&format!("sqlite://{}/c.db", dir.path().display()))
        .await
        .unwrap();
    let queue = recast_queue::open(&format!("sqlite://{}/q.db", dir.path().display()))
        .await
        .unwrap();
    // More than two of launch's pages of 1,000 couples.
    catalog.add_couples(&couples(2_500)).await.unwrap();
    let settings = RunSettings::default();

    let (run, first) = launch(catalog.as_ref(), queue.as_ref(), "r", &settings)
        .await
        .unwrap();
    assert!(first.created);
    assert_eq!((first.enqueued_now, first.enqueued_total), (2_250, 2_250));
    assert_eq!(queue.stats().await.unwrap().visible, 2_250);

    let (_, again) = launch(catalog.as_ref(), queue.as_ref(), "r", &settings)
        .await
        .unwrap();
    assert!(!again.created);
    assert_eq!((again.enqueued_now, again.enqueued_total), (0, 2_250));
    assert_eq!(queue.stats().await.unwrap().visible, 2_250);

    // Nothing is finished yet: requeue sends every couple with photos once more.
    assert_eq!(
        requeue(catalog.as_ref(), queue.as_ref(), &run)
            .await
            .unwrap(),
        2_250
    );
    assert_eq!(queue.stats().await.unwrap().visible, 4_500);
}

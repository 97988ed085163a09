//! The age of a run's oldest unfinished couple (`status`'s "oldest enqueued ... ago"), on every
//! backend: a couple counts from the producer checkpoint that covers it until its complete attempt;
//! a couple that completed before the checkpoint reached it (a fast worker) never counts; attempts
//! that did not complete the couple change nothing; a second checkpoint over the same couples
//! (`launch --requeue`) keeps their first time; a requeue reads the open couples. And a photo set
//! aside by the sweeper (its thumbnails refused) is neither claimed nor waited for until unblocked.

use recast_core::{CoupleId, PhotoId, RunSettings, Tally, TallySnapshot};

use crate::{
    Catalog, JobAttempt, NewCouple, NewPhoto, NewThumbnail, ProgressUpdate, Run, WebpRecord,
};

fn attempt(run: &Run, couple: i64, outcome: &str) -> JobAttempt {
    JobAttempt {
        run: run.id,
        couple: Some(CoupleId(couple)),
        worker: "w".into(),
        outcome: outcome.parse().expect("a known outcome"),
        photos: 0,
        requests: TallySnapshot::default(),
        started_at_ms: 1,
        finished_at_ms: 2,
    }
}

async fn oldest(c: &dyn Catalog, run: &Run) -> Option<i64> {
    let counted = c.status(run).await.unwrap().oldest_unfinished_enqueued_ms;
    let recounted = c.recount(run).await.unwrap().oldest_unfinished_enqueued_ms;
    assert_eq!(counted, recounted, "status and --recount disagree");
    counted
}

/// Runs on a fresh, empty catalog.
pub async fn oldest_unfinished_follows_checkpoints_and_completions(c: &dyn Catalog) {
    let tally = Tally::default();
    let couples: Vec<NewCouple> = (1..=8)
        .map(|i| NewCouple {
            id: CoupleId(i),
            photos: Vec::new(),
        })
        .collect();
    c.add_couples(&couples).await.unwrap();
    let (run, _) = c.ensure_run("open", &RunSettings::default()).await.unwrap();
    assert_eq!(oldest(c, &run).await, None, "nothing enqueued yet");

    let before = now_ms();
    c.save_checkpoint(&run, CoupleId(4), 4, &tally)
        .await
        .unwrap();
    let first = oldest(c, &run).await.expect("couples 1-4 are enqueued");
    assert!(first >= before && first <= now_ms(), "{first} is not now");

    for couple in [1, 2, 4] {
        c.record_attempt(&attempt(&run, couple, "complete"), &tally)
            .await
            .unwrap();
    }
    c.record_attempt(&attempt(&run, 3, "released"), &tally)
        .await
        .unwrap();
    assert_eq!(oldest(c, &run).await, Some(first), "couple 3 is unfinished");

    // Couple 6 completes before the producer's checkpoint covers it.
    c.record_attempt(&attempt(&run, 6, "complete"), &tally)
        .await
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    c.save_checkpoint(&run, CoupleId(8), 4, &tally)
        .await
        .unwrap();
    // A second checkpoint over the same couples keeps their first time.
    c.save_checkpoint(&run, CoupleId(8), 0, &tally)
        .await
        .unwrap();
    assert_eq!(
        oldest(c, &run).await,
        Some(first),
        "couple 3 is still the oldest"
    );

    c.record_attempt(&attempt(&run, 3, "complete"), &tally)
        .await
        .unwrap();
    let later = oldest(c, &run)
        .await
        .expect("couples 5, 7, 8 are unfinished");
    assert!(
        later > first,
        "the second checkpoint's time: {later} <= {first}"
    );
    for couple in [5, 7] {
        c.record_attempt(&attempt(&run, couple, "complete"), &tally)
            .await
            .unwrap();
    }
    assert_eq!(oldest(c, &run).await, Some(later), "couple 8 is unfinished");
    c.record_attempt(&attempt(&run, 8, "complete"), &tally)
        .await
        .unwrap();
    assert_eq!(
        oldest(c, &run).await,
        None,
        "every enqueued couple completed (couple 6 was never open)"
    );
}

/// Runs on a fresh, empty catalog.
pub async fn a_set_aside_photo_is_not_swept_until_unblocked(c: &dyn Catalog) {
    let tally = Tally::default();
    let photos = |couple: i64| -> Vec<NewPhoto> {
        (0..2)
            .map(|i| NewPhoto {
                id: PhotoId(couple * 10 + i),
                original_key: format!("photos/{couple}/{i}.jpg"),
                format: "jpeg".into(),
                bytes: 10,
                width: None,
                height: None,
                thumbnails: vec![NewThumbnail {
                    key: format!("thumbs/{couple}/{i}_80.jpg"),
                    bytes: 1,
                }],
            })
            .collect()
    };
    c.add_couples(&[NewCouple {
        id: CoupleId(1),
        photos: photos(1),
    }])
    .await
    .unwrap();
    let (run, _) = c
        .ensure_run("aside", &RunSettings::default())
        .await
        .unwrap();
    c.save_checkpoint(&run, CoupleId(1), 1, &tally)
        .await
        .unwrap();
    let requeued = c
        .unfinished_couples_after(&run, None, 10, &tally)
        .await
        .unwrap();
    assert_eq!(
        requeued.len(),
        1,
        "the enqueued, unfinished couple is requeued"
    );
    assert_eq!(requeued[0].photos.len(), 2);
    let updates: Vec<ProgressUpdate> = [10, 11]
        .map(|p| ProgressUpdate::Switched {
            photo: PhotoId(p),
            webp: WebpRecord {
                key: format!("photos/1/{p}.webp"),
                bytes: 5,
                crc32c: 1,
            },
        })
        .into();
    c.record(&run, CoupleId(1), &updates, None, &tally)
        .await
        .unwrap();
    assert_eq!(c.sweep_backlog(&run, &tally).await.unwrap(), 2);

    c.block_sweep(&run, PhotoId(10), "AccessDenied: locked", &tally)
        .await
        .unwrap();
    assert_eq!(c.sweep_backlog(&run, &tally).await.unwrap(), 1);
    let claimed = c
        .claim_sweep(&run, "w", 10, std::time::Duration::from_secs(60), &tally)
        .await
        .unwrap();
    let ids: Vec<PhotoId> = claimed.iter().map(|i| i.photo).collect();
    assert_eq!(ids, vec![PhotoId(11)], "the set-aside photo is not claimed");
    assert_eq!(c.status(&run).await.unwrap().sweep_blocked, 1);
    assert_eq!(c.recount(&run).await.unwrap().sweep_blocked, 1);

    assert_eq!(c.unblock_sweeps(&run).await.unwrap(), 1);
    assert_eq!(c.unblock_sweeps(&run).await.unwrap(), 0);
    assert_eq!(c.status(&run).await.unwrap().sweep_blocked, 0);
    c.release_sweep(&run, "w", &tally).await.unwrap();
    let claimed = c
        .claim_sweep(&run, "w", 10, std::time::Duration::from_secs(60), &tally)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "both photos are swept again");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn sqlite_oldest_unfinished_follows_checkpoints_and_completions() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = crate::SqliteCatalog::open(&url).await.unwrap();
        super::oldest_unfinished_follows_checkpoints_and_completions(&catalog).await;
    }

    #[tokio::test]
    async fn postgres_oldest_unfinished_follows_checkpoints_and_completions() {
        let url = crate::conformance::fresh_postgres().await;
        let catalog = crate::PgCatalog::open(&url, 4).await.unwrap();
        super::oldest_unfinished_follows_checkpoints_and_completions(&catalog).await;
    }

    #[tokio::test]
    async fn sqlite_a_set_aside_photo_is_not_swept_until_unblocked() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = crate::SqliteCatalog::open(&url).await.unwrap();
        super::a_set_aside_photo_is_not_swept_until_unblocked(&catalog).await;
    }

    #[tokio::test]
    async fn postgres_a_set_aside_photo_is_not_swept_until_unblocked() {
        let url = crate::conformance::fresh_postgres().await;
        let catalog = crate::PgCatalog::open(&url, 4).await.unwrap();
        super::a_set_aside_photo_is_not_swept_until_unblocked(&catalog).await;
    }
}

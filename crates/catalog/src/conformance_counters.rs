//! The counters behind `status` and `totals` must equal a full recount after every kind of write,
//! on every backend: adds, records (switched, kept, failed), advances, duplicate and late writes
//! (which change nothing), sweep claims, attempts; and a repair must bring drifted counters back.

use std::future::Future;
use std::pin::Pin;

use recast_core::{
    CoupleId, FailureReason, KeptReason, OriginalsPolicy, PhotoId, PhotoState, RunSettings, Tally,
    TallySnapshot,
};

use crate::{
    Catalog, JobAttempt, NewCouple, NewPhoto, NewThumbnail, ProgressUpdate, Run, WebpRecord,
};

/// Couples `first..first + n`, couple c with `c % 4` photos (some none), photo ids from
/// `first_photo`, each with `(c + 1) % 3` thumbnails, sizes varying so that sums catch a wrong row.
fn couples(first: i64, n: i64, first_photo: i64) -> Vec<NewCouple> {
    let mut photo = first_photo;
    (first..first + n)
        .map(|c| NewCouple {
            id: CoupleId(c),
            photos: (0..c % 4)
                .map(|_| {
                    photo += 1;
                    NewPhoto {
                        id: PhotoId(photo),
                        original_key: format!("photos/{c}/{photo}.jpg"),
                        format: "jpeg".into(),
                        bytes: 1000 + photo as u64,
                        width: (photo % 2 == 0).then_some(40),
                        height: Some(30),
                        thumbnails: (0..(c + 1) % 3)
                            .map(|s| NewThumbnail {
                                key: format!("thumbs/{c}/{photo}_{s}.jpg"),
                                bytes: 100 + s as u64,
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
        .collect()
}

fn webp(photo: i64) -> WebpRecord {
    WebpRecord {
        key: format!("photos/x/{photo}.webp"),
        bytes: 300 + photo as u64,
        crc32c: 7,
    }
}

fn attempt(run: &Run, couple: Option<i64>, outcome: &str, at: i64) -> JobAttempt {
    JobAttempt {
        run: run.id,
        couple: couple.map(CoupleId),
        worker: "w".into(),
        outcome: outcome.parse().expect("a known outcome"),
        photos: 1,
        requests: TallySnapshot {
            s3_get: 1,
            s3_put: 2,
            s3_delete_requests: 3,
            s3_deleted_objects: 4,
            sqs_requests: 5,
            db_statements: 6,
        },
        started_at_ms: at,
        finished_at_ms: at + 10,
    }
}

/// Asserts that the counted status of each run and the counted totals equal the recount.
async fn agree(c: &dyn Catalog, runs: &[&Run], step: &str) {
    assert_eq!(
        c.totals().await.unwrap(),
        c.recount_totals().await.unwrap(),
        "catalog totals after {step}"
    );
    for run in runs {
        let counted = serde_json::to_value(c.status(run).await.unwrap()).unwrap();
        let scanned = serde_json::to_value(c.recount(run).await.unwrap()).unwrap();
        assert_eq!(counted, scanned, "status of run {} after {step}", run.name);
    }
}

/// Runs on a fresh, empty catalog. `drift` changes the counters behind the catalog's back (raw
/// SQL on the backend's own connection) so that the repair is seen to work.
pub async fn counters_equal_a_recount(
    c: &dyn Catalog,
    drift: Pin<Box<dyn Future<Output = ()> + '_>>,
) {
    let tally = Tally::default();
    agree(c, &[], "nothing").await;
    c.add_couples(&couples(1, 12, 0)).await.unwrap();
    agree(c, &[], "the first add").await;
    let delete = RunSettings {
        originals: OriginalsPolicy::Delete,
        ..RunSettings::default()
    };
    let (a, _) = c.ensure_run("counted", &delete).await.unwrap();
    let (b, _) = c
        .ensure_run("other", &RunSettings::default())
        .await
        .unwrap();
    agree(c, &[&a, &b], "runs created").await;

    // Couple 1 has photo 1; couple 2 photos 2-3; couple 3 photos 4-6; couple 5 photo 7.
    c.record(
        &a,
        CoupleId(3),
        &[
            ProgressUpdate::Switched {
                photo: PhotoId(4),
                webp: webp(4),
            },
            ProgressUpdate::Kept {
                photo: PhotoId(5),
                original_key: "photos/3/5.jpg".into(),
                reason: KeptReason::AlreadyWebp,
                detail: "already".into(),
            },
            ProgressUpdate::Failed {
                photo: PhotoId(6),
                reason: FailureReason::Undecodable,
                detail: "x".into(),
            },
        ],
        Some(&attempt(&a, Some(3), "complete", 100)),
        &tally,
    )
    .await
    .unwrap();
    c.record(
        &a,
        CoupleId(2),
        &[ProgressUpdate::Failed {
            photo: PhotoId(2),
            reason: FailureReason::Undecodable,
            detail: "y".into(),
        }],
        Some(&attempt(&a, Some(2), "retry", 50)),
        &tally,
    )
    .await
    .unwrap();
    c.record(
        &b,
        CoupleId(1),
        &[ProgressUpdate::Switched {
            photo: PhotoId(1),
            webp: webp(1),
        }],
        None,
        &tally,
    )
    .await
    .unwrap();
    agree(c, &[&a, &b], "records").await;

    // A duplicate delivery and a late worker: the first write stands, nothing is counted twice.
    let late = c
        .record(
            &a,
            CoupleId(3),
            &[
                ProgressUpdate::Failed {
                    photo: PhotoId(4),
                    reason: FailureReason::Undecodable,
                    detail: "late".into(),
                },
                ProgressUpdate::Switched {
                    photo: PhotoId(6),
                    webp: webp(6),
                },
            ],
            None,
            &tally,
        )
        .await
        .unwrap();
    assert_eq!(late[&PhotoId(4)], PhotoState::Switched);
    assert_eq!(late[&PhotoId(6)], PhotoState::Failed);
    agree(c, &[&a, &b], "duplicate and late records").await;

    // Sweeps: a claim moves nothing; advances move forward once; backwards moves are ignored.
    let claimed = c
        .claim_sweep(&a, "s", 10, std::time::Duration::from_secs(60), &tally)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "photos 4 and 5 are sweepable");
    agree(c, &[&a, &b], "a sweep claim").await;
    let moves = [
        (PhotoId(4), PhotoState::ThumbsGone),
        (PhotoId(5), PhotoState::Done),
    ];
    c.advance(&a, &moves, &tally).await.unwrap();
    agree(c, &[&a, &b], "advances").await;
    c.advance(&a, &moves, &tally).await.unwrap();
    c.advance(
        &a,
        &[
            (PhotoId(5), PhotoState::ThumbsGone),
            (PhotoId(6), PhotoState::Done),
        ],
        &tally,
    )
    .await
    .unwrap();
    agree(c, &[&a, &b], "repeated and backward advances").await;
    c.advance(&a, &[(PhotoId(4), PhotoState::Done)], &tally)
        .await
        .unwrap();

    // Attempts: a second complete attempt of a couple counts it once; the producer's has none.
    for (couple, outcome, at) in [
        (Some(3), "complete", 200),
        (Some(2), "complete", 20),
        (None, "producer", 1),
        (Some(5), "retry", 300),
    ] {
        c.record_attempt(&attempt(&a, couple, outcome, at), &tally)
            .await
            .unwrap();
    }
    agree(c, &[&a, &b], "attempts").await;
    let s = c.status(&a).await.unwrap();
    assert_eq!(s.couples_complete, 2);
    assert_eq!(s.attempts, 6);
    assert_eq!(s.failures.get("undecodable"), Some(&2));
    assert_eq!(s.kept.get("already_webp"), Some(&1));
    assert_eq!(
        (s.first_started_ms, s.last_finished_ms),
        (Some(1), Some(310))
    );

    // More couples after the run began: they are pending.
    let before = c.status(&a).await.unwrap().photos_in(PhotoState::Pending);
    let (_, max_photo) = c.max_ids().await.unwrap();
    c.add_couples(&couples(100, 5, max_photo.0)).await.unwrap();
    let after = c.status(&a).await.unwrap().photos_in(PhotoState::Pending);
    assert!(
        after > before,
        "new photos are pending ({before} -> {after})"
    );
    agree(c, &[&a, &b], "a second add").await;

    // Drifted counters are seen by a recount and mended by a repair.
    drift.await;
    let counted = serde_json::to_value(c.status(&a).await.unwrap()).unwrap();
    let scanned = serde_json::to_value(c.recount(&a).await.unwrap()).unwrap();
    assert_ne!(counted, scanned, "the drift shows");
    c.repair_counters(&a).await.unwrap();
    agree(c, &[&a], "a repair").await;
    let other = serde_json::to_value(c.status(&b).await.unwrap()).unwrap();
    let other_scanned = serde_json::to_value(c.recount(&b).await.unwrap()).unwrap();
    assert_ne!(other, other_scanned, "a repair rewrites only its own run");
    c.repair_counters(&b).await.unwrap();
    c.repair_counters(&a).await.unwrap();
    agree(c, &[&a, &b], "repairs of both runs").await;
    // Counting goes on from the repaired rows.
    c.advance(&b, &[(PhotoId(1), PhotoState::ThumbsGone)], &tally)
        .await
        .unwrap();
    c.record(
        &b,
        CoupleId(5),
        &[ProgressUpdate::Switched {
            photo: PhotoId(7),
            webp: webp(7),
        }],
        Some(&attempt(&b, Some(5), "complete", 400)),
        &tally,
    )
    .await
    .unwrap();
    agree(c, &[&a, &b], "writes after the repairs").await;
}

/// Raw SQL that puts every counter table out of step (both backends run it as written).
pub const DRIFT: [&str; 3] = [
    "UPDATE catalog_counters SET photos = photos + 7",
    "UPDATE run_state_counters SET photos = photos + 3, webp_bytes = webp_bytes + 1",
    "UPDATE run_attempt_counters SET attempts = attempts + 2",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_counters_equal_a_recount() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/catalog.db", dir.path().display());
        let catalog = crate::SqliteCatalog::open(&url).await.unwrap();
        let drift = Box::pin(async {
            let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
            for sql in DRIFT {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        });
        counters_equal_a_recount(&catalog, drift).await;
    }

    #[tokio::test]
    async fn postgres_counters_equal_a_recount() {
        let url = crate::conformance::fresh_postgres().await;
        let catalog = crate::PgCatalog::open(&url, 4).await.unwrap();
        let drift = Box::pin(async {
            let pool = sqlx::PgPool::connect(&url).await.unwrap();
            for sql in DRIFT {
                sqlx::query(sql).execute(&pool).await.unwrap();
            }
            pool.close().await;
        });
        counters_equal_a_recount(&catalog, drift).await;
    }
}

//! The behaviour every [`Catalog`] backend must show, written once and run against each.
//! `run_all` expects a fresh, empty catalog.

use recast_core::{
    CoupleId, FailureReason, OriginalsPolicy, PhotoId, PhotoState, RunSettings, Tally,
    TallySnapshot,
};

use crate::{Catalog, JobAttempt, NewCouple, NewPhoto, NewThumbnail, ProgressUpdate, WebpRecord};

/// Three couples: 1 with photos 1..=3 (2 thumbnails each), 2 with none, 3 with photo 4.
pub(crate) fn sample() -> Vec<NewCouple> {
    let photo = |couple: i64, id: i64| NewPhoto {
        id: PhotoId(id),
        original_key: format!("photos/{couple}/{id}.jpg"),
        format: "jpeg".into(),
        bytes: 1000,
        width: Some(40),
        height: Some(30),
        thumbnails: [160, 80]
            .iter()
            .map(|s| NewThumbnail {
                key: format!("thumbs/{couple}/{id}_{s}.jpg"),
                bytes: 100,
            })
            .collect(),
    };
    vec![
        NewCouple {
            id: CoupleId(1),
            photos: (1..=3).map(|i| photo(1, i)).collect(),
        },
        NewCouple {
            id: CoupleId(2),
            photos: vec![],
        },
        NewCouple {
            id: CoupleId(3),
            photos: vec![photo(3, 4)],
        },
    ]
}

/// Couples 1..=`n`, couple `c` with one photo `c` (`photos/c/c.jpg`, no thumbnail), except that
/// every `empty_every`-th couple has none (0: none is empty): a catalog for the producer's tests.
pub fn bare_couples(n: i64, empty_every: i64) -> Vec<NewCouple> {
    (1..=n)
        .map(|c| NewCouple {
            id: CoupleId(c),
            photos: if empty_every > 0 && c % empty_every == 0 {
                vec![]
            } else {
                vec![NewPhoto {
                    id: PhotoId(c),
                    original_key: format!("photos/{c}/{c}.jpg"),
                    format: "jpeg".into(),
                    bytes: 1000,
                    width: None,
                    height: None,
                    thumbnails: vec![],
                }]
            },
        })
        .collect()
}

pub(crate) fn webp(photo: i64) -> WebpRecord {
    WebpRecord {
        key: format!("photos/x/{photo}.webp"),
        bytes: 300,
        crc32c: 0xdead_beef,
    }
}

/// A new, empty database on the PostgreSQL server that scripts/test starts (its URL in
/// `RECAST_TEST_POSTGRES`), for one test.
pub async fn fresh_postgres() -> String {
    use sqlx::Connection;
    let admin = std::env::var("RECAST_TEST_POSTGRES").expect(
        "RECAST_TEST_POSTGRES is not set: run the tests with scripts/test, which starts PostgreSQL",
    );
    let name = format!("recast_test_{:08x}", fastrand::u32(..));
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let mut url = url::Url::parse(&admin).unwrap();
    url.set_path(&name);
    url.to_string()
}

/// Seeds a fresh catalog with [`sample`]: what every case expects to find.
pub async fn seed(c: &dyn Catalog) {
    c.add_couples(&sample()).await.unwrap();
    assert_eq!(c.max_ids().await.unwrap(), (CoupleId(3), PhotoId(4)));
}

pub async fn runs_are_frozen(c: &dyn Catalog) {
    let s = RunSettings {
        quality: 70.0,
        ..RunSettings::default()
    };
    let (run, created) = c.ensure_run("frozen", &s).await.unwrap();
    assert!(created);
    assert_eq!(run.settings, s);
    let other = RunSettings {
        quality: 10.0,
        ..RunSettings::default()
    };
    let (again, created) = c.ensure_run("frozen", &other).await.unwrap();
    assert!(!created);
    assert_eq!(again.settings, s, "settings of an existing run changed");
    assert_eq!(c.run(None).await.unwrap().name, "frozen");
    assert!(c.run(Some("nope")).await.is_err());
}

pub async fn producer_pages_and_checkpoints(c: &dyn Catalog) {
    let tally = Tally::default();
    let (run, _) = c
        .ensure_run("producer", &RunSettings::default())
        .await
        .unwrap();
    assert_eq!(c.checkpoint(&run).await.unwrap().last_couple, None);
    let page = c.couples_after(None, 2, &tally).await.unwrap();
    assert_eq!(
        page.iter().map(|j| j.couple).collect::<Vec<_>>(),
        vec![CoupleId(1), CoupleId(2)]
    );
    assert_eq!(page[0].photos.len(), 3);
    assert_eq!(
        page[0].photos[0].thumbs,
        vec!["thumbs/1/1_160.jpg", "thumbs/1/1_80.jpg"]
    );
    assert!(page[1].photos.is_empty());
    c.save_checkpoint(&run, CoupleId(2), 1, &tally)
        .await
        .unwrap();
    let cp = c.checkpoint(&run).await.unwrap();
    assert_eq!(
        (cp.last_couple, cp.enqueued, cp.finished),
        (Some(CoupleId(2)), 1, false)
    );
    let rest = c.couples_after(cp.last_couple, 2, &tally).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].photos[0].key, "photos/3/4.jpg");
    // A checkpoint never moves back, and a batch saved twice is counted once.
    c.save_checkpoint(&run, CoupleId(1), 1, &tally)
        .await
        .unwrap();
    c.save_checkpoint(&run, CoupleId(2), 1, &tally)
        .await
        .unwrap();
    let cp = c.checkpoint(&run).await.unwrap();
    assert_eq!((cp.last_couple, cp.enqueued), (Some(CoupleId(2)), 1));
    c.finish_checkpoint(&run).await.unwrap();
    assert!(c.checkpoint(&run).await.unwrap().finished);
    assert_eq!(tally.snapshot().db_statements, 5);
    let photos = c.couple_photos(CoupleId(1), &tally).await.unwrap();
    assert_eq!(photos, page[0].photos);
}

pub async fn progress_moves_only_forward(c: &dyn Catalog) {
    let tally = Tally::default();
    let (run, _) = c
        .ensure_run("progress", &RunSettings::default())
        .await
        .unwrap();
    let couple = CoupleId(1);
    let first = vec![
        ProgressUpdate::Switched {
            photo: PhotoId(1),
            webp: webp(1),
        },
        ProgressUpdate::Failed {
            photo: PhotoId(2),
            reason: FailureReason::Undecodable,
            detail: "bad".into(),
        },
    ];
    let states = c.record(&run, couple, &first, None, &tally).await.unwrap();
    assert_eq!(states[&PhotoId(1)], PhotoState::Switched);
    assert_eq!(states[&PhotoId(2)], PhotoState::Failed);

    c.advance(&run, &[(PhotoId(1), PhotoState::Done)], &tally)
        .await
        .unwrap();
    // A duplicate worker records photo 1 again and tries to fail photo 2's neighbour: photo 1
    // stays done, photo 3 is recorded.
    let dup = vec![
        ProgressUpdate::Failed {
            photo: PhotoId(1),
            reason: FailureReason::MissingOriginal,
            detail: "gone".into(),
        },
        ProgressUpdate::Switched {
            photo: PhotoId(3),
            webp: webp(3),
        },
    ];
    let states = c.record(&run, couple, &dup, None, &tally).await.unwrap();
    assert_eq!(states[&PhotoId(1)], PhotoState::Done);
    assert_eq!(states[&PhotoId(3)], PhotoState::Switched);

    // Backward and sideways moves are ignored; forward ones apply.
    c.advance(
        &run,
        &[
            (PhotoId(1), PhotoState::ThumbsGone),
            (PhotoId(2), PhotoState::Done),
            (PhotoId(3), PhotoState::ThumbsGone),
        ],
        &tally,
    )
    .await
    .unwrap();
    let p = c.progress(&run, couple, &tally).await.unwrap();
    assert_eq!(p[&PhotoId(1)].state, PhotoState::Done);
    assert_eq!(p[&PhotoId(1)].webp, Some(webp(1)));
    assert_eq!(p[&PhotoId(2)].state, PhotoState::Failed);
    assert_eq!(p[&PhotoId(2)].failure.as_deref(), Some("undecodable"));
    assert_eq!(p[&PhotoId(3)].state, PhotoState::ThumbsGone);
    assert_eq!(p.len(), 3);
    assert!(c
        .progress(&run, CoupleId(3), &tally)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(tally.snapshot().db_statements, 6);
    // Another run sees none of it.
    let (other, _) = c
        .ensure_run("progress-2", &RunSettings::default())
        .await
        .unwrap();
    assert!(c.progress(&other, couple, &tally).await.unwrap().is_empty());
}

pub async fn status_adds_up(c: &dyn Catalog) {
    let tally = Tally::default();
    let settings = RunSettings {
        originals: OriginalsPolicy::Delete,
        ..RunSettings::default()
    };
    let (run, _) = c.ensure_run("status", &settings).await.unwrap();
    c.record(
        &run,
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
    c.advance(&run, &[(PhotoId(1), PhotoState::Done)], &tally)
        .await
        .unwrap();
    c.record(
        &run,
        CoupleId(3),
        &[ProgressUpdate::Failed {
            photo: PhotoId(4),
            reason: FailureReason::Undecodable,
            detail: "x".into(),
        }],
        None,
        &tally,
    )
    .await
    .unwrap();
    let requests = TallySnapshot {
        s3_get: 1,
        s3_put: 1,
        s3_delete_requests: 1,
        s3_deleted_objects: 3,
        sqs_requests: 2,
        db_statements: 3,
    };
    c.record_attempt(
        &JobAttempt {
            run: run.id,
            couple: Some(CoupleId(1)),
            worker: "w1".into(),
            outcome: recast_core::JobOutcome::Complete,
            photos: 3,
            requests,
            started_at_ms: 10,
            finished_at_ms: 20,
        },
        &tally,
    )
    .await
    .unwrap();
    let s = c.status(&run).await.unwrap();
    assert_eq!(s.couples_total, 3);
    assert_eq!(s.couples_complete, 1);
    assert_eq!(s.photos_total(), 4);
    assert_eq!(s.photos_in(PhotoState::Done), 1);
    assert_eq!(s.photos_in(PhotoState::Failed), 1);
    assert_eq!(s.photos_in(PhotoState::Pending), 2);
    assert_eq!(s.failures.get("undecodable"), Some(&1));
    assert_eq!(
        s.requests.db_statements, 4,
        "the attempt's own statement is counted"
    );
    assert_eq!(s.requests.s3_deleted_objects, 3);
    assert_eq!(s.before(), (4 + 8, 4 * 1000 + 8 * 100));
    // Under delete, the done photo left only its WebP.
    assert_eq!(s.after(), (1 + 3 + 6, 300 + 3 * 1000 + 6 * 100));
    assert_eq!(
        (s.first_started_ms, s.last_finished_ms),
        (Some(10), Some(20))
    );
}

pub async fn record_writes_the_attempt_too(c: &dyn Catalog) {
    let tally = Tally::default();
    let (run, _) = c
        .ensure_run("attempts", &RunSettings::default())
        .await
        .unwrap();
    let attempt = |photos| JobAttempt {
        run: run.id,
        couple: Some(CoupleId(3)),
        worker: "w".into(),
        outcome: recast_core::JobOutcome::Complete,
        photos,
        requests: TallySnapshot {
            s3_get: 1,
            db_statements: 2,
            ..TallySnapshot::default()
        },
        started_at_ms: 1,
        finished_at_ms: 2,
    };
    let update = [ProgressUpdate::Switched {
        photo: PhotoId(4),
        webp: webp(4),
    }];
    let states = c
        .record(&run, CoupleId(3), &update, Some(&attempt(1)), &tally)
        .await
        .unwrap();
    assert_eq!(states[&PhotoId(4)], PhotoState::Switched);
    let statements = tally.snapshot().db_statements;
    // PostgreSQL: one statement; SQLite: progress, attempt and the lease release.
    assert!((1..=3).contains(&statements), "{statements} statements");
    // An attempt alone (nothing left to record).
    c.record(&run, CoupleId(3), &[], Some(&attempt(0)), &tally)
        .await
        .unwrap();
    let alone = tally.snapshot().db_statements - statements;
    let s = c.status(&run).await.unwrap();
    assert_eq!(s.attempts, 2);
    assert_eq!(s.couples_complete, 1);
    assert_eq!(s.requests.s3_get, 2);
    // Each row counts the statements before it plus those that wrote it.
    assert_eq!(s.requests.db_statements, 2 + statements + 2 + alone);
    assert_eq!(s.photos_in(PhotoState::Switched), 1);
}

pub async fn sweeps_claim_exclusively_and_leases_expire(c: &dyn Catalog) {
    use std::time::Duration;
    let tally = Tally::default();
    let settings = RunSettings {
        originals: OriginalsPolicy::Delete,
        ..RunSettings::default()
    };
    let (run, _) = c.ensure_run("sweep", &settings).await.unwrap();
    let updates: Vec<_> = (1..=3)
        .map(|p| ProgressUpdate::Switched {
            photo: PhotoId(p),
            webp: webp(p),
        })
        .collect();
    c.record(&run, CoupleId(1), &updates, None, &tally)
        .await
        .unwrap();
    c.record(
        &run,
        CoupleId(3),
        &[ProgressUpdate::Failed {
            photo: PhotoId(4),
            reason: FailureReason::Undecodable,
            detail: "x".into(),
        }],
        None,
        &tally,
    )
    .await
    .unwrap();
    let long = Duration::from_secs(600);
    let a = c.claim_sweep(&run, "a", 2, long, &tally).await.unwrap();
    assert_eq!(
        a.iter().map(|i| i.photo).collect::<Vec<_>>(),
        vec![PhotoId(1), PhotoId(2)]
    );
    assert_eq!(a[0].original_key, "photos/1/1.jpg");
    assert_eq!(a[0].thumbs, vec!["thumbs/1/1_160.jpg", "thumbs/1/1_80.jpg"]);
    assert_eq!(a[0].state, PhotoState::Switched);
    // Another owner gets only what is unclaimed; failed photos are never offered.
    let short = Duration::from_millis(300);
    let b = c.claim_sweep(&run, "b", 10, short, &tally).await.unwrap();
    assert_eq!(
        b.iter().map(|i| i.photo).collect::<Vec<_>>(),
        vec![PhotoId(3)]
    );
    // A live claim is not handed out again, not even to its owner.
    assert!(c
        .claim_sweep(&run, "a", 10, long, &tally)
        .await
        .unwrap()
        .is_empty());
    assert!(c
        .claim_sweep(&run, "c", 10, long, &tally)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(c.sweep_backlog(&run, &tally).await.unwrap(), 3);
    // Once b's lease has ended, c takes photo 3.
    tokio::time::sleep(short * 2).await;
    let c3 = c.claim_sweep(&run, "c", 10, long, &tally).await.unwrap();
    assert_eq!(
        c3.iter().map(|i| i.photo).collect::<Vec<_>>(),
        vec![PhotoId(3)]
    );
    // Under delete, a photo whose thumbnails are gone is offered again (for its original) once its
    // claim ends; a done one is not.
    c.advance(
        &run,
        &[
            (PhotoId(1), PhotoState::ThumbsGone),
            (PhotoId(2), PhotoState::Done),
        ],
        &tally,
    )
    .await
    .unwrap();
    assert_eq!(c.sweep_backlog(&run, &tally).await.unwrap(), 2);
}

pub async fn kept_photos_are_switched_to_their_original(c: &dyn Catalog) {
    use recast_core::KeptReason;
    let tally = Tally::default();
    let (run, _) = c
        .ensure_run(
            "kept",
            &RunSettings {
                originals: OriginalsPolicy::Delete,
                ..RunSettings::default()
            },
        )
        .await
        .unwrap();
    let kept = ProgressUpdate::Kept {
        photo: PhotoId(1),
        original_key: "photos/1/1.jpg".into(),
        reason: KeptReason::AlreadyWebp,
        detail: "already a WebP".into(),
    };
    let states = c
        .record(&run, CoupleId(1), &[kept], None, &tally)
        .await
        .unwrap();
    assert_eq!(states[&PhotoId(1)], PhotoState::Switched);
    let items = c
        .claim_sweep(&run, "k", 10, std::time::Duration::from_secs(60), &tally)
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].kept,
        "a kept photo must be marked so its original is never deleted"
    );
    let s = c.status(&run).await.unwrap();
    assert_eq!(s.kept.get("already_webp"), Some(&1));
    assert!(s.failures.is_empty());
    c.advance(&run, &[(PhotoId(1), PhotoState::Done)], &tally)
        .await
        .unwrap();
    let s = c.status(&run).await.unwrap();
    // Done and kept: its original is its one object, even under delete.
    let done = s.by_state["done"];
    assert_eq!((done.photos, done.kept), (1, 1));
    let (objects, _) = s.after();
    assert_eq!(
        objects,
        4 + 6,
        "the kept photo's original (and the three others with their thumbnails)"
    );
}

/// Every case, each its own test per backend on a fresh seeded catalog, so that the first
/// failure does not hide the others.
#[cfg(test)]
mod tests {
    macro_rules! per_backend {
        ($($module:ident :: $case:ident),* $(,)?) => {
            mod sqlite {
                $(
                    #[tokio::test]
                    async fn $case() {
                        let dir = tempfile::tempdir().unwrap();
                        let url = format!("sqlite://{}/catalog.db", dir.path().display());
                        let c = crate::SqliteCatalog::open(&url).await.unwrap();
                        crate::conformance::seed(&c).await;
                        crate::$module::$case(&c).await;
                    }
                )*
            }
            mod postgres {
                $(
                    #[tokio::test]
                    async fn $case() {
                        let url = crate::conformance::fresh_postgres().await;
                        let c = crate::PgCatalog::open(&url, 4).await.unwrap();
                        crate::conformance::seed(&c).await;
                        crate::$module::$case(&c).await;
                    }
                )*
            }
        };
    }

    per_backend!(
        conformance::runs_are_frozen,
        conformance::producer_pages_and_checkpoints,
        conformance::progress_moves_only_forward,
        conformance::status_adds_up,
        conformance::record_writes_the_attempt_too,
        conformance::sweeps_claim_exclusively_and_leases_expire,
        conformance::kept_photos_are_switched_to_their_original,
        conformance_fleet::budgets_are_stored_per_run,
        conformance_fleet::workers_register_heartbeat_and_go_stale,
        conformance_fleet::couple_leases_exclude_live_workers_only,
        conformance_fleet::operator_reports_read_what_was_recorded,
    );
}

//! The behaviour every [`Catalog`] backend must show, written once and run against each.
//! `run_all` expects a fresh, empty catalog.

use recast_core::{
    CoupleId, FailureReason, OriginalsPolicy, PhotoId, PhotoState, RunSettings, Tally,
    TallySnapshot,
};

use crate::{Catalog, JobAttempt, NewCouple, NewPhoto, NewThumbnail, ProgressUpdate, WebpRecord};

/// Three couples: 1 with photos 1..=3 (2 thumbnails each), 2 with none, 3 with photo 4.
fn sample() -> Vec<NewCouple> {
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

fn webp(photo: i64) -> WebpRecord {
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

pub async fn run_all(c: &dyn Catalog) {
    c.add_couples(&sample()).await.unwrap();
    assert_eq!(c.max_ids().await.unwrap(), (CoupleId(3), PhotoId(4)));
    runs_are_frozen(c).await;
    producer_pages_and_checkpoints(c).await;
    progress_moves_only_forward(c).await;
    status_adds_up(c).await;
    record_writes_the_attempt_too(c).await;
    sweeps_claim_exclusively_and_leases_expire(c).await;
    kept_photos_are_switched_to_their_original(c).await;
    budgets_are_stored_per_run(c).await;
    workers_register_heartbeat_and_go_stale(c).await;
    couple_leases_exclude_live_workers_only(c).await;
    operator_reports_read_what_was_recorded(c).await;
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
            outcome: "complete".into(),
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
        outcome: "complete".into(),
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

pub async fn budgets_are_stored_per_run(c: &dyn Catalog) {
    use recast_core::{BudgetOverrides, Budgets};
    assert_eq!(c.budgets("fleet-a").await.unwrap(), Budgets::default());
    let b = c
        .set_budgets(
            "fleet-a",
            &BudgetOverrides {
                s3_deletes_per_min: Some(600),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(b.s3_deletes_per_min, 600);
    assert_eq!(b.max_in_flight, Budgets::default().max_in_flight);
    // A later worker naming another budget keeps the first one.
    let b = c
        .set_budgets(
            "fleet-a",
            &BudgetOverrides {
                max_in_flight: Some(20),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((b.s3_deletes_per_min, b.max_in_flight), (600, 20));
    assert_eq!(c.budgets("fleet-a").await.unwrap(), b);
    assert_eq!(c.budgets("fleet-b").await.unwrap(), Budgets::default());
}

pub async fn workers_register_heartbeat_and_go_stale(c: &dyn Catalog) {
    use crate::{Heartbeat, WorkerSample};
    use std::time::Duration;
    let stale = Duration::from_secs(30);
    let now = crate::now_ms();
    let beat = |worker: &'static str, at: i64| Heartbeat {
        run_name: "fleet-a",
        worker,
        started_at_ms: now - 60_000,
        now_ms: at,
        stale_after: stale,
        sample: None,
    };
    let tally = Tally::default();
    let v = c.heartbeat(&beat("w1", now), &tally).await.unwrap();
    assert_eq!(v.live_workers, 1);
    assert_eq!(v.budgets, c.budgets("fleet-a").await.unwrap());
    assert!(tally.snapshot().db_statements >= 1);
    // w2 last beat long ago: gone. w3 is fresh.
    c.heartbeat(&beat("w2", now - 120_000), &tally)
        .await
        .unwrap();
    c.heartbeat(&beat("w3", now), &tally).await.unwrap();
    let v = c.heartbeat(&beat("w1", now), &tally).await.unwrap();
    assert_eq!(v.live_workers, 2, "w1 and w3 live, w2 stale");
    // Another run's workers do not count.
    let other = Heartbeat {
        run_name: "fleet-b",
        ..beat("w9", now)
    };
    assert_eq!(c.heartbeat(&other, &tally).await.unwrap().live_workers, 1);
    // Samples are kept in order; deregistering stops a worker counting.
    let sample = WorkerSample {
        worker: "w3".into(),
        at_ms: now,
        interval_ms: 5_000,
        photos: 7,
        throttles: 2,
        requests: recast_core::TallySnapshot {
            s3_deleted_objects: 35,
            ..Default::default()
        },
        in_flight: 3,
        concurrency: 16,
        ..Default::default()
    };
    let with_sample = Heartbeat {
        sample: Some(&sample),
        ..beat("w3", now)
    };
    c.heartbeat(&with_sample, &tally).await.unwrap();
    c.deregister(&with_sample, "drained", &tally).await.unwrap();
    let v = c.heartbeat(&beat("w1", now), &tally).await.unwrap();
    assert_eq!(v.live_workers, 1);
    let samples = c.samples("fleet-a").await.unwrap();
    assert_eq!(samples, vec![sample.clone(), sample]);
    let workers = c.workers("fleet-a").await.unwrap();
    let names: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["w1", "w2", "w3"]);
    assert_eq!(workers[2].stop_reason.as_deref(), Some("drained"));
    assert!(workers[0].is_live(now, stale));
    assert!(!workers[1].is_live(now, stale));
    assert!(!workers[2].is_live(now, stale));
    // A worker that beats again after stopping is live again (a restarted process, same name).
    assert_eq!(
        c.heartbeat(&beat("w3", now), &tally)
            .await
            .unwrap()
            .live_workers,
        2
    );
}

pub async fn couple_leases_exclude_live_workers_only(c: &dyn Catalog) {
    use crate::{Heartbeat, Lease};
    use std::time::Duration;
    let (run, _) = c
        .ensure_run("leases", &RunSettings::default())
        .await
        .unwrap();
    let tally = Tally::default();
    let stale = Duration::from_secs(30);
    let now = crate::now_ms();
    for w in ["lease-a", "lease-b"] {
        let beat = Heartbeat {
            run_name: "leases",
            worker: w,
            started_at_ms: now,
            now_ms: now,
            stale_after: stale,
            sample: None,
        };
        c.heartbeat(&beat, &tally).await.unwrap();
    }
    let long = Duration::from_secs(600);
    let couple = CoupleId(1);
    let granted = |l: Lease| matches!(l, Lease::Granted { .. });
    assert!(granted(
        c.lease_couple(&run, couple, "lease-a", long, stale, &tally)
            .await
            .unwrap()
    ));
    // A duplicate delivery to another live worker is refused, and told who holds it.
    match c
        .lease_couple(&run, couple, "lease-b", long, stale, &tally)
        .await
        .unwrap()
    {
        Lease::HeldBy { owner, until_ms } => {
            assert_eq!(owner, "lease-a");
            assert!(until_ms > now + 500_000);
        }
        other => panic!("lease given twice: {other:?}"),
    }
    // The holder renews it.
    assert!(granted(
        c.lease_couple(&run, couple, "lease-a", long, stale, &tally)
            .await
            .unwrap()
    ));
    // Recording the couple's attempt ends the lease.
    let attempt = JobAttempt {
        run: run.id,
        couple: Some(couple),
        worker: "lease-a".into(),
        outcome: "complete".into(),
        photos: 0,
        requests: Default::default(),
        started_at_ms: now,
        finished_at_ms: now,
    };
    c.record(&run, couple, &[], Some(&attempt), &tally)
        .await
        .unwrap();
    assert!(granted(
        c.lease_couple(&run, couple, "lease-b", long, stale, &tally)
            .await
            .unwrap()
    ));
    c.release_couple(&run, couple, "lease-b", &tally)
        .await
        .unwrap();
    // An ended lease passes on.
    let short = Duration::from_millis(1);
    assert!(granted(
        c.lease_couple(&run, CoupleId(2), "lease-a", short, stale, &tally)
            .await
            .unwrap()
    ));
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(granted(
        c.lease_couple(&run, CoupleId(2), "lease-b", long, stale, &tally)
            .await
            .unwrap()
    ));
    // The lease of a worker that is gone passes on before it ends.
    let gone = Heartbeat {
        run_name: "leases",
        worker: "lease-b",
        started_at_ms: now,
        now_ms: crate::now_ms(),
        stale_after: stale,
        sample: None,
    };
    c.deregister(&gone, "drained", &tally).await.unwrap();
    assert!(granted(
        c.lease_couple(&run, CoupleId(2), "lease-a", long, stale, &tally)
            .await
            .unwrap()
    ));
    // Releasing someone else's lease does nothing.
    c.release_couple(&run, CoupleId(2), "lease-b", &tally)
        .await
        .unwrap();
    assert!(!granted(
        c.lease_couple(&run, CoupleId(2), "someone", long, stale, &tally)
            .await
            .unwrap()
    ));
}

pub async fn operator_reports_read_what_was_recorded(c: &dyn Catalog) {
    use recast_core::{CatalogTotals, KeptReason};
    let totals = c.totals().await.unwrap();
    assert_eq!(
        totals,
        CatalogTotals {
            couples: 2,
            photos: 4,
            original_bytes: 4000,
            thumbnails: 8,
            thumbnail_bytes: 800,
            pixels: 4 * 40 * 30,
            photos_with_dimensions: 4,
        },
        "couple 2 owns no photo: it is no job"
    );
    let all = c.sample_photos(10, 1).await.unwrap();
    assert_eq!(
        all.iter().map(|p| p.photo.0).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert_eq!(all[3].original_key, "photos/3/4.jpg");
    assert_eq!(
        (all[0].bytes, all[0].width, all[0].height),
        (1000, Some(40), Some(30))
    );
    let two = c.sample_photos(2, 7).await.unwrap();
    assert_eq!(two.len(), 2);
    assert_ne!(two[0].photo, two[1].photo);
    assert_eq!(
        two,
        c.sample_photos(2, 7).await.unwrap(),
        "a seed picks the same photos"
    );

    let tally = Tally::default();
    let (run, _) = c
        .ensure_run("reports", &RunSettings::default())
        .await
        .unwrap();
    let before = crate::now_ms();
    c.record(
        &run,
        CoupleId(1),
        &[
            ProgressUpdate::Switched {
                photo: PhotoId(1),
                webp: webp(1),
            },
            ProgressUpdate::Kept {
                photo: PhotoId(2),
                original_key: "photos/1/2.jpg".into(),
                reason: KeptReason::AlreadyWebp,
                detail: "webp".into(),
            },
        ],
        None,
        &tally,
    )
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
    c.advance(&run, &[(PhotoId(1), PhotoState::Done)], &tally)
        .await
        .unwrap();
    let after = crate::now_ms();
    let attempt = |worker: &str, outcome: &str, started, finished, deleted| JobAttempt {
        run: run.id,
        couple: Some(CoupleId(1)),
        worker: worker.into(),
        outcome: outcome.into(),
        photos: 3,
        requests: TallySnapshot {
            s3_deleted_objects: deleted,
            s3_delete_requests: u64::from(deleted > 0),
            ..TallySnapshot::default()
        },
        started_at_ms: started,
        finished_at_ms: finished,
    };
    for a in [
        attempt("producer", "producer", 0, 500, 0),
        attempt("w1", "complete", 1_000, 61_000, 5),
        attempt("w1", "retry", 2_000, 62_000, 0),
        attempt("w2", "overhead", 130_000, 130_000, 2),
    ] {
        c.record_attempt(&a, &tally).await.unwrap();
    }

    let series = c.attempt_series(&run, 60_000).await.unwrap();
    assert_eq!(
        series
            .iter()
            .map(|b| (b.start_ms, b.attempts, b.retries, b.photos))
            .collect::<Vec<_>>(),
        vec![(0, 1, 0, 0), (60_000, 2, 1, 3), (120_000, 1, 0, 0)]
    );
    assert_eq!(series[1].requests.s3_deleted_objects, 5);
    assert_eq!(series[2].requests.s3_delete_requests, 1);
    assert_eq!(
        series[1].requests.db_statements, 2,
        "each attempt's own row"
    );

    let progress = c.progress_series(&run, 1_000).await.unwrap();
    let sum = |f: fn(&crate::ProgressBucket) -> u64| progress.iter().map(f).sum::<u64>();
    assert_eq!(
        (
            sum(|b| b.recorded),
            sum(|b| b.failed),
            sum(|b| b.kept),
            sum(|b| b.done)
        ),
        (3, 1, 1, 1)
    );
    assert!(progress.windows(2).all(|w| w[0].start_ms < w[1].start_ms));
    assert!(progress
        .iter()
        .all(|b| b.start_ms % 1_000 == 0 && b.start_ms >= before - 1_000 && b.start_ms <= after));

    let spans = c.worker_spans(&run).await.unwrap();
    assert_eq!(
        spans
            .iter()
            .map(|s| (
                s.worker.as_str(),
                s.first_started_ms,
                s.last_finished_ms,
                s.attempts
            ))
            .collect::<Vec<_>>(),
        vec![("w1", 1_000, 62_000, 2), ("w2", 130_000, 130_000, 1)],
        "the producer is no worker"
    );

    let photos = c.audit_photos(&run, None, 10).await.unwrap();
    assert_eq!(
        photos
            .iter()
            .map(|p| (p.photo.0, p.state))
            .collect::<Vec<_>>(),
        vec![
            (1, PhotoState::Done),
            (2, PhotoState::Switched),
            (3, PhotoState::Pending),
            (4, PhotoState::Failed)
        ]
    );
    assert_eq!(photos[0].webp, Some(webp(1)));
    assert_eq!(photos[0].couple, CoupleId(1));
    assert_eq!(
        photos[0].thumbs,
        vec!["thumbs/1/1_160.jpg", "thumbs/1/1_80.jpg"]
    );
    assert_eq!(photos[1].webp, None, "a kept photo's copy is its original");
    assert_eq!(photos[1].kept_reason.as_deref(), Some("already_webp"));
    assert_eq!(photos[2].webp, None);
    assert_eq!(photos[3].failure_reason.as_deref(), Some("undecodable"));
    assert_eq!(photos[3].original_key, "photos/3/4.jpg");
    let page = c.audit_photos(&run, Some(PhotoId(1)), 2).await.unwrap();
    assert_eq!(
        page.iter().map(|p| p.photo.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
}

/// `rw` and `ro` are the same database, opened for writing and read-only
/// ([`crate::open_read_only`]); `rw` has been migrated and is empty.
pub async fn read_only_reads_and_refuses_writes(rw: &dyn Catalog, ro: &dyn Catalog) {
    rw.add_couples(&sample()).await.unwrap();
    rw.ensure_run("ro", &RunSettings::default()).await.unwrap();
    assert_eq!(ro.totals().await.unwrap().photos, 4);
    assert_eq!(ro.run(None).await.unwrap().name, "ro");
    assert_eq!(ro.sample_photos(2, 3).await.unwrap().len(), 2);
    let more = vec![NewCouple {
        id: CoupleId(99),
        photos: vec![],
    }];
    assert!(
        ro.add_couples(&more).await.is_err(),
        "a read-only catalog wrote"
    );
    assert!(ro
        .ensure_run("another", &RunSettings::default())
        .await
        .is_err());
    assert_eq!(rw.max_ids().await.unwrap().0, CoupleId(3));
}

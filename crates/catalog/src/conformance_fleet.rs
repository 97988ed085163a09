//! The fleet's and the operators' side of the behaviour every [`Catalog`] backend must show:
//! budgets, worker registry, couple leases, reports, read-only handles. Run per backend by
//! `conformance`'s tests, on a catalog seeded with its sample.

use recast_core::{
    CoupleId, FailureReason, PhotoId, PhotoState, RunSettings, Tally, TallySnapshot,
};

use crate::conformance::{sample, webp};
use crate::{Catalog, JobAttempt, NewCouple, ProgressUpdate};

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
        outcome: recast_core::JobOutcome::Complete,
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
        outcome: outcome.parse().expect("a known outcome"),
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

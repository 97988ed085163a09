//! Concurrent writers against the counters on PostgreSQL (SQLite has one writer at a time): two
//! workers finishing the same couple at once, and a redelivered job recording while the first
//! delivery still does, must count the couple complete once, as a recount does.

use std::time::Duration;

use futures::future::join_all;
use recast_core::{CoupleId, PhotoId, RunSettings, Tally, TallySnapshot};
use sqlx::{Connection, PgConnection};

use crate::{
    Catalog, CatalogRead, JobAttempt, NewCouple, NewPhoto, PgCatalog, ProgressUpdate, Run,
    WebpRecord,
};

/// Couples 1..=n with two photos each (ids 2c-1 and 2c), no thumbnails.
fn couples(n: i64) -> Vec<NewCouple> {
    (1..=n)
        .map(|c| NewCouple {
            id: CoupleId(c),
            photos: [2 * c - 1, 2 * c]
                .into_iter()
                .map(|p| NewPhoto {
                    id: PhotoId(p),
                    original_key: format!("photos/{c}/{p}.jpg"),
                    format: "jpeg".into(),
                    bytes: 1000 + p as u64,
                    width: Some(40),
                    height: Some(30),
                    thumbnails: Vec::new(),
                })
                .collect(),
        })
        .collect()
}

fn complete(run: &Run, couple: i64, worker: &str) -> JobAttempt {
    JobAttempt {
        run: run.id,
        couple: Some(CoupleId(couple)),
        worker: worker.into(),
        outcome: recast_core::JobOutcome::Complete,
        photos: 2,
        requests: TallySnapshot::default(),
        started_at_ms: couple,
        finished_at_ms: couple + 1,
    }
}

fn switched(couple: i64) -> Vec<ProgressUpdate> {
    [2 * couple - 1, 2 * couple]
        .into_iter()
        .map(|p| ProgressUpdate::Switched {
            photo: PhotoId(p),
            webp: WebpRecord {
                key: format!("photos/{couple}/{p}.webp"),
                bytes: 300,
                crc32c: 7,
            },
        })
        .collect()
}

async fn catalog_with_a_run(couples_n: i64) -> (String, PgCatalog, Run) {
    let url = crate::conformance::fresh_postgres().await;
    let catalog = PgCatalog::open(&url, 16).await.unwrap();
    catalog.add_couples(&couples(couples_n)).await.unwrap();
    let (run, _) = catalog
        .ensure_run("race", &RunSettings::default())
        .await
        .unwrap();
    (url, catalog, run)
}

async fn assert_agrees(catalog: &PgCatalog, run: &Run, expected_complete: u64, step: &str) {
    let counted = catalog.status(run).await.unwrap();
    let scanned = catalog.recount(run).await.unwrap();
    assert_eq!(
        counted.couples_complete, scanned.couples_complete,
        "couples complete, counted against recounted, after {step}"
    );
    assert_eq!(scanned.couples_complete, expected_complete, "after {step}");
    assert_eq!(
        serde_json::to_value(&counted).unwrap(),
        serde_json::to_value(&scanned).unwrap(),
        "status after {step}"
    );
}

const INSERT_COMPLETE: &str =
    "INSERT INTO job_attempts (run_id, couple_id, worker, outcome, photos,
     s3_get, s3_put, s3_delete_requests, s3_deleted_objects, sqs_requests, db_statements,
     started_at, finished_at) VALUES ($1, $2, $3, 'complete', 2, 0, 0, 0, 0, 0, 1, 0, 1)";

/// The race made certain: two transactions record the same couple's complete attempt, the second
/// before the first commits. Without the fix both statements' triggers saw only their own row.
#[tokio::test]
async fn two_open_transactions_finishing_one_couple_count_it_once() {
    let (url, catalog, run) = catalog_with_a_run(1).await;
    let mut a = PgConnection::connect(&url).await.unwrap();
    let mut b = PgConnection::connect(&url).await.unwrap();
    let b_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut b)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut a).await.unwrap();
    sqlx::query(INSERT_COMPLETE)
        .bind(run.id.0)
        .bind(1i64)
        .bind("a")
        .execute(&mut a)
        .await
        .unwrap();
    let run_id = run.id.0;
    let second = tokio::spawn(async move {
        sqlx::query("BEGIN").execute(&mut b).await.unwrap();
        sqlx::query(INSERT_COMPLETE)
            .bind(run_id)
            .bind(1i64)
            .bind("b")
            .execute(&mut b)
            .await
            .unwrap();
        sqlx::query("COMMIT").execute(&mut b).await.unwrap();
    });
    // Commit the first only once the second has recorded its row or is waiting on a lock, so
    // that the two overlap whatever the machine's speed.
    let mut watch = PgConnection::connect(&url).await.unwrap();
    loop {
        let waiting: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock')",
        )
        .bind(b_pid)
        .fetch_one(&mut watch)
        .await
        .unwrap();
        if waiting || second.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sqlx::query("COMMIT").execute(&mut a).await.unwrap();
    second.await.unwrap();
    assert_agrees(&catalog, &run, 1, "two overlapping complete attempts").await;
}

/// The race as the fleet makes it: for each couple, two workers record its photos and a complete
/// attempt at once through the catalog, then a redelivered job records it again.
#[tokio::test]
async fn concurrent_recorders_count_each_couple_complete_once() {
    const COUPLES: i64 = 200;
    let (_url, catalog, run) = catalog_with_a_run(COUPLES).await;
    let tally = Tally::default();
    let record = |couple: i64, worker: &'static str| {
        let (catalog, run, tally) = (&catalog, &run, &tally);
        async move {
            let attempt = complete(run, couple, worker);
            catalog
                .record(
                    run,
                    CoupleId(couple),
                    &switched(couple),
                    Some(&attempt),
                    tally,
                )
                .await
                .unwrap();
        }
    };
    join_all((1..=COUPLES).flat_map(|c| [record(c, "first"), record(c, "second")])).await;
    assert_agrees(&catalog, &run, COUPLES as u64, "two recorders per couple").await;
    join_all((1..=COUPLES).map(|c| record(c, "redelivered"))).await;
    assert_agrees(
        &catalog,
        &run,
        COUPLES as u64,
        "a redelivery of every couple",
    )
    .await;
    let attempts = catalog.status(&run).await.unwrap().attempts;
    assert_eq!(attempts, 3 * COUPLES as u64, "every attempt is summed");
}

//! Two `recast import` processes writing one PostgreSQL catalog at once, from two S3 Inventory
//! reports that overlap (the same couples and photos in both, and couples of their own): both
//! succeed, nothing is lost or added twice, and the catalog's counters (kept by triggers, read by
//! `status`) equal a recount.

mod common;

use std::io::Write;
use std::ops::Range;
use std::path::Path;
use std::process::Stdio;

use common::{assert_success, Env};
use flate2::write::GzEncoder;
use md5::{Digest, Md5};

const PHOTOS_PER_COUPLE: usize = 10;
const SIZES: [u32; 2] = [640, 160];
const FILES: usize = 8;

fn hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An S3 Inventory report under `root` of the couples `couples` (photo ids are global, so the
/// same couple has the same photos in every report), in `FILES` data files; its manifest's URL.
fn report(root: &Path, couples: Range<usize>) -> String {
    let mut lines = Vec::new();
    for c in couples {
        for p in c * PHOTOS_PER_COUPLE..(c + 1) * PHOTOS_PER_COUPLE {
            lines.push(format!("\"src\",\"photos/{c}/{p}.jpg\",\"1000\"\n"));
            for s in SIZES {
                lines.push(format!("\"src\",\"thumbs/{c}/{p}_{s}.jpg\",\"{s}\"\n"));
            }
        }
    }
    let data = root.join("inv/data");
    let dir = root.join("inv/2026-11-30T00-00Z");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (i, chunk) in lines.chunks(lines.len().div_ceil(FILES)).enumerate() {
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(chunk.concat().as_bytes()).unwrap();
        let body = gz.finish().unwrap();
        let key = format!("inv/data/{i}.csv.gz");
        std::fs::write(root.join(&key), &body).unwrap();
        files.push(serde_json::json!({"key": key, "size": body.len(), "MD5checksum": hex(&body)}));
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::inventory",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size",
        "files": files,
    }))
    .unwrap();
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    std::fs::write(dir.join("manifest.checksum"), hex(&manifest)).unwrap();
    format!("file://{}", dir.join("manifest.json").display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_imports_of_overlapping_reports_count_once() {
    let env = Env::new();
    let db = recast_catalog::conformance::fresh_postgres().await;
    // Couples 0..300; 100..200 are in both reports.
    let a = report(&env.path("a"), 0..200);
    let b = report(&env.path("b"), 100..300);
    let args = |from: &str| {
        vec![
            "import".to_owned(),
            "--db".to_owned(),
            db.clone(),
            "--from".to_owned(),
            from.to_owned(),
            "--json".to_owned(),
        ]
    };
    // (Both migrate the new database first: sqlx's migrator holds an advisory lock meanwhile.)
    let (args_a, args_b) = (args(&a), args(&b));
    let spawn = |args: &[String]| {
        env.recast(&[])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(&args_a), spawn(&args_b));
    let outputs = [first, second].map(|c| c.wait_with_output().unwrap());
    let mut orphans = 0;
    for (out, args) in outputs.iter().zip([&args_a, &args_b]) {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_success(out, &args);
        let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        orphans += s["orphans"].as_u64().unwrap();
    }
    assert_eq!(orphans, 0, "no photo was left out, so no thumbnail lost it");

    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let recount: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM couples), (SELECT COUNT(DISTINCT couple_id) FROM photos),
                (SELECT COUNT(*) FROM photos), (SELECT COUNT(*) FROM thumbnails)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let photos = 300 * PHOTOS_PER_COUPLE as i64;
    assert_eq!(
        recount,
        (300, 300, photos, photos * SIZES.len() as i64),
        "every couple, photo and thumbnail once"
    );
    let counters: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT SUM(couples)::BIGINT, SUM(couples_with_photos)::BIGINT, SUM(photos)::BIGINT,
                SUM(thumbnails)::BIGINT FROM catalog_counters",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(counters, recount, "the counters equal a recount");
}

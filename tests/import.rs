//! The front door and the back door end to end, through the real binary on the embedded
//! backends: a seeded store described by an S3 Inventory report (gzip CSV, keys URL-encoded,
//! manifest.json with manifest.checksum) → `import` → `launch` → `work` → `export`, and the export
//! matches what the store holds.

mod common;

use std::io::Write;
use std::path::Path;

use common::Env;
use flate2::write::GzEncoder;
use md5::{Digest, Md5};

fn hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every key under `dir`, relative to it.
fn keys(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let key = e.path().strip_prefix(dir).unwrap().display().to_string();
                out.push((key, e.metadata().unwrap().len()));
            }
        }
    }
    out.sort();
    out
}

/// An S3 Inventory report of `store` in `root`, one data file; returns the manifest's URL.
fn inventory(store: &Path, root: &Path) -> String {
    let mut csv = String::new();
    for (key, size) in keys(store) {
        let encoded: String = key
            .bytes()
            .map(|b| match b {
                b' ' => "+".to_owned(),
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect();
        csv += &format!("\"store\",\"{encoded}\",\"{size}\"\n");
    }
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(csv.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let data = "inv/store/all/data/0.csv.gz";
    std::fs::create_dir_all(root.join("inv/store/all/data")).unwrap();
    std::fs::create_dir_all(root.join("inv/store/all/2026-11-30T00-00Z")).unwrap();
    std::fs::write(root.join(data), &body).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "sourceBucket": "store",
        "destinationBucket": "arn:aws:s3:::inventory",
        "version": "2016-11-30",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key, Size",
        "files": [{"key": data, "size": body.len(), "MD5checksum": hex(&body)}],
    }))
    .unwrap();
    let dir = root.join("inv/store/all/2026-11-30T00-00Z");
    std::fs::write(dir.join("manifest.json"), &manifest).unwrap();
    std::fs::write(dir.join("manifest.checksum"), hex(&manifest)).unwrap();
    format!("file://{}", dir.join("manifest.json").display())
}

#[test]
fn import_launch_work_export_matches_the_store() {
    let env = Env::new();
    let seeded = env.ok(&[
        "seed",
        "--store",
        &env.store(),
        "--couples",
        "4",
        "--max-photos",
        "2",
        "--thumbs",
        "2",
    ]);
    assert!(seeded.contains("recast import --db URL"), "{seeded}");
    // A key no pattern matches, and a thumbnail without its original.
    let store = env.store_dir();
    std::fs::write(store.join("readme.txt"), b"not a photo").unwrap();
    std::fs::create_dir_all(store.join("thumbs/99")).unwrap();
    std::fs::write(store.join("thumbs/99/1_160.jpg"), b"orphan").unwrap();
    let photos = keys(&store)
        .iter()
        .filter(|(k, _)| k.starts_with("photos/"))
        .count();

    let from = inventory(&store, &env.path("inventory"));
    let dry = env.ok(&[
        "import",
        "--db",
        &env.db(),
        "--from",
        &from,
        "--dry-run",
        "--json",
    ]);
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["originals"]["objects"], photos);
    assert_eq!(dry["unmatched_keys"], serde_json::json!(["readme.txt"]));
    assert_eq!(
        dry["orphan_keys"],
        serde_json::json!(["thumbs/99/1_160.jpg"])
    );
    assert!(!env.path("catalog.db").exists(), "a dry run writes nothing");

    let out = env.ok(&["import", "--db", &env.db(), "--from", &from, "--json"]);
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["photos_added"], photos);
    assert_eq!(
        (s["unmatched"]["objects"].as_u64(), s["orphans"].as_u64()),
        (Some(1), Some(1))
    );
    let again = env.ok(&["import", "--db", &env.db(), "--from", &from, "--json"]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["photos_added"], 0, "importing again adds nothing");

    env.ok(&[
        "launch",
        "--db",
        &env.db(),
        "--queue",
        &env.queue(),
        "--run",
        "r1",
    ]);
    env.ok(&[
        "work",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--queue",
        &env.queue(),
        "--run",
        "r1",
        "--exit-when-idle",
        "--poll-wait",
        "100ms",
    ]);
    let csv = env.path("export.csv");
    env.ok(&[
        "export",
        "--db",
        &env.db(),
        "--run",
        "r1",
        "--out",
        csv.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&csv).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    assert_eq!(rows.len(), photos, "one row per photo: {text}");
    for r in &rows {
        let (original, state, webp, bytes) = (r[2], r[3], r[4], r[5]);
        assert_eq!(state, "done", "{text}");
        assert!(
            original.starts_with(&format!("photos/{}/{}.", r[0], r[1])),
            "{text}"
        );
        let meta = std::fs::metadata(store.join(webp)).unwrap();
        assert_eq!(meta.len().to_string(), bytes, "{webp}");
    }
    // The orphan and the unmatched key were never touched.
    assert!(store.join("thumbs/99/1_160.jpg").exists());
    assert!(store.join("readme.txt").exists());
}

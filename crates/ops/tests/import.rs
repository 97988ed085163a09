//! Import and export against both catalogs, from S3 Inventory reports written as AWS writes them
//! (gzip CSV files, every field quoted, keys form-URL-encoded, manifest.json with its
//! manifest.checksum) in a local folder, and from the app's manifest. Bad input is refused with
//! nothing of it written.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use md5::{Digest, Md5};
use recast_catalog::Catalog;
use recast_ops::export::{export, ExportOptions};
use recast_ops::import::{
    import, open_source, ImportError, ImportOptions, ImportSummary, Patterns,
};

const SCHEMA: &str = "Bucket, Key, Size, LastModifiedDate, ETag";

fn patterns() -> Patterns {
    Patterns::parse(
        &["photos/{couple}/{photo}.jpg".into()],
        &["thumbs/{couple}/{photo}_{size}.jpg".into()],
    )
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Form encoding as S3 Inventory writes keys: space as `+`, reserved bytes as %XX.
fn encode(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        match b {
            b' ' => out.push('+'),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn gzip(text: &str) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

fn csv_line(key: &str, size: u64) -> String {
    format!(
        "\"src\",\"{}\",\"{size}\",\"2026-11-29T00:00:00.000Z\",\"etag\"\n",
        encode(key)
    )
}

/// Writes a report under `root` (the destination bucket) and returns its manifest's URL. Each
/// file is (its gzip bytes, the MD5 the manifest claims for it: the true one when `None`).
fn write_report(root: &Path, schema: &str, files: &[(Vec<u8>, Option<String>)]) -> String {
    let dir = root.join("inv/src/cfg/2026-11-29T00-00Z");
    std::fs::create_dir_all(root.join("inv/src/cfg/data")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    let mut entries = Vec::new();
    for (i, (body, md5)) in files.iter().enumerate() {
        let key = format!("inv/src/cfg/data/{i:04}.csv.gz");
        std::fs::write(root.join(&key), body).unwrap();
        entries.push(serde_json::json!({
            "key": key,
            "size": body.len(),
            "MD5checksum": md5.clone().unwrap_or_else(|| hex(body)),
        }));
    }
    let manifest = serde_json::json!({
        "sourceBucket": "src",
        "destinationBucket": "arn:aws:s3:::dest",
        "version": "2016-11-30",
        "creationTimestamp": "1764374400000",
        "fileFormat": "CSV",
        "fileSchema": schema,
        "files": entries,
    });
    let bytes = serde_json::to_vec_pretty(&manifest).unwrap();
    std::fs::write(dir.join("manifest.json"), &bytes).unwrap();
    std::fs::write(dir.join("manifest.checksum"), hex(&bytes)).unwrap();
    format!("file://{}", dir.join("manifest.json").display())
}

/// Two couples' objects: photos with spaces, `+` and non-ASCII in their ids, thumbnails, one
/// orphan thumbnail and one key no pattern matches; split over two files.
fn good_files() -> Vec<(Vec<u8>, Option<String>)> {
    let first = [
        csv_line("thumbs/c 1/p+1_160.jpg", 16),
        csv_line("photos/c 1/p+1.jpg", 100),
        csv_line("thumbs/c 1/p+1_320.jpg", 32),
        csv_line("notes/readme.txt", 5),
    ]
    .concat();
    let second = [
        csv_line("photos/été/ü.jpg", 200),
        csv_line("thumbs/été/ü_160.jpg", 17),
        csv_line("thumbs/été/gone_160.jpg", 18),
        csv_line("photos/10/2.jpg", 300),
    ]
    .concat();
    vec![(gzip(&first), None), (gzip(&second), None)]
}

async fn run(
    catalog: &dyn Catalog,
    from: &str,
    dry_run: bool,
) -> Result<ImportSummary, ImportError> {
    let mut source = open_source(from).await?;
    import(
        Some(catalog),
        from,
        source.as_mut(),
        &patterns(),
        &ImportOptions { dry_run },
    )
    .await
}

async fn catalog_counts(catalog: &dyn Catalog) -> (u64, u64) {
    let t = catalog.totals().await.unwrap();
    (t.photos, t.thumbnails)
}

async fn inventory_imports_once_and_lists_the_rest(catalog: &dyn Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let from = write_report(dir.path(), SCHEMA, &good_files());

    let dry = run(catalog, &from, true).await.unwrap();
    assert_eq!(
        catalog_counts(catalog).await,
        (0, 0),
        "a dry run writes nothing"
    );
    assert_eq!((dry.originals.objects, dry.thumbnails.objects), (3, 4));
    assert_eq!((dry.unmatched.objects, dry.orphans), (1, 1));

    let s = run(catalog, &from, false).await.unwrap();
    assert_eq!((s.originals.objects, s.originals.bytes), (3, 600));
    assert_eq!((s.thumbnails.objects, s.unmatched.objects), (4, 1));
    assert_eq!(s.unmatched_keys, vec!["notes/readme.txt"]);
    assert_eq!(
        (s.orphans, s.orphan_keys.clone()),
        (1, vec!["thumbs/été/gone_160.jpg".to_owned()])
    );
    assert_eq!(
        (s.couples_added, s.photos_added, s.thumbnails_added),
        (3, 3, 3)
    );
    assert_eq!(catalog_counts(catalog).await, (3, 3));
    // Keys are decoded: the catalog holds the objects' real names.
    let jobs = catalog
        .couples_after(None, 10, &recast_core::Tally::default())
        .await
        .unwrap();
    let keys: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.photos.iter().map(|p| p.key.as_str()))
        .collect();
    assert!(keys.contains(&"photos/c 1/p+1.jpg"), "{keys:?}");
    assert!(keys.contains(&"photos/été/ü.jpg"), "{keys:?}");

    let again = run(catalog, &from, false).await.unwrap();
    assert_eq!(
        (
            again.couples_added,
            again.photos_added,
            again.thumbnails_added
        ),
        (0, 0, 0)
    );
    assert_eq!(
        catalog_counts(catalog).await,
        (3, 3),
        "a second import adds nothing"
    );

    // Export: one row per photo, by the app's ids, pending before any run did anything.
    let run_settings = recast_core::RunSettings::default();
    catalog.ensure_run("r1", &run_settings).await.unwrap();
    let out = dir.path().join("out.csv.gz");
    let e = export(catalog, out.to_str().unwrap(), &ExportOptions::default())
        .await
        .unwrap();
    assert_eq!(e.rows, 3);
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap()),
        &mut text,
    )
    .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines.contains(&"c 1,p+1,photos/c 1/p+1.jpg,pending,,,,,"),
        "{text}"
    );
    assert!(
        lines.contains(&"été,ü,photos/été/ü.jpg,pending,,,,,"),
        "{text}"
    );
    // Resumable: after the last id, nothing more.
    let rest = export(
        catalog,
        dir.path().join("rest.jsonl").to_str().unwrap(),
        &ExportOptions {
            after: e.last_photo_id,
            ..ExportOptions::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rest.rows, 0);
}

async fn bad_files_import_nothing_of_themselves(catalog: &dyn Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let good = gzip(&csv_line("photos/a/1.jpg", 1));
    let mut truncated = gzip(&csv_line("photos/b/1.jpg", 1).repeat(50));
    truncated.truncate(truncated.len() - 12);
    let short = gzip(&[csv_line("photos/c/1.jpg", 1), "\"src\"\n".into()].concat());
    // (case, inventory files as (gzip bytes, MD5 to claim instead of theirs), expected error)
    type Case<'a> = (&'a str, Vec<(Vec<u8>, Option<String>)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "truncated",
            vec![(good.clone(), None), (truncated, None)],
            "not a readable gzip",
        ),
        (
            "wrong md5",
            vec![(good.clone(), None), (good.clone(), Some("0".repeat(32)))],
            "does not match its md5",
        ),
        (
            "short row",
            vec![(good.clone(), None), (short, None)],
            "line 2: 1 fields",
        ),
    ];
    for (name, files, want) in cases {
        let root = dir.path().join(name.replace(' ', "-"));
        let from = write_report(&root, SCHEMA, &files);
        let err = run(catalog, &from, false).await.unwrap_err().to_string();
        assert!(err.to_lowercase().contains(want), "{name}: {err}");
        assert_eq!(
            catalog_counts(catalog).await,
            (1, 0),
            "{name}: the good first file's photo (a/1) is in the catalog, nothing of the bad one"
        );
        // The checkpoint keeps the good first file; fixing the report resumes after it.
        let cp = catalog.import_checkpoint(&from).await.unwrap().unwrap();
        assert_eq!(cp.units_done, 1, "{name}");
    }

    let no_key = write_report(
        &dir.path().join("nokey"),
        "Bucket, Size",
        &[(good.clone(), None)],
    );
    let err = run(catalog, &no_key, false).await.unwrap_err().to_string();
    assert!(err.contains("no Key column"), "{err}");

    // A manifest altered after its checksum was written.
    let altered = write_report(&dir.path().join("altered"), SCHEMA, &[(good, None)]);
    let path = altered.strip_prefix("file://").unwrap();
    let mut text = std::fs::read_to_string(path).unwrap();
    text.push(' ');
    std::fs::write(path, text).unwrap();
    let err = run(catalog, &altered, false).await.unwrap_err().to_string();
    assert!(err.contains("does not match manifest.checksum"), "{err}");
    assert_eq!(
        catalog_counts(catalog).await,
        (1, 0),
        "only the good file of the cases above"
    );
}

async fn a_stopped_import_resumes_from_its_checkpoint(catalog: &dyn Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let files = good_files();
    let broken = vec![files[0].clone(), (files[1].0.clone(), Some("0".repeat(32)))];
    let from = write_report(dir.path(), SCHEMA, &broken);
    run(catalog, &from, false).await.unwrap_err();
    // The report is fixed (same manifest key): the import continues at the second file.
    write_report(dir.path(), SCHEMA, &files);
    let s = run(catalog, &from, false).await.unwrap();
    assert_eq!(s.resumed_at_unit, 1);
    assert_eq!(
        (
            s.originals.objects,
            s.thumbnails.objects,
            s.unmatched.objects
        ),
        (3, 4, 1)
    );
    assert_eq!(catalog_counts(catalog).await, (3, 3));
}

async fn app_manifest_gives_the_ids(catalog: &dyn Catalog) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.csv");
    std::fs::write(
        &path,
        "couple,photo,key,role,bytes\n\
         u-1,9f2c,a/x.jpg,original,10\n\
         u-1,9f2c,b/x-small.jpg,thumbnail:160,2\n\
         u-2,77,\"c/with,comma.jpg\",original,\n",
    )
    .unwrap();
    let from = format!("csv:{}", path.display());
    let s = run(catalog, &from, false).await.unwrap();
    assert_eq!(
        (s.photos_added, s.thumbnails_added, s.couples_added),
        (2, 1, 2)
    );

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "couple,photo,key,role\nu-3,1,k.jpg,poster\n").unwrap();
    let err = run(catalog, &format!("csv:{}", bad.display()), false)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("\"poster\""),
        "{err}"
    );
    assert_eq!(catalog_counts(catalog).await, (2, 1));
}

async fn sqlite() -> (tempfile::TempDir, std::sync::Arc<dyn Catalog>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    (dir, recast_catalog::open(&url).await.unwrap())
}

async fn postgres() -> std::sync::Arc<dyn Catalog> {
    let url = recast_catalog::conformance::fresh_postgres().await;
    recast_catalog::open(&url).await.unwrap()
}

#[tokio::test]
async fn import_inventory_sqlite() {
    let (_d, c) = sqlite().await;
    inventory_imports_once_and_lists_the_rest(c.as_ref()).await;
}

#[tokio::test]
async fn import_bad_input_sqlite() {
    let (_d, c) = sqlite().await;
    bad_files_import_nothing_of_themselves(c.as_ref()).await;
}

#[tokio::test]
async fn import_resumes_sqlite() {
    let (_d, c) = sqlite().await;
    a_stopped_import_resumes_from_its_checkpoint(c.as_ref()).await;
}

#[tokio::test]
async fn import_app_manifest_sqlite() {
    let (_d, c) = sqlite().await;
    app_manifest_gives_the_ids(c.as_ref()).await;
}

#[tokio::test]
async fn import_inventory_postgres() {
    inventory_imports_once_and_lists_the_rest(postgres().await.as_ref()).await;
}

#[tokio::test]
async fn import_bad_input_postgres() {
    bad_files_import_nothing_of_themselves(postgres().await.as_ref()).await;
}

#[tokio::test]
async fn import_resumes_postgres() {
    a_stopped_import_resumes_from_its_checkpoint(postgres().await.as_ref()).await;
}

#[tokio::test]
async fn import_app_manifest_postgres() {
    app_manifest_gives_the_ids(postgres().await.as_ref()).await;
}

#[tokio::test]
async fn catalog_import_conformance_sqlite() {
    let (_d, c) = sqlite().await;
    recast_catalog::conformance_import::import_stages_then_resolves_once(c.as_ref()).await;
}

#[tokio::test]
async fn catalog_import_conformance_postgres() {
    recast_catalog::conformance_import::import_stages_then_resolves_once(postgres().await.as_ref())
        .await;
}

#[tokio::test]
async fn catalog_import_overlap_sqlite() {
    let (_d, c) = sqlite().await;
    recast_catalog::conformance_import::import_adds_exactly_the_missing_thumbnails(c.as_ref())
        .await;
}

#[tokio::test]
async fn catalog_import_overlap_postgres() {
    recast_catalog::conformance_import::import_adds_exactly_the_missing_thumbnails(
        postgres().await.as_ref(),
    )
    .await;
}

//! `recast export --out s3://BUCKET/KEY` streams a multipart upload (one part in memory however
//! large the export): against moto's S3, an export of more than one part (parts set to S3's 5 MiB
//! minimum through the hidden RECAST_EXPORT_PART_BYTES) is read back and must equal the same
//! export written to a file. Needs moto 5.2.5 or later (see the assertion on its answer below).

mod common;

use common::Env;

/// Photos in the catalog: with ~130-byte rows, an export of ~7.8 MB, two parts of 5 MiB.
const PHOTOS: usize = 60_000;
const PART_BYTES: usize = 5 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_to_s3_in_parts_reads_back_equal_to_the_file() {
    let env = Env::on_services().await;
    let mut manifest = String::from("couple,photo,key,role\n");
    let padding = "p".repeat(60);
    for p in 0..PHOTOS {
        let c = p / 60;
        manifest += &format!("{c},{p},photos/{c}/{p}-{padding}.jpg,original\n");
    }
    let manifest_path = env.path("manifest.csv");
    std::fs::write(&manifest_path, manifest).unwrap();
    let from = format!("csv:{}", manifest_path.display());
    env.ok(&["import", "--db", &env.db(), "--from", &from]);
    env.ok(&[
        "launch",
        "--db",
        &env.db(),
        "--queue",
        &env.queue(),
        "--run",
        "r1",
    ]);

    let file = env.path("export.csv");
    env.ok(&[
        "export",
        "--db",
        &env.db(),
        "--run",
        "r1",
        "--out",
        file.to_str().unwrap(),
    ]);
    let expected = std::fs::read(&file).unwrap();
    assert!(
        expected.len() > PART_BYTES,
        "the export ({} bytes) is bigger than one part",
        expected.len()
    );

    let bucket = env
        .store()
        .strip_prefix("s3://")
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let url = format!("s3://{bucket}/reports/export.csv");
    let args = ["export", "--db", &env.db(), "--run", "r1", "--out", &url];
    let out = env
        .recast(&args)
        .env("RECAST_EXPORT_PART_BYTES", PART_BYTES.to_string())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(
            "got StartEl { name: Name { prefix: \"\", local: \"CompleteMultipartUploadResponse\""
        ),
        "moto before 5.2.5 answers CompleteMultipartUpload with a wrong root element \
         (getmoto/moto#10055), which the AWS SDK refuses; upgrade it: \
         python3 -m pip install -U 'moto[server]>=5.2.5'"
    );
    common::assert_success(&out, &args);

    let s3 = recast_store::S3Store::new(&bucket, "", true).await;
    let head = s3
        .client()
        .head_object()
        .bucket(&bucket)
        .key("reports/export.csv")
        .send()
        .await
        .unwrap();
    let parts = expected.len().div_ceil(PART_BYTES);
    assert!(
        head.e_tag()
            .unwrap_or_default()
            .ends_with(&format!("-{parts}\"")),
        "a multipart object of {parts} parts: ETag {:?}",
        head.e_tag()
    );
    let got = recast_store::ObjectStore::get(&s3, "reports/export.csv")
        .await
        .unwrap();
    assert!(got.as_ref() == expected.as_slice(), "read back equal");
}

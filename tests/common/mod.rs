//! Shared set-up of the end-to-end tests: they drive the real `recast` binary against the
//! embedded backends in a temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_recast");

/// A port on 127.0.0.1 that nothing listens on now (for a server a test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ../shared/photos beside the repository, or RECAST_TEST_PHOTOS.
pub fn shared_photos() -> PathBuf {
    let dir = std::env::var_os("RECAST_TEST_PHOTOS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/photos"));
    assert!(
        dir.is_dir(),
        "test photos folder {} is missing (set RECAST_TEST_PHOTOS)",
        dir.display()
    );
    dir
}

pub struct Env {
    pub dir: tempfile::TempDir,
    /// URLs of PostgreSQL, S3 and SQS (the servers scripts/test starts), instead of the embedded backends.
    services: Option<(String, String, String)>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            services: None,
        }
    }

    /// A fresh database, bucket and queue (with its dead-letter queue) on the test servers.
    pub async fn on_services() -> Env {
        let db = recast_catalog::conformance::fresh_postgres().await;
        let tag = format!("{:08x}", fastrand::u32(..));
        let bucket = format!("recast-e2e-{tag}");
        let s3 = recast_store::S3Store::new(&bucket, "", true).await;
        s3.client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .expect("bucket created on the S3 server");
        let spec = recast_queue::SqsQueueSpec {
            max_receives: 1000,
            visibility_timeout: std::time::Duration::from_secs(30),
        };
        let queue = recast_queue::SqsQueue::create(&format!("recast-e2e-{tag}"), spec)
            .await
            .expect("queue created");
        Env {
            dir: tempfile::tempdir().unwrap(),
            services: Some((db, format!("s3://{bucket}/migration"), queue)),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> String {
        match &self.services {
            Some((db, _, _)) => db.clone(),
            None => format!("sqlite://{}", self.path("catalog.db").display()),
        }
    }

    pub fn store(&self) -> String {
        match &self.services {
            Some((_, store, _)) => store.clone(),
            None => format!("file://{}", self.path("store").display()),
        }
    }

    pub fn store_dir(&self) -> PathBuf {
        self.path("store")
    }

    /// The queue URL; a high maximum receives, so that repeated kills do not dead-letter jobs.
    pub fn queue(&self) -> String {
        format!(
            "sqlite://{}?max_receives=1000",
            self.path("queue.db").display()
        )
    }

    /// The SQS queue created on the test server by [`Env::on_services`] (`queue` stays the
    /// embedded one).
    pub fn sqs_queue(&self) -> Option<String> {
        self.services.as_ref().map(|(_, _, q)| q.clone())
    }

    /// A folder with the shared photos plus one corrupt file, for `seed --photos`.
    pub fn photos_with_corrupt(&self) -> PathBuf {
        let dir = self.path("photos");
        std::fs::create_dir_all(&dir).unwrap();
        for entry in std::fs::read_dir(shared_photos()).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name().to_string_lossy().ends_with(".jpg") {
                std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
            }
        }
        std::fs::write(
            dir.join("zz-corrupt.jpg"),
            b"this file is not a JPEG, only its name says so",
        )
        .unwrap();
        dir
    }

    pub fn recast(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args).env("RUST_LOG", "warn").env_remove("RECAST_DB");
        c
    }

    /// Runs `recast` to its end and insists it succeeded.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.recast(args).output().unwrap();
        assert_success(&out, args);
        String::from_utf8(out.stdout).unwrap()
    }
}

pub fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "recast {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Catalog rows for couples 1..=n, each with two photos and a thumbnail per photo, except the
/// couples `without_photos` picks: for tests of launch and status, which need no stored objects.
pub fn catalog_couples(
    n: i64,
    without_photos: impl Fn(i64) -> bool,
) -> Vec<recast_catalog::NewCouple> {
    use recast_core::{CoupleId, PhotoId};
    (1..=n)
        .map(|c| recast_catalog::NewCouple {
            id: CoupleId(c),
            photos: if without_photos(c) {
                Vec::new()
            } else {
                [2 * c - 1, 2 * c]
                    .into_iter()
                    .map(|p| recast_catalog::NewPhoto {
                        id: PhotoId(p),
                        original_key: format!("photos/{c}/{p}.jpg"),
                        format: "jpeg".into(),
                        bytes: 1000,
                        width: Some(64),
                        height: Some(48),
                        thumbnails: vec![recast_catalog::NewThumbnail {
                            key: format!("thumbs/{c}/{p}_160.jpg"),
                            bytes: 100,
                        }],
                    })
                    .collect()
            },
        })
        .collect()
}

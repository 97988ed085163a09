//! Set-up of the fault suite: a PostgreSQL cluster of its own (so that restarting it disturbs no
//! other test), a bucket and a queue on the S3/SQS server, small photos made from the shared ones,
//! and `recast work` processes that reach S3 and SQS through a fault proxy.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{assert_success, free_port, shared_photos, Env};

/// A throwaway PostgreSQL cluster started with the binaries scripts/services found.
pub struct Pg {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(program: &Path) -> Command {
    // scripts/test runs as root, and PostgreSQL refuses to run as root.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

impl Pg {
    pub fn start() -> Pg {
        let pg_ctl = std::env::var("RECAST_TEST_PG_CTL").expect(
            "RECAST_TEST_PG_CTL is not set: run the tests with scripts/test, which starts PostgreSQL",
        );
        let bin = Path::new(&pg_ctl).parent().unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let chown = Command::new("chown")
            .arg("postgres")
            .arg(dir.path())
            .status();
        assert!(chown.is_ok_and(|s| s.success()) || !Path::new("/root").exists());
        let out = as_postgres(&bin.join("initdb"))
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-A", "trust", "-U", "postgres"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let pg = Pg {
            bin,
            dir,
            port: free_port(),
        };
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off \
             -c full_page_writes=off -c max_connections=200",
            pg.port,
            pg.dir.path().display()
        );
        pg.pg_ctl(&["-o", &opts, "start"]);
        pg
    }

    fn pg_ctl(&self, args: &[&str]) {
        let out = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .arg("-l")
            .arg(self.dir.path().join("log"))
            .arg("-w")
            .args(args)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// A fast shutdown (open connections are cut, as in a failover) and a start.
    pub fn restart(&self) {
        self.pg_ctl(&["-m", "fast", "restart"]);
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// A run's places: catalog, store and queue URLs, and the server straight (no proxy).
pub struct Run {
    pub env: Env,
    pub db: String,
    pub store: String,
    pub queue: String,
    pub photos: u64,
}

/// The shared photos, scaled down to at most 640 px so that a two-core machine converts a run of
/// them in seconds (the fault paths, not the codec, are under test here).
fn small_photos(env: &Env) -> PathBuf {
    let dir = env.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(shared_photos()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jpg") {
            continue;
        }
        // A photo the image crate cannot open (CMYK, say) is left out: the others suffice.
        if let Ok(img) = image::open(&path) {
            img.thumbnail(640, 640)
                .to_rgb8()
                .save(dir.join(path.file_name().unwrap()))
                .unwrap();
        }
    }
    dir
}

/// Seeds `couples` couples of three photos (three thumbnails each) and launches the run, straight
/// against the servers; the queue dead-letters a message after `max_receives` receives.
pub async fn seed_and_launch(db: String, couples: u32, max_receives: u32) -> Run {
    let env = Env::new();
    let tag = format!("{:08x}", fastrand::u32(..));
    let bucket = format!("recast-faults-{tag}");
    let s3 = recast_store::S3Store::new(&bucket, "", true).await;
    s3.client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("bucket created on the S3 server");
    let spec = recast_queue::SqsQueueSpec {
        max_receives,
        visibility_timeout: Duration::from_secs(5),
    };
    let queue = recast_queue::SqsQueue::create(&format!("recast-faults-{tag}"), spec)
        .await
        .expect("queue created");
    let store = format!("s3://{bucket}/migration");
    let photos = small_photos(&env);
    let n = couples.to_string();
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &store,
        "--photos",
        photos.to_str().unwrap(),
        "--couples",
        &n,
        "--min-photos",
        "3",
        "--max-photos",
        "3",
        "--thumbs",
        "3",
    ]);
    env.ok(&["launch", "--db", &db, "--queue", &queue]);
    Run {
        env,
        db,
        store,
        queue,
        photos: u64::from(couples) * 3,
    }
}

impl Run {
    /// A `recast work --exit-when-idle` whose S3 and SQS requests go to `endpoint`; its log goes
    /// to a file of the test's folder.
    pub fn worker(&self, endpoint: &str, name: &str) -> Child {
        let log = std::fs::File::create(self.env.path(&format!("{name}.log"))).unwrap();
        self.env
            .recast(&[
                "work",
                "--db",
                &self.db,
                "--store",
                &self.store,
                "--queue",
                &self.queue,
                "--worker-name",
                name,
                "--exit-when-idle",
                "--visibility-timeout",
                "5s",
                "--poll-wait",
                "1s",
                "--heartbeat",
                "1s",
                "--sweep-lease",
                "3s",
                "--spot-watch",
                "off",
            ])
            .env("AWS_ENDPOINT_URL", endpoint)
            // Each job's receive, outcome and put-back in the log: a failure prints the logs.
            .env("RUST_LOG", "info,aws=warn,sqlx=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.env.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Every worker's log, each under its name, for a failure message: a run that ends wrong
    /// must show what its workers did, not only the final counts.
    pub fn all_logs(&self) -> String {
        let mut names: Vec<String> = std::fs::read_dir(self.env.dir.path())
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                Some(name.strip_suffix(".log")?.to_string())
            })
            .collect();
        names.sort();
        names
            .iter()
            .map(|n| format!("\n--- {n}'s log:\n{}", self.log(n)))
            .collect()
    }

    /// Waits for a worker to exit by itself, and insists it succeeded.
    pub fn finish(&self, mut child: Child, name: &str, deadline: Instant) {
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "worker {name} exited with {status}; its log:\n{}",
                    self.log(name)
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "worker {name} did not finish in time; its log:\n{}",
                    self.log(name)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every photo migrated (none failed), `recast verify` clean, the queue and its dead-letter
    /// queue empty. All read straight from the servers, not through the proxy.
    pub async fn assert_nothing_lost(&self) {
        let status: serde_json::Value =
            serde_json::from_str(&self.env.ok(&["status", "--db", &self.db, "--json"])).unwrap();
        let q = recast_queue::SqsQueue::open(&self.queue).await.unwrap();
        let stats = recast_queue::JobQueue::stats(&q).await.unwrap();
        assert_eq!(
            status["complete"],
            true,
            "queue: {stats:?} (dead = dead-lettered)\n{status:#}{}",
            self.all_logs()
        );
        assert_eq!(
            status["status"]["by_state"]["done"]["photos"].as_u64(),
            Some(self.photos),
            "every photo migrated: {status:#}"
        );
        assert!(
            status["status"]["failures"]
                .as_object()
                .is_none_or(|f| f.is_empty()),
            "no photo recorded failed: {status:#}"
        );
        let args = ["verify", "--db", &self.db, "--store", &self.store];
        let out = self.env.recast(&args).output().unwrap();
        assert_success(&out, &args);
        assert_eq!(
            (stats.visible, stats.in_flight, stats.dead),
            (0, 0, 0),
            "queue or dead-letter queue not empty"
        );
    }

    /// Thumbnails still in the store.
    pub async fn thumbnails_left(&self) -> usize {
        let store = recast_store::open(&self.store).await.unwrap();
        store
            .list("")
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.key.starts_with("thumbs/"))
            .count()
    }
}

impl Run {
    /// Polls `done` while the workers run: fails with `what` and every worker's log at the
    /// deadline, or at once when every worker has exited (nothing more can happen then).
    pub fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        workers: &mut [(Child, &str)],
        mut done: impl FnMut() -> bool,
    ) {
        let until = Instant::now() + timeout;
        while !done() {
            let exited: Vec<String> = workers
                .iter_mut()
                .filter_map(|(c, n)| c.try_wait().unwrap().map(|s| format!("{n} ({s})")))
                .collect();
            let why = if exited.len() == workers.len() {
                Some(format!("every worker exited: {}", exited.join(", ")))
            } else if Instant::now() >= until {
                Some(format!("timed out (exited: {exited:?})"))
            } else {
                None
            };
            if let Some(why) = why {
                panic!("waiting until {what}: {why}{}", self.all_logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Polls `done` until it holds, or fails with `what` at the deadline.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

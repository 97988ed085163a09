//! Configuration mistakes end to end, through the real binary against PostgreSQL and moto on
//! 127.0.0.1 (scripts/test starts them): each exits 1 within seconds with one line naming the
//! mistake and its fix, instead of retrying forever.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::Env;

/// Runs `recast` and returns its output and time; insists on exit 1 within 20 s.
fn refused(env: &Env, args: &[&str], envs: &[(&str, &str)]) -> (String, Duration) {
    let started = Instant::now();
    let mut cmd = env.recast(args);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A retry loop would never end: kill it at 20 s and fail.
    while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
    }
    let out: Output = child.wait_with_output().unwrap();
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{args:?} after {took:?}: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("recast: error:"))
        .unwrap_or_else(|| panic!("no error line: {err}"))
        .to_owned();
    println!("{:?} -> exit 1 in {took:?}: {line}", args[0]);
    (line, took)
}

/// A seeded and launched run on the test servers.
async fn launched() -> Env {
    let env = Env::on_services().await;
    let photos = env.photos_with_corrupt();
    env.ok(&[
        "seed",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--photos",
        photos.to_str().unwrap(),
        "--couples",
        "2",
        "--max-photos",
        "2",
    ]);
    env.ok(&["launch", "--db", &env.db(), "--queue", &env.queue()]);
    env
}

fn work_args<'a>(db: &'a str, store: &'a str, queue: &'a str) -> Vec<&'a str> {
    vec![
        "work",
        "--db",
        db,
        "--store",
        store,
        "--queue",
        queue,
        "--exit-when-idle",
        "--spot-watch",
        "off",
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_that_does_not_exist_is_named() {
    let env = launched().await;
    let (db, store) = (env.db(), env.store());
    let missing = format!("{}-nope", env.sqs_queue().unwrap());
    let (line, _) = refused(&env, &work_args(&db, &store, &missing), &[]);
    assert!(line.contains("queue does not exist"), "{line}");
    assert!(line.contains("recast queue create"), "{line}");
    let (line, _) = refused(&env, &["launch", "--db", &db, "--queue", &missing], &[]);
    assert!(line.contains("queue does not exist"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bucket_that_does_not_exist_is_named() {
    let env = launched().await;
    let (db, queue) = (env.db(), env.queue());
    let store = "s3://recast-no-such-bucket-here/migration";
    let (line, _) = refused(&env, &work_args(&db, store, &queue), &[]);
    assert!(line.contains("bucket does not exist"), "{line}");
    assert!(line.contains("--store"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_credentials_are_named() {
    let env = launched().await;
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    let cmd_env = [
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials"),
        ("AWS_CONFIG_FILE", "/nonexistent/config"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ];
    let (line, _) = refused(&env, &work_args(&db, &store, &queue), &cmd_env);
    assert!(line.contains("no AWS credentials"), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unmigrated_catalog_is_named() {
    let env = Env::new();
    let empty = recast_catalog::conformance::fresh_postgres().await;
    let out = env.path("report");
    let (line, _) = refused(
        &env,
        &["report", "--db", &empty, "--out", out.to_str().unwrap()],
        &[],
    );
    assert!(line.contains("no recast schema"), "{line}");
    // A mistyped SQLite path for a reading verb: named, and not created.
    let typo = format!("sqlite://{}", env.path("catalgo.db").display());
    let (line, _) = refused(
        &env,
        &["report", "--db", &typo, "--out", out.to_str().unwrap()],
        &[],
    );
    assert!(line.contains("catalog"), "{line}");
    assert!(
        !env.path("catalgo.db").exists(),
        "a reading verb created the catalog"
    );
    // `work` on an empty database: no run to work for.
    std::fs::create_dir_all(env.store_dir()).unwrap();
    let (line, _) = refused(&env, &work_args(&empty, &env.store(), &env.queue()), &[]);
    assert!(
        line.contains("does not exist; create it with `recast launch`"),
        "{line}"
    );
}

/// A moto server of the test's own that enforces IAM (moto's `INITIAL_NO_AUTH_ACTION_COUNT`: the
/// first requests go unchecked, every later one is authorised against IAM), so that S3 answers a
/// real `AccessDenied`; killed when dropped. The shared server cannot do this without denying
/// every other test.
struct AuthorisingMoto {
    child: std::process::Child,
    url: String,
}

impl Drop for AuthorisingMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts it, and makes (in its unchecked first three requests) a user with no policy at all:
/// every S3 request of that user is implicitly denied. Returns the server and the user's keys.
fn moto_with_a_user_denied_s3() -> (AuthorisingMoto, String, String) {
    let port = common::free_port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server (scripts/test installs it)");
    let moto = AuthorisingMoto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let script = r#"
import sys, boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="recast-test", aws_secret_access_key="recast-test")
iam.create_user(UserName="denied")
iam.get_user(UserName="denied")
key = iam.create_access_key(UserName="denied")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, &moto.url])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "IAM set-up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut parts = text.split_whitespace();
    let (id, secret) = (parts.next().unwrap(), parts.next().unwrap());
    (moto, id.to_owned(), secret.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_denies_access_is_named() {
    let env = launched().await;
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    let (moto, id, secret) = moto_with_a_user_denied_s3();
    let cmd_env = [
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", id.as_str()),
        ("AWS_SECRET_ACCESS_KEY", secret.as_str()),
    ];
    let (line, _) = refused(&env, &work_args(&db, &store, &queue), &cmd_env);
    assert!(line.contains("is denied by the store"), "{line}");
    assert!(line.contains("s3:GetObject"), "{line}");
}

/// A login role on the run's database that may do all a worker does except write photo
/// progress: a missing grant, which every job meets at its first record.
async fn role_without_progress_writes(db: &str) -> String {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(db).await.unwrap();
    let role = format!("recast_worker_{:08x}", fastrand::u32(..));
    for statement in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}"),
        format!("REVOKE INSERT, UPDATE ON photo_progress FROM {role}"),
    ] {
        sqlx::query(&statement).execute(&mut admin).await.unwrap();
    }
    let mut url = url::Url::parse(db).unwrap();
    url.set_username(&role).unwrap();
    url.to_string()
}

/// A database that refuses the worker's writes (a missing grant here; a read-only server or a
/// full disk alike) stops the worker with the reason: every message would fail the same way, so
/// none may be dead-lettered for it, and nothing is deleted. Once the grant is fixed, the same
/// messages finish the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_that_refuses_the_workers_writes_stops_it_and_dead_letters_nothing() {
    let env = launched().await;
    let (db, store, queue) = (env.db(), env.store(), env.queue());
    let objects = || async {
        let s = recast_store::open(&env.store()).await.unwrap();
        let keys = s.list("").await.unwrap().into_iter().map(|m| m.key);
        keys.collect::<std::collections::BTreeSet<_>>()
    };
    let before = objects().await;
    let restricted = role_without_progress_writes(&db).await;
    let (line, _) = refused(&env, &work_args(&restricted, &store, &queue), &[]);
    assert!(line.contains("the worker stopped"), "{line}");
    assert!(line.contains("the catalog refuses"), "{line}");
    assert!(line.contains("permission denied"), "{line}");
    let q = recast_queue::SqliteQueue::open(&queue).await.unwrap();
    let stats = recast_queue::JobQueue::stats(&q).await.unwrap();
    assert_eq!(
        stats.dead, 0,
        "a database-wide refusal dead-lettered a job: {stats:?}"
    );
    assert_eq!(stats.visible + stats.in_flight, 2, "{stats:?}");
    // A WebP may have been stored before its record was refused (a redelivery writes it again,
    // same key); nothing may be gone.
    let after = objects().await;
    let gone: Vec<_> = before.difference(&after).collect();
    assert!(gone.is_empty(), "deleted: {gone:?}");

    env.ok(&work_args(&db, &store, &queue));
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--db", &db, "--json"])).unwrap();
    assert_eq!(status["complete"], true, "{status:#}");
}

/// A PostgreSQL that is down (or a mistyped port) is named at once, by the verbs that read the
/// catalog and by `work`: the pool alone would wait out its 30 s acquire timeout and then say
/// only "pool timed out".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_does_not_answer_is_named() {
    let env = Env::new();
    let dead = format!(
        "postgres://postgres@127.0.0.1:{}/recast",
        common::free_port()
    );
    let (store, queue) = (env.store(), env.queue());
    for args in [
        vec!["status", "--db", &dead],
        work_args(&dead, &store, &queue),
    ] {
        let (line, _) = refused(&env, &args, &[]);
        assert!(line.contains("does not answer"), "{line}");
        assert!(line.contains(&dead), "{line}");
        assert!(line.contains("check the host and port in --db"), "{line}");
    }
}

/// A mistyped local store folder is named by every verb that reads it, and is not created: a
/// created folder would be read as an empty store (an import of nothing that succeeds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_folder_that_does_not_exist_is_named_and_not_created() {
    let env = Env::new();
    let missing = env.path("no-such-folder");
    let url = format!("file://{}", missing.display());
    let db = env.db();
    recast_catalog::open(&db).await.unwrap(); // an empty catalog: the store is looked at first
    let queue = env.queue();
    for args in [
        vec!["import", "--db", &db, "--from", &url],
        vec!["verify", "--db", &db, "--store", &url],
        vec!["serve", "--store", &url, "--listen", "127.0.0.1:0"],
        work_args(&db, &url, &queue),
    ] {
        let (line, _) = refused(&env, &args, &[]);
        assert!(line.contains("no folder"), "{line}");
        assert!(line.contains("nothing was created"), "{line}");
        assert!(!missing.exists(), "{args:?} created the folder");
    }
}

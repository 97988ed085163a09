//! Fleet safety end to end, through the real binary: in-flight discipline under a queue cap,
//! drains on SIGTERM and on a spot interruption notice, leases against duplicate deliveries, and
//! jobs over their maximum duration.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{assert_success, Env};

/// A folder of `n` JPEGs of `w`x`h`, with some texture so they take real encoding work.
fn photos(env: &Env, name: &str, n: u32, w: u32, h: u32) -> String {
    let dir = env.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..n {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            let r = (x * 255 / w) as u8;
            let g = (y * 255 / h) as u8;
            image::Rgb([r, g, (((x ^ y) + i * 40) & 0x7f) as u8])
        });
        img.save(dir.join(format!("p{i}.jpg"))).unwrap();
    }
    dir.to_str().unwrap().to_owned()
}

fn seed_and_launch(env: &Env, photos: &str, couples: u32, per_couple: u32, queue: &str) {
    let (db, store) = (env.db(), env.store());
    let n = per_couple.to_string();
    env.ok(&[
        "seed",
        "--db",
        &db,
        "--store",
        &store,
        "--photos",
        photos,
        "--couples",
        &couples.to_string(),
        "--min-photos",
        &n,
        "--max-photos",
        &n,
        "--thumbs",
        "5",
    ]);
    env.ok(&["launch", "--db", &db, "--queue", queue]);
}

fn work(env: &Env, queue: &str, name: &str, extra: &[&str]) -> Child {
    let (db, store) = (env.db(), env.store());
    let mut args = vec![
        "work",
        "--db",
        &db,
        "--store",
        &store,
        "--queue",
        queue,
        "--worker-name",
        name,
        "--poll-wait",
        "100ms",
        "--heartbeat",
        "1s",
        "--spot-watch",
        "off",
    ];
    args.extend_from_slice(extra);
    env.recast(&args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child, what: &str) -> Output {
    let out = child.wait_with_output().unwrap();
    assert_success(&out, &[what]);
    out
}

fn status(env: &Env) -> serde_json::Value {
    serde_json::from_str(&env.ok(&["status", "--db", &env.db(), "--json"])).unwrap()
}

/// Every photo migrated (none failed), every couple complete.
fn assert_complete(env: &Env, photos: u64) {
    let s = status(env);
    assert_eq!(s["complete"], true, "{s:#}");
    assert_eq!(s["photos_total"].as_u64(), Some(photos), "{s:#}");
    assert_eq!(
        s["status"]["by_state"]["done"]["photos"].as_u64(),
        Some(photos),
        "{s:#}"
    );
    assert!(
        s["status"]["failures"].as_object().unwrap().is_empty(),
        "{s:#}"
    );
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The job attempts of the run: (couple, worker, outcome, started, finished).
async fn attempts(env: &Env) -> Vec<(i64, String, String, i64, i64)> {
    let pool = sqlx::SqlitePool::connect(&env.db()).await.unwrap();
    sqlx::query_as(
        "SELECT couple_id, worker, outcome, started_at, finished_at FROM job_attempts
         WHERE couple_id IS NOT NULL ORDER BY started_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[test]
fn three_workers_stay_inside_an_in_flight_cap_of_20() {
    let env = Env::new();
    let queue = format!(
        "sqlite://{}?in_flight_cap=20&max_receives=1000",
        env.path("queue.db").display()
    );
    let dir = photos(&env, "small", 4, 160, 120);
    seed_and_launch(&env, &dir, 120, 2, &queue);
    let workers: Vec<Child> = (0..3)
        .map(|i| {
            work(
                &env,
                &queue,
                &format!("cap-{i}"),
                &[
                    "--concurrency",
                    "16",
                    "--max-in-flight",
                    "20",
                    "--exit-when-idle",
                ],
            )
        })
        .collect();
    let outs: Vec<Output> = workers.into_iter().map(|w| finish(w, "work")).collect();
    let mut completed = 0;
    let mut over_limit = 0;
    for o in &outs {
        let out = stdout(o);
        // No job was retried, released or dead-lettered: the cap never reached a job.
        assert!(
            out.contains(" 0 released for retry, 0 released by a drain"),
            "{out}"
        );
        assert!(out.contains(" 0 dead-lettered"), "{out}");
        completed += out
            .split(" jobs completed")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap();
        over_limit += stderr(o).matches("in-flight cap").count();
    }
    assert_eq!(completed, 120);
    assert_complete(&env, 240);
    println!("OverLimit answers at receive (none reached a job): {over_limit}");
}

/// Two workers; `a` holds long jobs when it is told to go (by `trigger`), drains within its
/// deadline, exits 0, and `b` receives the released jobs within 2 s.
fn drain_hands_over(
    trigger: impl FnOnce(&Child),
    a_extra: &[&str],
    env: &Env,
) -> (Output, Duration) {
    let queue = env.queue();
    // Couples of 24 photos converted one at a time: a job takes several seconds, more than the
    // 3 s drain deadline leaves it.
    let dir = photos(env, "big", 3, 2000, 1500);
    seed_and_launch(env, &dir, 6, 24, &queue);
    let mut a_args = vec![
        "--concurrency",
        "2",
        "--photo-parallelism",
        "1",
        "--record-batch",
        "2",
        "--drain-deadline",
        "3s",
        "--exit-when-idle",
    ];
    a_args.extend_from_slice(a_extra);
    let a = work(env, &queue, "drain-a", &a_args);
    std::thread::sleep(Duration::from_millis(1500));
    // b starts after a took its two jobs, with room for everything a releases.
    let b = work(
        env,
        &queue,
        "drain-b",
        &[
            "--concurrency",
            "16",
            "--photo-parallelism",
            "2",
            "--exit-when-idle",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let told = Instant::now();
    trigger(&a);
    let a_out = a.wait_with_output().unwrap();
    let drained_in = told.elapsed();
    assert_success(&a_out, &["work (drained)"]);
    let b_out = finish(b, "work");
    assert!(
        stdout(&b_out).contains(" 0 dead-lettered"),
        "{}",
        stdout(&b_out)
    );
    assert_complete(env, 6 * 24);
    (a_out, drained_in)
}

/// a's released jobs, and how long after each release b started on the couple.
fn handover_delays(env: &Env) -> Vec<i64> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(attempts(env));
    let released: Vec<_> = rows
        .iter()
        .filter(|r| r.1 == "drain-a" && r.2 == "released")
        .collect();
    assert!(!released.is_empty(), "a released nothing: {rows:?}");
    released
        .iter()
        .map(|r| {
            let next = rows
                .iter()
                .find(|n| n.0 == r.0 && n.1 == "drain-b" && n.3 >= r.4 - 50)
                .unwrap_or_else(|| {
                    panic!("b never took couple {} after a released it: {rows:?}", r.0)
                });
            next.3 - r.4
        })
        .collect()
}

#[test]
fn sigterm_drains_within_the_deadline_and_another_worker_takes_over() {
    let env = Env::new();
    let (a, took) = drain_hands_over(
        |a| {
            let ok = std::process::Command::new("kill")
                .args(["-TERM", &a.id().to_string()])
                .status()
                .unwrap();
            assert!(ok.success());
        },
        &[],
        &env,
    );
    // Bounds derived from the configured values, with room for a loaded CI machine: a drain that
    // ignored its deadline would wait for whole jobs of 24 photos; one that worked ends near 3 s.
    let deadline = Duration::from_secs(3);
    assert!(
        took < deadline * 3,
        "drain took {took:?} against a {deadline:?} deadline"
    );
    let err = stderr(&a);
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(err.contains("left the fleet"), "{err}");
    let released: u64 = stdout(&a)
        .split(" released by a drain")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(released >= 1, "{}", stdout(&a));
    let delays = handover_delays(&env);
    println!("drain took {took:?}; released jobs taken over after {delays:?} ms");
    // Released with visibility 0, a job is received again at once; had it been left to its
    // visibility timeout (the workers' default, 120 s), b would wait that long. Half of it tells
    // one from the other on any machine.
    let visibility = recast_worker::WorkerConfig::default().visibility;
    assert!(
        delays
            .iter()
            .all(|d| *d < visibility.as_millis() as i64 / 2),
        "{delays:?} against a visibility timeout of {visibility:?}"
    );
}

/// A metadata service that answers like IMDSv2: a token for a PUT, 404 for the notices until
/// `notice` is set, then the spot interruption JSON. Counts requests that carried the token.
struct FakeImds {
    url: String,
    notice: Arc<AtomicBool>,
    authorised: Arc<AtomicU64>,
}

fn fake_imds() -> FakeImds {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let notice = Arc::new(AtomicBool::new(false));
    let authorised = Arc::new(AtomicU64::new(0));
    let (n, a) = (notice.clone(), authorised.clone());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (n, a) = (n.clone(), a.clone());
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (
                        parts.next().unwrap_or("").to_owned(),
                        parts.next().unwrap_or("").to_owned(),
                    );
                    let mut len = 0usize;
                    let mut token = false;
                    loop {
                        let mut h = String::new();
                        reader.read_line(&mut h).unwrap();
                        let lower = h.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                        token |= lower.starts_with("x-aws-ec2-metadata-token: fake-token");
                        if h == "\r\n" || h.is_empty() {
                            break;
                        }
                    }
                    let mut body = vec![0; len];
                    reader.read_exact(&mut body).unwrap();
                    let (status, body) = match (method.as_str(), path.as_str()) {
                        ("PUT", "/latest/api/token") => ("200 OK", "fake-token".to_owned()),
                        ("GET", "/latest/meta-data/spot/instance-action") if token => {
                            a.fetch_add(1, Ordering::Relaxed);
                            if n.load(Ordering::Relaxed) {
                                (
                                    "200 OK",
                                    r#"{"action":"terminate","time":"2026-11-26T12:00:00Z"}"#
                                        .to_owned(),
                                )
                            } else {
                                ("404 Not Found", String::new())
                            }
                        }
                        ("GET", _) if token => ("404 Not Found", String::new()),
                        _ => ("401 Unauthorized", String::new()),
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\ncontent-type: text/plain\r\n\r\n{body}",
                        body.len()
                    );
                    if conn.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    FakeImds {
        url,
        notice,
        authorised,
    }
}

#[test]
fn a_spot_interruption_notice_drains_like_sigterm() {
    let env = Env::new();
    let imds = fake_imds();
    let endpoint = imds.url.clone();
    let queue = env.queue();
    let dir = photos(&env, "big", 3, 640, 480);
    seed_and_launch(&env, &dir, 4, 16, &queue);
    let (db, store) = (env.db(), env.store());
    let a = env
        .recast(&[
            "work",
            "--db",
            &db,
            "--store",
            &store,
            "--queue",
            &queue,
            "--worker-name",
            "spot-a",
            "--poll-wait",
            "100ms",
            "--heartbeat",
            "1s",
            "--concurrency",
            "2",
            "--photo-parallelism",
            "1",
            "--record-batch",
            "2",
            "--drain-deadline",
            "6s",
            "--spot-watch",
            "on",
            "--spot-poll",
            "500ms",
        ])
        .env("RUST_LOG", "info")
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &endpoint)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        imds.authorised.load(Ordering::Relaxed) >= 2,
        "the worker is not polling the notice with a token"
    );
    let told = Instant::now();
    imds.notice.store(true, Ordering::Relaxed);
    let out = a.wait_with_output().unwrap();
    let took = told.elapsed();
    assert_success(&out, &["work (spot notice)"]);
    let deadline = Duration::from_secs(6);
    assert!(
        took < deadline * 3,
        "drain took {took:?} against a {deadline:?} deadline"
    );
    let err = stderr(&out);
    assert!(err.contains("spot-interruption"), "{err}");
    assert!(err.contains("left the fleet"), "{err}");
    // What a did is recorded; the rest is back in the queue for the next worker.
    let b = work(&env, &queue, "spot-b", &["--exit-when-idle"]);
    finish(b, "work");
    assert_complete(&env, 4 * 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_deliveries_never_run_one_couple_twice_at_once() {
    let env = Env::new();
    let queue = env.queue();
    let dir = photos(&env, "mid", 3, 500, 400);
    seed_and_launch(&env, &dir, 8, 8, &queue);
    // A duplicate of every message, as SQS's at-least-once delivery may hand out.
    let q = recast_queue::open(&queue).await.unwrap();
    let dups: Vec<recast_queue::OutgoingMessage> = (1..=8)
        .map(|c| recast_queue::OutgoingMessage {
            dedup_id: format!("dup/{c}"),
            body: format!(r#"{{"v":1,"run":"main","couple":{c}}}"#),
        })
        .collect();
    assert!(q
        .send_batch(&dups[..8])
        .await
        .unwrap()
        .iter()
        .all(Result::is_ok));
    let workers: Vec<Child> = (0..2)
        .map(|i| {
            work(
                &env,
                &queue,
                &format!("dup-{i}"),
                &[
                    "--concurrency",
                    "16",
                    "--photo-parallelism",
                    "1",
                    "--exit-when-idle",
                ],
            )
        })
        .collect();
    let outs: Vec<Output> = workers.into_iter().map(|w| finish(w, "work")).collect();
    assert_complete(&env, 64);
    let deferred: u64 = outs
        .iter()
        .map(|o| {
            stdout(o)
                .split(" duplicates deferred")
                .next()
                .and_then(|s| s.rsplit(' ').next())
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap()
        })
        .sum();
    // No two attempts at one couple overlap in time.
    let rows = attempts(&env).await;
    for (i, a) in rows.iter().enumerate() {
        for b in &rows[i + 1..] {
            if a.0 == b.0 {
                assert!(b.3 >= a.4 || a.3 >= b.4, "attempts overlap: {a:?} {b:?}");
            }
        }
    }
    assert!(
        deferred >= 1,
        "no duplicate met a held lease; the test proves nothing"
    );
    println!(
        "{deferred} duplicate deliveries deferred; {} attempts",
        rows.len()
    );
}

#[test]
fn a_job_over_its_maximum_duration_is_released_and_finished_later() {
    let env = Env::new();
    let queue = env.queue();
    let dir = photos(&env, "big", 3, 2000, 1500);
    seed_and_launch(&env, &dir, 2, 24, &queue);
    let w = work(
        &env,
        &queue,
        "slow",
        &[
            "--photo-parallelism",
            "1",
            "--record-batch",
            "2",
            "--max-job-duration",
            "2s",
            "--exit-when-idle",
        ],
    );
    let out = finish(w, "work");
    assert_complete(&env, 48);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = rt.block_on(attempts(&env));
    let released = rows.iter().filter(|r| r.2 == "released").count();
    assert!(released >= 2, "{rows:?}\n{}", stdout(&out));
    // Each released attempt made progress: fewer attempts than photos.
    assert!(rows.len() < 48, "{rows:?}");
}

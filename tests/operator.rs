//! The operator's reports end to end, through the real binary on real photos: `plan` (and that it
//! writes nothing), `status --watch`, `report` rendered in headless Chromium, and `verify`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_success, shared_photos, Env};

/// Small real photos from the shared set plus one corrupt file, so that a run has failures.
fn small_photos(env: &Env) -> String {
    let dir = env.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["astronaut.jpg", "chelsea.jpg", "coffee.jpg"] {
        std::fs::copy(shared_photos().join(name), dir.join(name)).unwrap();
    }
    std::fs::write(
        dir.join("zz-corrupt.jpg"),
        b"not a JPEG, only named like one",
    )
    .unwrap();
    dir.to_str().unwrap().to_owned()
}

/// Seeds `couples` couples of the small photos and launches a run with `originals`.
fn seed_and_launch(env: &Env, couples: u32, originals: &str) {
    let photos = small_photos(env);
    env.ok(&[
        "seed",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--photos",
        &photos,
        "--couples",
        &couples.to_string(),
        "--max-photos",
        "3",
        "--thumbs",
        "3",
    ]);
    env.ok(&[
        "launch",
        "--db",
        &env.db(),
        "--queue",
        &env.queue(),
        "--originals",
        originals,
    ]);
}

fn work(env: &Env) {
    env.ok(&[
        "work",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--queue",
        &env.queue(),
        "--exit-when-idle",
        "--poll-wait",
        "100ms",
    ]);
}

/// Every file under `dir` with a hash of its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                let bytes = std::fs::read(e.path()).unwrap();
                out.insert(e.path(), fnv1a(&bytes));
            }
        }
    }
    out
}

/// FNV-1a 64: enough to tell changed bytes apart in a test, without a hashing crate.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[test]
fn plan_writes_nothing_and_predicts_from_a_sample() {
    let env = Env::new();
    seed_and_launch(&env, 12, "delete");
    let prices = env.path("prices.json");
    std::fs::write(
        &prices,
        r#"{"instances": {"c6i.large": {"vcpus": 2, "spot_per_hour": 1000.0}}}"#,
    )
    .unwrap();
    let before = snapshot(env.dir.path());
    assert!(before.keys().any(|p| p.ends_with("catalog.db")));
    assert!(before.keys().any(|p| p.ends_with("queue.db")));
    let (db, store) = (env.db(), env.store());
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "--db",
            &db,
            "--store",
            &store,
            "--sample",
            "6",
            "--seed",
            "42",
            "--originals",
            "delete",
        ];
        args.extend_from_slice(extra);
        env.ok(&args)
    };
    let text = plan(&["--workers", "3", "--instance-type", "c6i.xlarge"]);
    for needle in [
        "Result (predicted)",
        "Cost (predicted)",
        "Limits",
        "binds",
        "c6i.xlarge",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    let md = plan(&["--markdown"]);
    assert!(md.contains("### Result (predicted)"), "{md}");
    assert!(md.contains("| S3 objects |"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&plan(&["--json"])).unwrap();
    let priced: serde_json::Value =
        serde_json::from_str(&plan(&["--json", "--prices", prices.to_str().unwrap()])).unwrap();
    // Nothing of the catalog, the store or the queue changed, to the byte.
    assert_eq!(snapshot(env.dir.path()), before, "plan wrote something");

    let sample = &json["input"]["sample"];
    assert_eq!(sample["photos"], 6);
    let outcomes = ["converted", "kept", "failed"].map(|k| sample[k].as_u64().unwrap());
    assert_eq!(outcomes.iter().sum::<u64>(), 6);
    assert!(sample["cpu_seconds"].as_f64().unwrap() > 0.0);
    let p = &json["plan"];
    if outcomes[0] > 0 {
        let ratio = p["webp_ratio"].as_f64().unwrap();
        assert!(ratio > 0.05 && ratio < 0.95, "WebP/original {ratio}");
    }
    assert!(p["duration_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(p["binding"], "cpu");
    // The same seed samples the same photos (their timing differs).
    let same = |v: &serde_json::Value| {
        let mut v = v["input"]["sample"].clone();
        v["cpu_seconds"] = serde_json::Value::Null;
        v
    };
    assert_eq!(same(&priced), same(&json));
    // Priced at $1000 an hour instead of $0.034 (the sample's timing varies between runs).
    assert!(
        priced["cost"]["instance_dollars"].as_f64().unwrap()
            > 100.0 * json["cost"]["instance_dollars"].as_f64().unwrap()
    );

    // The predicted "before" is what status counts, and the predicted requests are one GET per
    // photo, one PUT per converted photo.
    let status: serde_json::Value =
        serde_json::from_str(&env.ok(&["status", "--db", &db, "--json"])).unwrap();
    assert_eq!(p["before"]["objects"], status["objects_before"]);
    assert_eq!(p["before"]["bytes"], status["bytes_before"]);
    assert_eq!(p["requests"]["s3_get"], status["photos_total"]);

    let out = env
        .recast(&[
            "plan",
            "--db",
            &db,
            "--store",
            &store,
            "--instance-type",
            "z9.huge",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("c6i.large"));
    let out = env
        .recast(&[
            "plan",
            "--db",
            &env.path("none.db").display().to_string(),
            "--store",
            &store,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a bad URL is an error");
}

#[test]
fn status_watch_ends_when_the_run_is_complete() {
    let env = Env::new();
    seed_and_launch(&env, 3, "keep");
    work(&env);
    let out = env
        .recast(&[
            "status",
            "--db",
            &env.db(),
            "--watch",
            "--interval",
            "100ms",
        ])
        .output()
        .unwrap();
    assert_success(&out, &["status", "--watch"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("\x1b[2J\x1b[H"),
        "the screen is cleared: {text:?}"
    );
    assert!(text.contains("(100.0%)"), "{text}");
    assert!(text.contains("ETA       complete"), "{text}");
    assert!(text.contains("photos/min overall"), "{text}");
    assert!(text.contains("failures  undecodable"), "{text}");
}

fn chromium() -> String {
    std::env::var("RECAST_TEST_CHROMIUM").expect(
        "RECAST_TEST_CHROMIUM is not set: run the tests with scripts/test, which installs \
         Debian's chromium and points this at it",
    )
}

/// The DOM of a page after headless Chromium loaded it and ran its scripts.
fn rendered_dom(page: &Path, profile: &Path) -> String {
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of `attr` in the opening tag that starts with `tag_start`.
fn attribute(dom: &str, tag_start: &str, attr: &str) -> Option<String> {
    let tag = &dom[dom.find(tag_start)?..];
    let tag = &tag[..tag.find('>')?];
    let at = tag.find(&format!("{attr}=\""))? + attr.len() + 2;
    Some(tag[at..at + tag[at..].find('"')?].to_owned())
}

#[test]
fn report_renders_its_charts_in_headless_chromium() {
    let chromium_path = chromium();
    let env = Env::new();
    seed_and_launch(&env, 6, "keep");
    work(&env);
    // A second wave of couples a few seconds later, so that the run spans several of the
    // charts' buckets however fast this machine converts the first.
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    seed_and_launch(&env, 3, "keep");
    work(&env);
    let out_dir = env.path("report");
    let text = env.ok(&[
        "report",
        "--db",
        &env.db(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    for needle in [
        "Result (measured)",
        "Cost (measured)",
        "S3 objects",
        "EC2 spot hours (c6i.large)",
        "S3 DeleteObjects requests",
        "complete",
    ] {
        assert!(text.contains(needle), "no {needle:?} in:\n{text}");
    }
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(md.contains("### Result (measured)") && md.contains("### Cost (measured)"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("report.json")).unwrap())
            .unwrap();
    // The workers' heartbeat samples give the throttling series: recorded, and all zero here.
    let throttles = json["data"]["throttles"].as_array().unwrap();
    assert!(!throttles.is_empty(), "no worker samples recorded");
    assert!(throttles.iter().all(|p| p[1] == 0), "{throttles:?}");
    assert!(json["data"]["worker_hours"].as_f64().unwrap() > 0.0);

    let page = out_dir.join("index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
    let without_ns = html.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    for fetch in ["http://", "https://", " src=", " href="] {
        assert!(!without_ns.contains(fetch), "the page fetches {fetch}");
    }

    let dom = rendered_dom(&page, &env.path("chromium-profile"));
    let expected = attribute(&dom, "<body", "data-charts-expected").expect("charts expected");
    assert_eq!(expected, "6");
    assert_eq!(
        attribute(&dom, "<body", "data-charts-rendered").as_deref(),
        Some("6"),
        "not every chart rendered in {chromium_path}"
    );
    for chart in [
        "progress",
        "photos-per-minute",
        "deletes-per-minute",
        "failures-per-minute",
    ] {
        let tag = format!("<figure class=\"chart\" id=\"chart-{chart}\"");
        let points: u64 = attribute(&dom, &tag, "data-series-points")
            .unwrap_or_else(|| panic!("chart {chart} is not in the rendered page"))
            .parse()
            .unwrap();
        assert!(points >= 2, "chart {chart} drew {points} points of data");
        assert_eq!(
            attribute(&dom, &tag, "data-rendered").as_deref(),
            Some("true")
        );
    }
    // The throttling chart is drawn from the workers' samples (all zero in this run).
    let throttles = "<figure class=\"chart\" id=\"chart-throttles\"";
    let points: u64 = attribute(&dom, throttles, "data-series-points")
        .expect("the throttling chart is in the page")
        .parse()
        .unwrap();
    assert!(points >= 1, "no throttling samples drawn");
    assert_eq!(
        attribute(&dom, throttles, "data-rendered").as_deref(),
        Some("true")
    );
    assert!(!dom.contains("no throttling recorded"));
    // The corrupt photo's failures are a bar in the reasons chart.
    let reasons = &dom[dom.find("id=\"chart-reasons\"").unwrap()..];
    assert!(
        reasons.contains("failed: undecodable"),
        "no failure bar label"
    );
    assert!(reasons.contains("fill=\"#D62728\""), "no failure bar");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_what_was_done_behind_recasts_back() {
    let env = Env::new();
    seed_and_launch(&env, 8, "keep");
    work(&env);
    let (db, store) = (env.db(), env.store());
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", "--db", &db, "--store", &store];
        args.extend_from_slice(extra);
        env.recast(&args).output().unwrap()
    };
    let clean = verify(&[]);
    assert_success(&clean, &["verify"]);
    let text = String::from_utf8_lossy(&clean.stdout);
    assert!(text.contains("no violations"), "{text}");
    assert!(text.contains("decoded"), "{text}");

    // Behind recast's back: one WebP deleted, another one's bytes changed, one original deleted.
    let catalog = recast_catalog::open_read_only(&env.db()).await.unwrap();
    let run = catalog.run(None).await.unwrap();
    let photos = catalog.audit_photos(&run, None, 1000).await.unwrap();
    let with_webp: Vec<_> = photos.iter().filter(|p| p.webp.is_some()).collect();
    assert!(with_webp.len() >= 3, "{photos:?}");
    let gone = with_webp[0];
    let gone_key = &gone.webp.as_ref().unwrap().key;
    std::fs::remove_file(env.store_dir().join(gone_key)).unwrap();
    let changed_key = &with_webp[1].webp.as_ref().unwrap().key;
    let changed = env.store_dir().join(changed_key);
    let mut bytes = std::fs::read(&changed).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&changed, bytes).unwrap();
    let original_key = &with_webp[2].original_key;
    std::fs::remove_file(env.store_dir().join(original_key)).unwrap();

    let found = verify(&[]);
    assert_eq!(found.status.code(), Some(3), "violations exit with 3");
    let text = String::from_utf8_lossy(&found.stdout);
    assert!(
        text.contains(&format!(
            "photo {}  couple {}  done  webp_missing  {gone_key}",
            gone.photo, gone.couple
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("webp_checksum_mismatch  {changed_key}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("original_missing  {original_key}")),
        "{text}"
    );
    assert!(text.contains("3 violation(s)"), "{text}");
    assert!(String::from_utf8_lossy(&found.stderr).contains("verify found 3 violation(s)"));

    let json = verify(&["--json"]);
    assert_eq!(json.status.code(), Some(3));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let kinds: Vec<&str> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert!(kinds.contains(&"webp_missing"));

    let sampled = verify(&["--sample", "2", "--seed", "1"]);
    assert!(matches!(sampled.status.code(), Some(0 | 3)));
    assert!(String::from_utf8_lossy(&sampled.stdout).contains("a sample of 2 (seed 1)"));
}

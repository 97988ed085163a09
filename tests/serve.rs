//! `recast serve` end to end: the real binary on real photos, spoken to over real HTTP on
//! 127.0.0.1 (a few lines of HTTP/1.1 over a TcpStream, so that raw paths such as `%2e%2e` reach
//! the server untouched).

mod common;
mod serve_http;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{shared_photos, Env};
use serve_http::{http, parse_reply, Server};

/// Shared photos of both orientations (landscape, portrait, square).
fn photos(env: &Env, names: &[&str]) -> String {
    let dir = env.path("photos");
    std::fs::create_dir_all(&dir).unwrap();
    for name in names {
        std::fs::copy(shared_photos().join(name), dir.join(name)).unwrap();
    }
    dir.to_str().unwrap().to_owned()
}

const SMALL: [&str; 4] = [
    "astronaut.jpg",
    "chelsea.jpg",
    "grace_hopper.jpg",
    "coffee.jpg",
];

fn seed(env: &Env, couples: u32, thumbs: u32) {
    let photos = photos(env, &SMALL);
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
        &thumbs.to_string(),
    ]);
}

fn launch(env: &Env) {
    env.ok(&["launch", "--db", &env.db(), "--queue", &env.queue()]);
}

fn work(env: &Env) -> Command {
    let mut c = env.recast(&[
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
    c.stdout(Stdio::null());
    c
}

/// Every legacy thumbnail in the store, with the dimensions of the stored JPEG.
fn legacy_thumbnails(store: &Path) -> BTreeMap<String, (u32, u32)> {
    let mut out = BTreeMap::new();
    let root = store.join("thumbs");
    for couple in std::fs::read_dir(&root).unwrap() {
        for file in std::fs::read_dir(couple.unwrap().path()).unwrap() {
            let path: PathBuf = file.unwrap().path();
            let key = path
                .strip_prefix(store)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            let img = image::open(&path).unwrap();
            out.insert(key, (img.width(), img.height()));
        }
    }
    out
}

fn check_all(server: &Server, thumbs: &BTreeMap<String, (u32, u32)>, accept: &str) {
    for (key, dims) in thumbs {
        let r = http(
            &server.addr,
            "GET",
            &format!("/{key}"),
            &[("Accept", accept)],
        );
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert_eq!(
            r.dims(),
            *dims,
            "{key} has the legacy thumbnail's dimensions"
        );
        assert_eq!(r.header("vary"), Some("Accept"));
    }
}

#[test]
fn every_legacy_url_answers_before_during_and_after_a_run() {
    let env = Env::new();
    seed(&env, 6, 5);
    let thumbs = legacy_thumbnails(&env.store_dir());
    assert!(thumbs.len() >= 30, "{} thumbnails", thumbs.len());
    let server = Server::start(&env, &[]);

    // Before: every answer is the legacy object itself.
    check_all(&server, &thumbs, "image/jpeg");

    // During: a worker migrates (and deletes thumbnails) while every URL keeps answering.
    launch(&env);
    let mut worker = work(&env).spawn().unwrap();
    let mut rounds = 0;
    loop {
        let done = worker.try_wait().unwrap();
        check_all(&server, &thumbs, "image/webp,*/*");
        rounds += 1;
        if let Some(status) = done {
            assert!(status.success(), "worker failed: {status}");
            break;
        }
    }
    assert!(rounds >= 1);

    // After: the thumbnails are gone from the store, and every URL is made from the WebP.
    let left = std::fs::read_dir(env.store_dir().join("thumbs"))
        .unwrap()
        .map(|c| std::fs::read_dir(c.unwrap().path()).unwrap().count())
        .sum::<usize>();
    assert!(
        left < thumbs.len() / 2,
        "the run deleted the legacy thumbnails ({left} of {} left)",
        thumbs.len()
    );
    check_all(&server, &thumbs, "image/jpeg");
    check_all(&server, &thumbs, "image/webp,*/*");

    // Content negotiation, caching headers, ETag/304, HEAD, /v1 and the legacy original.
    let key = thumbs.keys().find(|k| k.ends_with("_320.jpg")).unwrap();
    let url = format!("/{key}");
    let jpeg = http(&server.addr, "GET", &url, &[("Accept", "image/jpeg")]);
    let webp = http(&server.addr, "GET", &url, &[("Accept", "image/webp,*/*")]);
    assert_eq!(jpeg.header("content-type"), Some("image/jpeg"));
    assert_eq!(webp.header("content-type"), Some("image/webp"));
    assert!(jpeg.body.starts_with(&[0xFF, 0xD8]) && webp.body.starts_with(b"RIFF"));
    assert_ne!(jpeg.header("etag"), webp.header("etag"));
    assert_eq!(
        jpeg.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(
        jpeg.header("content-length"),
        Some(jpeg.body.len().to_string().as_str())
    );
    let etag = webp.header("etag").unwrap();
    let again = http(
        &server.addr,
        "GET",
        &url,
        &[("Accept", "image/webp"), ("If-None-Match", etag)],
    );
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag));
    let stale = http(
        &server.addr,
        "GET",
        &url,
        &[("Accept", "image/webp"), ("If-None-Match", "\"nope\"")],
    );
    assert_eq!(stale.status, 200);
    let head = http(&server.addr, "HEAD", &url, &[("Accept", "image/jpeg")]);
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), jpeg.header("content-length"));

    let (couple, rest) = key
        .strip_prefix("thumbs/")
        .unwrap()
        .split_once('/')
        .unwrap();
    let photo = rest.strip_suffix("_320.jpg").unwrap();
    let original = format!("/photos/{couple}/{photo}.jpg");
    let r = http(&server.addr, "GET", &original, &[("Accept", "image/webp")]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("image/webp"));
    let r = http(&server.addr, "GET", &original, &[("Accept", "image/jpeg")]);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let full = r.dims();
    let v1 = server.get(&format!(
        "/v1/photos/{couple}/{photo}.jpg?w=100&format=jpeg"
    ));
    assert_eq!(v1.status, 200, "{}", v1.text());
    assert_eq!(v1.dims().0, 100.min(full.0));
    let cover = server.get(&format!(
        "/v1/photos/{couple}/{photo}.jpg?w=64&h=32&fit=cover&format=webp"
    ));
    assert_eq!(cover.dims(), (64, 32));

    assert_eq!(server.get("/healthz").status, 200);
    let metrics = server.get("/metrics").text();
    for name in [
        "recast_serve_requests_total",
        "recast_serve_request_seconds_bucket",
        "recast_serve_decode_seconds",
        "recast_serve_encode_seconds",
        "recast_serve_response_bytes_total",
    ] {
        assert!(metrics.contains(name), "no {name} in /metrics:\n{metrics}");
    }
    assert!(metrics.contains("status=\"304\""), "{metrics}");
}

#[test]
fn bad_input_is_a_one_line_400_or_404_never_a_500() {
    let env = Env::new();
    seed(&env, 2, 2);
    let store = env.store_dir();
    let some_thumb = legacy_thumbnails(&store).into_keys().next().unwrap();
    std::fs::create_dir_all(store.join("photos/x")).unwrap();
    std::fs::write(store.join("photos/x/note.jpg"), b"just text, not a photo").unwrap();
    std::fs::create_dir_all(store.join("thumbs/x")).unwrap();
    std::fs::write(store.join("thumbs/x/note_160.jpg"), b"text again").unwrap();
    let server = Server::start(&env, &["--max-width", "2000", "--sizes", "small=160"]);
    let stem = some_thumb.rsplit_once('_').unwrap().0.to_owned();
    for (path, status) in [
        ("/thumbs/../photos/x/note.jpg".to_owned(), 400),
        ("/thumbs/%2e%2e/%2e%2e/etc/passwd".to_owned(), 400),
        ("/thumbs/x%2f..%2f../y_160.jpg".to_owned(), 400),
        (format!("/{stem}_tiny.jpg"), 404),
        (format!("/{stem}_5000.jpg"), 400),
        (format!("/v1/{stem}.jpg?w=5000"), 400),
        (format!("/v1/{stem}.jpg?w=ten"), 400),
        ("/photos/x/note.jpg".to_owned(), 404),
        ("/v1/photos/x/note.jpg?w=100".to_owned(), 404),
        ("/thumbs/x/note_160.jpg".to_owned(), 404),
        ("/thumbs/x/missing_160.jpg".to_owned(), 404),
        ("/thumbs/x/missing_small.jpg".to_owned(), 404),
        ("/somewhere/else".to_owned(), 404),
    ] {
        let r = server.get(&path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        let text = r.text();
        assert!(
            text.ends_with('\n') && text.trim_end().lines().count() == 1 && text.len() > 10,
            "{path}: body is not one line: {text:?}"
        );
    }
    let named = server.get(&format!("/{stem}_small.jpg"));
    assert_eq!(named.status, 200, "{}", named.text());
    assert_eq!(named.dims().0.max(named.dims().1), 160);
    let post = http(&server.addr, "POST", &format!("/{some_thumb}"), &[]);
    assert_eq!(post.status, 405);
}

#[test]
fn overload_answers_503_with_retry_after_not_a_timeout() {
    let env = Env::new();
    let photos = photos(&env, &["ukui-string.jpg"]);
    env.ok(&[
        "seed",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--photos",
        &photos,
        "--couples",
        "1",
        "--min-photos",
        "1",
        "--max-photos",
        "1",
        "--thumbs",
        "1",
    ]);
    let original = legacy_thumbnails(&env.store_dir())
        .into_keys()
        .next()
        .unwrap()
        .replace("thumbs/", "photos/")
        .replace("_1280.jpg", ".jpg");
    let server = Server::start(&env, &["--cpu-threads", "1", "--cpu-queue", "1"]);
    // Distinct widths, so that no request joins another's render.
    let handles: Vec<_> = (0..12)
        .map(|i| {
            let addr = server.addr.clone();
            let path = format!("/v1/{original}?w={}&format=jpeg", 2000 + i);
            std::thread::spawn(move || {
                let started = Instant::now();
                let r = http(&addr, "GET", &path, &[]);
                (r, started.elapsed())
            })
        })
        .collect();
    let replies: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let refused: Vec<_> = replies.iter().filter(|(r, _)| r.status == 503).collect();
    let served = replies.iter().filter(|(r, _)| r.status == 200).count();
    assert_eq!(refused.len() + served, replies.len(), "only 200s and 503s");
    assert!(served >= 1, "some requests are served");
    assert!(!refused.is_empty(), "a full queue refuses");
    for (r, _) in refused {
        assert_eq!(r.header("retry-after"), Some("1"));
    }
}

#[test]
fn sigterm_drains_requests_in_flight_then_exits_0() {
    let env = Env::new();
    let photos = photos(&env, &["ukui-string.jpg"]);
    env.ok(&[
        "seed",
        "--db",
        &env.db(),
        "--store",
        &env.store(),
        "--photos",
        &photos,
        "--couples",
        "1",
        "--min-photos",
        "1",
        "--max-photos",
        "1",
        "--thumbs",
        "1",
    ]);
    let original = legacy_thumbnails(&env.store_dir())
        .into_keys()
        .next()
        .unwrap()
        .replace("thumbs/", "photos/")
        .replace("_1280.jpg", ".jpg");
    let mut server = Server::start(&env, &["--cpu-threads", "1"]);
    // Requests whose connections are open and whose requests are sent before the signal.
    let streams: Vec<TcpStream> = (0..4)
        .map(|i| {
            let mut s = TcpStream::connect(&server.addr).unwrap();
            let path = format!("/v1/{original}?w={}&format=jpeg", 3000 + i);
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let killed = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for (i, mut s) in (0..).zip(streams) {
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).unwrap();
        let r = parse_reply(&raw);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.dims().0, 3000 + i);
    }
    let status = server.child.wait().unwrap();
    assert!(status.success(), "serve exits 0 after draining: {status}");
    assert!(
        TcpStream::connect(&server.addr).is_err(),
        "no longer listening"
    );
}

fn chromium() -> String {
    std::env::var("RECAST_TEST_CHROMIUM").expect(
        "RECAST_TEST_CHROMIUM is not set: run the tests with scripts/test, which installs \
         Debian's chromium and points this at it",
    )
}

#[test]
fn a_page_of_24_thumbnails_loads_in_headless_chromium() {
    let chromium = chromium();
    let env = Env::new();
    seed(&env, 8, 5);
    let thumbs = legacy_thumbnails(&env.store_dir());
    launch(&env);
    assert!(work(&env).status().unwrap().success());
    let server = Server::start(&env, &[]);
    let chosen: Vec<_> = thumbs
        .iter()
        .filter(|(k, _)| k.ends_with("_160.jpg") || k.ends_with("_320.jpg"))
        .take(24)
        .collect();
    assert_eq!(chosen.len(), 24, "seed made enough thumbnails");
    let mut html = String::from("<!doctype html><html><body>\n");
    for (i, (key, (w, _))) in chosen.iter().enumerate() {
        html.push_str(&format!(
            "<img id=\"i{i}\" data-expected=\"{w}\" src=\"http://{}/{key}\">\n",
            server.addr
        ));
    }
    html.push_str(
        "<script>window.addEventListener('load', () => { for (const img of document.images) \
         { img.setAttribute('data-natural', img.naturalWidth); } });</script></body></html>\n",
    );
    let page = env.path("page.html");
    std::fs::write(&page, html).unwrap();
    let out = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=10000",
        ])
        .arg(format!("--user-data-dir={}", env.path("profile").display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    let mut checked = 0;
    for tag in dom.split("<img").skip(1) {
        let attr = |name: &str| {
            let at = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(tag[at..at + tag[at..].find('"')?].to_owned())
        };
        let expected = attr("data-expected").unwrap();
        assert_eq!(
            attr("data-natural").as_deref(),
            Some(expected.as_str()),
            "{tag}"
        );
        checked += 1;
    }
    assert_eq!(checked, 24, "{chromium}: {dom}");
}

/// `jpeg` with an EXIF block saying `orientation` (an APP1 segment right after SOI).
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"II*\0\x08\0\0\0\x01\0".to_vec();
    for (v, len) in [
        (0x0112u32, 2),
        (3, 2),
        (1, 4),
        (u32::from(orientation), 4),
        (0, 4),
    ] {
        tiff.extend_from_slice(&v.to_le_bytes()[..len]);
    }
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&u16::try_from(8 + tiff.len()).unwrap().to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Mean absolute difference per channel of two RGB images of the same size (0..255).
fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn a_kept_jpeg_is_decoded_by_its_dct_upright_and_close_to_a_full_decode() {
    let env = Env::new();
    // A kept original (no WebP, no thumbnails) whose EXIF turns the stored 640x427 a quarter
    // clockwise: upright it is 427x640.
    let stored = std::fs::read(shared_photos().join("china.jpg")).unwrap();
    let kept = with_orientation(&stored, 6);
    let dir = env.store_dir().join("photos/c1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p1.jpg"), &kept).unwrap();
    // This photo is under the default threshold of the DCT-scaled decode: force it either way.
    let scaled = Server::start(&env, &["--dct-min-pixels", "0"]);
    let full = Server::start(&env, &["--dct-min-pixels", "1000000000"]);

    // The reference: the whole photo decoded, turned as EXIF says, resized by `image`.
    let whole = image::load_from_memory(&stored).unwrap();
    let upright = whole.rotate90();
    let wrong_way = whole.rotate270();
    for (path, dims) in [
        ("/thumbs/c1/p1_160.jpg", (107, 160)),
        ("/v1/photos/c1/p1.jpg?w=200&format=jpeg", (200, 300)),
    ] {
        let resize = |i: &image::DynamicImage| {
            i.resize_exact(dims.0, dims.1, image::imageops::FilterType::Lanczos3)
                .to_rgb8()
        };
        let mut diffs = Vec::new();
        for server in [&scaled, &full] {
            let r = server.get(path);
            assert_eq!(r.status, 200, "{path}: {}", r.text());
            assert_eq!(r.header("content-type"), Some("image/jpeg"));
            assert_eq!(r.dims(), dims, "{path}");
            let got = image::load_from_memory(&r.body).unwrap().to_rgb8();
            diffs.push((
                mean_abs_diff(&got, &resize(&upright)),
                mean_abs_diff(&got, &resize(&wrong_way)),
            ));
        }
        let [(dct, dct_wrong), (whole, _)] = diffs[..] else {
            unreachable!()
        };
        println!("{path}: mean abs diff from the reference: DCT-scaled {dct:.2}, full decode {whole:.2}, turned the wrong way {dct_wrong:.2}");
        // Within a JPEG encode's noise of what the full decode gives (both answers are JPEG
        // at quality 80, so neither is 0), and far from the photo turned the other way.
        assert!(
            dct < whole + 1.0,
            "{path}: DCT-scaled {dct:.2}, full {whole:.2}"
        );
        assert!(dct_wrong > 2.0 * dct, "{path}: {dct_wrong:.2} vs {dct:.2}");
    }
    // Each server rendered both with the decoder it was asked to use.
    for (server, decoder) in [(&scaled, "jpeg_dct"), (&full, "full")] {
        let metrics = server.get("/metrics").text();
        let line = format!("recast_serve_renders_total{{decode=\"{decoder}\"}} 2");
        assert!(
            metrics.lines().any(|l| l == line),
            "no `{line}` in:\n{metrics}"
        );
    }
}

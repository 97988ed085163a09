//! `recast serve` end to end: the real binary on real photos, spoken to over real HTTP on
//! 127.0.0.1 (a few lines of HTTP/1.1 over a TcpStream, so that raw paths such as `%2e%2e` reach
//! the server untouched).

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{shared_photos, Env, BIN};

/// A running `recast serve`; killed when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(env: &Env, extra: &[&str]) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--store", &env.store(), "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("recast serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("serve printed {line:?}, not its address"))
            .to_owned();
        Server { child, addr }
    }

    fn get(&self, path: &str) -> Reply {
        http(&self.addr, "GET", path, &[])
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn dims(&self) -> (u32, u32) {
        let img = image::load_from_memory(&self.body)
            .unwrap_or_else(|e| panic!("not an image ({e}): {:?}", self.headers));
        (img.width(), img.height())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection, read to its end.
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}

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

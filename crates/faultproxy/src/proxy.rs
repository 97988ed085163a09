//! The proxy itself: hyper 1 server in front of a hyper 1 client, both on 127.0.0.1.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Fault, FaultCounts, FaultPlan, Op};

type ProxyBody = BoxBody<Bytes, io::Error>;

/// Headers that describe one hop's framing, not the message: the proxy re-frames both ways.
const HOP_HEADERS: [&str; 3] = ["transfer-encoding", "connection", "keep-alive"];

/// A running proxy; it stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    plan: Mutex<(FaultPlan, fastrand::Rng)>,
    forced: Mutex<HashMap<Op, Vec<Fault>>>,
    holds: Mutex<HashMap<Op, Duration>>,
    down: AtomicBool,
    counts: FaultCounts,
}

impl FaultProxy {
    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str, plan: FaultPlan) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let rng = fastrand::Rng::with_seed(plan.seed);
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            plan: Mutex::new((plan, rng)),
            forced: Mutex::new(HashMap::new()),
            holds: Mutex::new(HashMap::new()),
            down: AtomicBool::new(false),
            counts: FaultCounts::default(),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            addr,
            shared,
            accept,
        })
    }

    /// The URL to give clients as their endpoint (`AWS_ENDPOINT_URL`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn counts(&self) -> &FaultCounts {
        &self.shared.counts
    }

    /// Replaces the rates (the generator keeps its sequence).
    pub fn set_plan(&self, plan: FaultPlan) {
        self.shared.plan.lock().expect("plan lock").0 = plan;
    }

    /// While down, new connections are closed at once and requests on open ones are cut: the
    /// server looks dead to its clients. Nothing reaches the upstream server.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// The next `n` requests of `op` get `fault`, whatever the rates say.
    pub fn force(&self, op: Op, fault: Fault, n: usize) {
        let mut forced = self.shared.forced.lock().expect("forced lock");
        forced
            .entry(op)
            .or_default()
            .extend(std::iter::repeat_n(fault, n));
    }

    /// Holds every answer of `op` back for `hold` after the upstream server gave it (the request
    /// has taken effect; its client waits), or stops holding with `None`.
    pub fn hold(&self, op: Op, hold: Option<Duration>) {
        let mut holds = self.shared.holds.lock().expect("holds lock");
        match hold {
            Some(d) => holds.insert(op, d),
            None => holds.remove(&op),
        };
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if shared.down.load(Ordering::SeqCst) {
            shared.counts.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| handle(shared.clone(), req));
            // A cut connection ends here with an error, which is the point.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn cut(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, format!("faultproxy: {why}"))
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> io::Result<Response<ProxyBody>> {
    let counts = &shared.counts;
    let op = Op::classify(req.method(), req.uri(), req.headers());
    counts.requests[op.index()].fetch_add(1, Ordering::Relaxed);
    if shared.down.load(Ordering::SeqCst) {
        counts.refused.fetch_add(1, Ordering::Relaxed);
        return Err(cut("server down"));
    }
    let forced = {
        let mut forced = shared.forced.lock().expect("forced lock");
        forced.get_mut(&op).and_then(|f| f.pop())
    };
    let (drawn, latency) = {
        let mut guard = shared.plan.lock().expect("plan lock");
        let (plan, rng) = &mut *guard;
        plan.draw(rng, op)
    };
    let fault = forced.or(drawn);
    if !latency.is_zero() {
        counts.delayed.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(latency).await;
    }
    if fault == Some(Fault::SlowDown) {
        counts.slow_down[op.index()].fetch_add(1, Ordering::Relaxed);
        return Ok(error_response(op, StatusCode::SERVICE_UNAVAILABLE));
    }

    // Forwarded in a task of its own, so that a client that dies mid-request (a SIGKILL) cannot
    // cancel what the upstream server is doing: the request takes effect or not, as in life.
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut up = Request::builder()
        .method(parts.method.clone())
        .uri(format!("{}{path}", shared.upstream));
    for (name, value) in &parts.headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            up = up.header(name, value);
        }
    }
    let up = up.body(Full::new(body)).map_err(io::Error::other)?;
    let forward = {
        let shared = shared.clone();
        tokio::spawn(async move {
            let resp = shared.client.request(up).await.map_err(io::Error::other)?;
            let (head, body) = resp.into_parts();
            let body = body.collect().await.map_err(io::Error::other)?.to_bytes();
            shared.counts.upstream_done[op.index()].fetch_add(1, Ordering::Relaxed);
            Ok::<_, io::Error>((head, body))
        })
    };
    let (head, body) = forward.await.map_err(io::Error::other)??;

    let hold = shared.holds.lock().expect("holds lock").get(&op).copied();
    if let Some(hold) = hold {
        counts.held.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(hold).await;
    }

    let mut resp = Response::builder().status(head.status);
    for (name, value) in &head.headers {
        if !HOP_HEADERS.contains(&name.as_str()) {
            resp = resp.header(name, value);
        }
    }
    match fault {
        Some(Fault::Ambiguous500) => {
            counts.ambiguous_500[op.index()].fetch_add(1, Ordering::Relaxed);
            Ok(error_response(op, StatusCode::INTERNAL_SERVER_ERROR))
        }
        Some(Fault::Reset) => {
            counts.reset[op.index()].fetch_add(1, Ordering::Relaxed);
            if body.len() < 2 {
                return Err(cut("connection reset before the response"));
            }
            let half = body.slice(..body.len() / 2);
            // The cut comes a moment after the first half, so that the head and that half are
            // on the wire (hyper drops unflushed bytes when a body fails).
            let first = futures::stream::once(async move { Ok(Frame::data(half)) });
            let then_cut = futures::stream::once(async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Err(cut("connection reset mid-response"))
            });
            let stream = StreamBody::new(first.chain(then_cut));
            resp.body(BodyExt::boxed(stream)).map_err(io::Error::other)
        }
        Some(Fault::Corrupt)
            if head.status == StatusCode::OK
                && head.headers.contains_key("x-amz-checksum-crc32c")
                && !body.is_empty() =>
        {
            counts.corrupt[op.index()].fetch_add(1, Ordering::Relaxed);
            let mut bytes = body.to_vec();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x20;
            resp.body(full(Bytes::from(bytes)))
                .map_err(io::Error::other)
        }
        _ => resp.body(full(body)).map_err(io::Error::other),
    }
}

fn full(body: Bytes) -> ProxyBody {
    Full::new(body).map_err(|never| match never {}).boxed()
}

/// A 503 SlowDown or 500 InternalError as S3 (XML) or SQS (JSON protocol) words it.
fn error_response(op: Op, status: StatusCode) -> Response<ProxyBody> {
    let throttle = status == StatusCode::SERVICE_UNAVAILABLE;
    let (content_type, body) = if matches!(op, Op::ReceiveMessage | Op::SqsOther) {
        let code = if throttle {
            "RequestThrottled"
        } else {
            "InternalError"
        };
        (
            "application/x-amz-json-1.0",
            format!(
                r#"{{"__type":"com.amazonaws.sqs#{code}","message":"injected by faultproxy"}}"#
            ),
        )
    } else {
        let code = if throttle {
            "SlowDown"
        } else {
            "InternalError"
        };
        (
            "application/xml",
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>injected by faultproxy</Message><RequestId>faultproxy</RequestId></Error>"#
            ),
        )
    };
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(full(Bytes::from(body)))
        .expect("a valid response")
}

//! The HTTP face: `/healthz`, `/metrics`, and every other GET or HEAD is a legacy or `/v1/` image
//! URL. Lookup order (documented in the README): the WebP first, so that after a run a request
//! costs one GET; on NotFound the legacy object itself (pass-through, before the photo is
//! switched), then the kept original.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, Response, StatusCode, Uri};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use recast_store::ObjectStore;

use crate::coalesce::Coalescer;
use crate::error::ServeError;
use crate::metrics as m;
use crate::pool::CpuPool;
use crate::render::{render, sniff, Format, Quality, RenderError, Rendered, SourceKind};
use crate::route::{Ask, Lookup, Routes};

/// Sized variants never change for a given source checksum (the ETag says which).
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// A legacy object passed through is replaced by a rendered answer once its photo is switched.
const PASS_THROUGH: &str = "public, max-age=3600";

/// Everything a request handler shares.
#[derive(Debug)]
pub struct App {
    pub store: Arc<dyn ObjectStore>,
    pub routes: Routes,
    pub quality: Quality,
    pub pool: CpuPool,
    pub coalescer: Coalescer<Result<Rendered, ServeError>>,
    pub metrics: Option<PrometheusHandle>,
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_page))
        .fallback(image)
        .with_state(app)
}

async fn metrics_page(State(app): State<Arc<App>>) -> Response<Body> {
    let text = app.metrics.as_ref().map(|h| h.render()).unwrap_or_default();
    Response::builder()
        .header(header::CONTENT_TYPE, "text/plain; version=0.0.4")
        .body(Body::from(text))
        .expect("static headers are valid")
}

/// What a found object becomes.
struct Answer {
    status: StatusCode,
    body: Bytes,
    content_type: &'static str,
    etag: String,
    cache: &'static str,
}

async fn image(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response<Body> {
    let started = Instant::now();
    let mut route = "bad";
    let result = async {
        if method != Method::GET && method != Method::HEAD {
            return Err(ServeError::Method);
        }
        let ask = app.routes.parse(uri.path(), uri.query())?;
        route = ask.route.label();
        answer(&app, &ask, &headers).await
    }
    .await;
    let response = match result {
        Ok(a) => {
            let len = a.body.len();
            let mut r = Response::builder()
                .status(a.status)
                .header(header::ETAG, &a.etag)
                .header(header::CACHE_CONTROL, a.cache)
                .header(header::VARY, "Accept");
            if a.status == StatusCode::OK {
                r = r
                    .header(header::CONTENT_TYPE, a.content_type)
                    .header(header::CONTENT_LENGTH, len);
            }
            let body = if method == Method::HEAD || a.status != StatusCode::OK {
                Body::empty()
            } else {
                metrics::counter!(m::RESPONSE_BYTES, "route" => route).increment(len as u64);
                Body::from(a.body)
            };
            r.body(body).expect("headers are valid")
        }
        Err(e) => error_response(&e, &uri),
    };
    let status = response.status().as_u16().to_string();
    metrics::counter!(m::REQUESTS, "route" => route, "status" => status).increment(1);
    metrics::histogram!(m::REQUEST_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

fn error_response(e: &ServeError, uri: &Uri) -> Response<Body> {
    let status = e.status();
    if status == StatusCode::BAD_GATEWAY {
        tracing::warn!(path = %uri.path(), error = %e, "store error");
    }
    let line = format!("{}\n", e.to_string().replace('\n', " "));
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r = r.header(header::RETRY_AFTER, "1");
    }
    r.body(Body::from(line)).expect("headers are valid")
}

fn accepts_webp(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let mut parts = t.split(';').map(str::trim);
            parts.next() == Some("image/webp") && !parts.any(|p| p.replace(' ', "") == "q=0")
        })
}

fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

async fn answer(app: &App, ask: &Ask, headers: &HeaderMap) -> Result<Answer, ServeError> {
    let format = ask.wanted.resolve(accepts_webp(headers));
    let (lookup, body) = fetch(app, &ask.lookups).await?;
    let sum = format!("{:08x}{:x}", recast_store::crc32c(&body), body.len());
    let mut answer = match &lookup {
        Lookup::PassThrough(key) => {
            let content_type = match sniff(&body) {
                SourceKind::Webp => "image/webp",
                SourceKind::Jpeg => "image/jpeg",
                SourceKind::Other if body.starts_with(b"GIF8") => "image/gif",
                SourceKind::Other => "image/png",
                SourceKind::NotAnImage => {
                    return Err(ServeError::Render {
                        key: key.clone(),
                        source: RenderError::NotAnImage,
                    })
                }
            };
            Answer {
                status: StatusCode::OK,
                body,
                content_type,
                etag: format!("\"{sum}\""),
                cache: PASS_THROUGH,
            }
        }
        // A whole WebP asked for as WebP is sent as stored: no CPU at all.
        Lookup::Render(_)
            if ask.target.is_none()
                && format == Format::Webp
                && sniff(&body) == SourceKind::Webp =>
        {
            Answer {
                status: StatusCode::OK,
                body,
                content_type: "image/webp",
                etag: format!("\"{sum}.webp\""),
                cache: IMMUTABLE,
            }
        }
        Lookup::Render(key) => {
            let tag = ask.target.map_or_else(|| "full".to_owned(), |t| t.tag());
            let etag = format!("\"{sum}.{tag}.{}\"", format.name());
            if not_modified(headers, &etag) {
                return Ok(Answer {
                    status: StatusCode::NOT_MODIFIED,
                    body: Bytes::new(),
                    content_type: format.content_type(),
                    etag,
                    cache: IMMUTABLE,
                });
            }
            let rendered = render_coalesced(app, key, &etag, body, ask, format).await?;
            Answer {
                status: StatusCode::OK,
                body: rendered.body,
                content_type: format.content_type(),
                etag,
                cache: IMMUTABLE,
            }
        }
    };
    if not_modified(headers, &answer.etag) {
        answer.status = StatusCode::NOT_MODIFIED;
        answer.body = Bytes::new();
    }
    Ok(answer)
}

/// The first lookup whose key exists, with its bytes.
async fn fetch(app: &App, lookups: &[Lookup]) -> Result<(Lookup, Bytes), ServeError> {
    for lookup in lookups {
        let key = match lookup {
            Lookup::Render(k) | Lookup::PassThrough(k) => k,
        };
        match app.store.get(key).await {
            Ok(body) => return Ok((lookup.clone(), body)),
            Err(e) if e.is_not_found() => continue,
            Err(e @ recast_store::StoreError::InvalidKey { .. }) => {
                return Err(ServeError::BadRequest(e.to_string()))
            }
            Err(e) => return Err(ServeError::Store(e.to_string())),
        }
    }
    // During a run, the WebP may have been written (and the legacy objects deleted) between our
    // first GET and the last: one more look at the WebP closes that window.
    if let Some(first @ Lookup::Render(key)) = lookups.first() {
        if let Ok(body) = app.store.get(key).await {
            return Ok((first.clone(), body));
        }
    }
    let tried: Vec<&str> = lookups
        .iter()
        .map(|l| match l {
            Lookup::Render(k) | Lookup::PassThrough(k) => k.as_str(),
        })
        .collect();
    Err(ServeError::NotFound(format!(
        "no such photo: none of {tried:?} is in the store"
    )))
}

async fn render_coalesced(
    app: &App,
    key: &str,
    etag: &str,
    body: Bytes,
    ask: &Ask,
    format: Format,
) -> Result<Rendered, ServeError> {
    let target = ask.target;
    let quality = app.quality;
    let owned_key = key.to_owned();
    let compute = async move {
        app.pool
            .run(move || render(&body, target.as_ref(), format, &quality))
            .await?
            .map_err(|source| ServeError::Render {
                key: owned_key,
                source,
            })
    };
    let (result, _joined) = app.coalescer.run(&format!("{key}|{etag}"), compute).await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn h(name: header::HeaderName, v: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(name, HeaderValue::from_str(v).unwrap());
        m
    }

    #[test]
    fn accept_and_if_none_match() {
        assert!(accepts_webp(&h(
            header::ACCEPT,
            "image/avif,image/webp,*/*"
        )));
        assert!(!accepts_webp(&h(
            header::ACCEPT,
            "image/webp;q=0, image/jpeg"
        )));
        assert!(!accepts_webp(&h(header::ACCEPT, "*/*")));
        assert!(not_modified(
            &h(header::IF_NONE_MATCH, "\"a\", W/\"b\""),
            "\"b\""
        ));
        assert!(!not_modified(&h(header::IF_NONE_MATCH, "\"a\""), "\"b\""));
    }
}

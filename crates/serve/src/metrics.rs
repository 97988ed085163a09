//! Metric names (constants, described once) and the Prometheus recorder `/metrics` renders.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const REQUESTS: &str = "recast_serve_requests_total";
pub const REQUEST_SECONDS: &str = "recast_serve_request_seconds";
pub const RESPONSE_BYTES: &str = "recast_serve_response_bytes_total";
pub const DECODE_SECONDS: &str = "recast_serve_decode_seconds";
pub const RESIZE_SECONDS: &str = "recast_serve_resize_seconds";
pub const ENCODE_SECONDS: &str = "recast_serve_encode_seconds";
pub const QUEUE_DEPTH: &str = "recast_serve_cpu_queue_depth";
pub const COALESCED: &str = "recast_serve_coalesced_total";
pub const RENDERS: &str = "recast_serve_renders_total";
pub const DCT_FALLBACKS: &str = "recast_serve_dct_fallbacks_total";

/// Buckets of every latency histogram, in seconds (1 ms .. 10 s).
const BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// Installs the process-wide recorder and describes every metric; the handle renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS, "HTTP requests answered, by route and status");
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "time to answer a request, by route"
    );
    describe_counter!(RESPONSE_BYTES, Unit::Bytes, "body bytes sent, by route");
    describe_histogram!(
        DECODE_SECONDS,
        Unit::Seconds,
        "time to decode a source (scaled for WebP)"
    );
    describe_histogram!(
        RESIZE_SECONDS,
        Unit::Seconds,
        "time to resize a decoded non-WebP source"
    );
    describe_histogram!(ENCODE_SECONDS, Unit::Seconds, "time to encode an answer");
    describe_gauge!(
        QUEUE_DEPTH,
        "renders admitted to the CPU pool (running + waiting)"
    );
    describe_counter!(
        RENDERS,
        "sources decoded and rendered, by decoder: webp_scaled, jpeg_dct (DCT-scaled JPEG), full"
    );
    describe_counter!(
        DCT_FALLBACKS,
        "JPEGs decoded at full size although the answer is smaller, by reason (cmyk, high_bit_depth)"
    );
    describe_counter!(
        COALESCED,
        "requests that joined an identical render in flight"
    );
}

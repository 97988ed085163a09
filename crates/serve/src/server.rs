//! Running the server: bind, serve, and on shutdown stop accepting, finish the requests in
//! flight, then return.

use std::sync::Arc;

use metrics_exporter_prometheus::PrometheusHandle;
use recast_store::ObjectStore;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::coalesce::Coalescer;
use crate::http::{router, App};
use crate::pool::CpuPool;
use crate::render::Quality;
use crate::route::Routes;

/// Widest answer by default (`--max-width`).
pub const DEFAULT_MAX_WIDTH: u32 = 4096;
/// Renders that may wait for a CPU slot before requests are refused with 503 (`--cpu-queue`).
pub const DEFAULT_CPU_QUEUE: usize = 64;

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub routes: Routes,
    pub quality: Quality,
    /// Renders at once (default: one per core).
    pub cpu_threads: usize,
    pub cpu_queue: usize,
}

/// `--sizes small=160,medium=640`: names of legacy sizes.
pub fn parse_sizes(text: &str) -> Result<Vec<(String, u32)>, String> {
    text.split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|pair| {
            let (name, px) = pair
                .split_once('=')
                .ok_or_else(|| format!("size {pair:?} is not NAME=PIXELS (e.g. small=160)"))?;
            let px: u32 = px.trim().parse().ok().filter(|&p| p > 0).ok_or_else(|| {
                format!("size {pair:?}: {px:?} is not a positive number of pixels")
            })?;
            Ok((name.trim().to_owned(), px))
        })
        .collect()
}

/// Serves until `shutdown` is cancelled, then drains the requests in flight and returns.
pub async fn run(
    store: Arc<dyn ObjectStore>,
    config: ServeConfig,
    listener: TcpListener,
    metrics: Option<PrometheusHandle>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Arc::new(App {
        store,
        routes: config.routes,
        quality: config.quality,
        pool: CpuPool::new(config.cpu_threads, config.cpu_queue),
        coalescer: Coalescer::default(),
        metrics,
    });
    axum::serve(listener, router(app))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

//! `recast serve`: parse the flags, open the store, bind, and run the library's server until
//! SIGTERM or Ctrl-C, then drain the requests in flight and exit 0.

use std::io::Write;

use anyhow::Context;
use recast_core::{KeyPattern, Var};
use recast_serve::{Quality, Routes, ServeConfig};
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;

pub async fn run(a: ServeArgs) -> anyhow::Result<()> {
    let original = KeyPattern::parse(&a.original).context("bad --original")?;
    original
        .check_role(&[Var::Photo], &[Var::Couple])
        .context("bad --original")?;
    let thumbnail = KeyPattern::parse(&a.thumbnail).context("bad --thumbnail")?;
    thumbnail
        .check_role(&[Var::Photo, Var::Size], &[Var::Couple])
        .context("bad --thumbnail")?;
    if thumbnail.has(Var::Couple) && !original.has(Var::Couple) {
        anyhow::bail!(
            "--thumbnail `{thumbnail}` names {{couple}} but --original `{original}` does not: \
             a thumbnail could not be mapped to its photo"
        );
    }
    let sizes = recast_serve::parse_sizes(a.sizes.as_deref().unwrap_or(""))
        .map_err(anyhow::Error::msg)
        .context("bad --sizes")?;
    let config = ServeConfig {
        routes: Routes {
            original,
            thumbnail,
            sizes,
            max_width: a.max_width,
        },
        quality: Quality {
            jpeg: a.jpeg_quality,
            webp: a.webp_quality,
            max_pixels: a.max_pixels,
            dct_min_pixels: a.dct_min_pixels,
        },
        cpu_threads: a
            .cpu_threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        cpu_queue: a.cpu_queue,
    };
    let store = recast_store::open_existing(&a.store).await?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("cannot listen on {}: is the port free?", a.listen))?;
    let metrics = recast_serve::install_metrics()
        .map_err(anyhow::Error::msg)
        .context("cannot install the metrics recorder")?;
    let addr = listener.local_addr()?;
    // The bound address on stdout (useful with --listen 127.0.0.1:0), then logs on stderr.
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    tracing::info!(%addr, store = %a.store, "serving");

    let shutdown = CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        let reason = wait_for_signal().await;
        tracing::info!(%reason, "draining: finishing requests in flight");
        signal.cancel();
    });
    recast_serve::run(store, config, listener, Some(metrics), shutdown).await?;
    tracing::info!("drained; exiting");
    Ok(())
}

async fn wait_for_signal() -> &'static str {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler installs");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupt",
    }
}

//! `recast serve`, the on-demand half of a migration: legacy thumbnail and original URLs (and
//! `/v1/KEY?w=…`) answered from the WebP, the kept original, or — before a photo is switched —
//! the legacy object itself. Stateless: no database, so it scales out behind a CDN.

mod coalesce;
mod error;
mod geometry;
mod http;
mod metrics;
mod pool;
mod render;
mod route;
mod server;
mod webp_scaled;

pub use error::ServeError;
pub use geometry::{Fit, Target};
pub use metrics::install as install_metrics;
pub use render::{render, Format, Quality, RenderError, DEFAULT_DCT_MIN_PIXELS};
pub use route::Routes;
pub use server::{parse_sizes, run, ServeConfig, DEFAULT_CPU_QUEUE, DEFAULT_MAX_WIDTH};

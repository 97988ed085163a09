use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// What is logged when RUST_LOG is not set: recast's own info lines, warnings from the rest.
pub const DEFAULT_FILTER: &str =
    "warn,recast=info,recast_worker=info,recast_queue=info,recast_catalog=info";
/// For commands that draw progress bars: only warnings, so the bars stay readable.
pub const QUIET_FILTER: &str = "warn";

/// Logs go to stderr, filtered by RUST_LOG, else by `default_filter`.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

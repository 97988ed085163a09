//! `recast`: migrate a photo store to one WebP per photo, safely, resumably, at fleet scale.

mod bench;
mod bench_table;
mod ceiling;
mod cli;
mod convert;
mod demo;
mod export;
mod flags;
mod import;
mod launch;
mod logging;
mod plan;
mod preflight;
mod queue;
mod recount;
mod report;
mod report_page;
mod seed;
mod serve;
mod status;
mod tables;
mod verify;
mod watch;
mod work;

fn main() -> std::process::ExitCode {
    cli::main()
}

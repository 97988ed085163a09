//! `recast`: migrate a photo store to one WebP per photo, safely, resumably, at fleet scale.

mod bench;
mod cli;
mod convert;
mod demo;
mod launch;
mod logging;
mod queue;
mod seed;
mod status;
mod work;

fn main() -> std::process::ExitCode {
    cli::main()
}

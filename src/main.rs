//! `perch`: the real-time perception pipeline's command line (commands: [`cli`]).

mod assemble;
mod cli;
mod config;
mod jsonl;

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    cli::main()
}

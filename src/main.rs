//! `perch`: the real-time perception pipeline's command line (commands: [`cli`]).

mod assemble;
mod bench;
mod cli;
mod config;
mod home;
mod jsonl;
mod logging;
mod outputs;
mod paths;
mod status;

use std::process::ExitCode;

fn main() -> ExitCode {
    logging::init();
    cli::main()
}

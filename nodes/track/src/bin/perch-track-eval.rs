//! Standalone `eval mot` / `eval track` (the same commands `perch eval` offers), for scripts and CI.

use clap::Parser;
use perch_track::cli::EvalCommand;

#[derive(Parser)]
#[command(
    name = "perch-track-eval",
    about = "MOT metrics and tracker evaluation on ground truth"
)]
struct Cli {
    #[command(subcommand)]
    cmd: EvalCommand,
}

fn main() -> anyhow::Result<()> {
    perch_track::cli::run(&Cli::parse().cmd)
}

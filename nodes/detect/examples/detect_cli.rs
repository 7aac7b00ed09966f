//! The detect stage's commands without the `perch` binary (same code as `perch model import`,
//! `perch detect`, `perch bench detect`): handy for the reference scripts and for CI.
//!
//! usage: detect_cli import <export.onnx> -o DIR | detect_cli detect IMAGE... | detect_cli bench [...]

use clap::{Parser, Subcommand};
use perch_detect::cli;

#[derive(Parser)]
#[command(name = "detect_cli")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Import an Ultralytics ONNX export (as `perch model import`).
    Import(cli::ImportArgs),
    /// Detect objects in images (as `perch detect`).
    Detect(cli::DetectArgs),
    /// Benchmark the detector (as `perch bench detect`).
    Bench(cli::BenchArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Import(a) => cli::run_import(&a),
        Cmd::Detect(a) => cli::run_detect(&a),
        Cmd::Bench(a) => cli::run_bench(&a),
    }
}

//! The `perch` command line: one file per command group. Adding a command is one variant of
//! [`Command`] (the table clap parses) and its file here.

mod detect;
mod devices;
mod eval;
mod model;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  perch run --config configs/replay.toml
      replay the committed vtest sequence at its recorded 10 fps and print per-stage latency
  perch run --config configs/replay.toml --set source.pacing=max --report out/report.json
      as fast as possible, and write the JSON report
  perch run --config configs/replay.toml --set detect.imgsz=320 --set track.tracker=sort
      smaller model input (the Jetson Nano profile) and the SORT tracker
  perch run --config configs/nano.toml --source /dev/video0
      the Nano profile on a USB camera (build with --features camera); --source 0 and
      --source datasets/vtest work too
  perch devices
      the cameras present, with their formats, sizes and frame rates
  perch detect datasets/vtest/img1/000001.jpg --json
      detections of one image, in source pixels
  perch bench detect --imgsz 640 --threads 2 --runs 30
      detector latency (median/p95/p99), cold start and peak memory
  perch model import yolov8n.onnx -o models/yolov8n
      import an Ultralytics ONNX export
  perch eval mot --gt datasets/tud-campus/gt.txt --tracks datasets/tud-campus/test.txt
      MOTA/MOTP/IDF1/HOTA of a tracker output against ground truth";

#[derive(Parser)]
#[command(name = "perch", version, about = "Real-time perception pipeline for drones and robots", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline described by a config until the source ends or Ctrl-C.
    Run(run::RunArgs),
    /// Detect objects in single images (like `yolo predict`).
    Detect(detect::DetectArgs),
    /// List the cameras present with their formats, sizes and frame rates (needs `--features camera`).
    Devices(devices::DevicesArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Model files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Evaluate tracking against MOT ground truth.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Detector latency: cold start, per-frame median/p95/p99/min, peak RSS.
    Detect(detect::BenchArgs),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Import an Ultralytics ONNX export into a perch model folder (model.safetensors + model.json).
    Import(model::ImportArgs),
}

/// Parse the command line and run the command. Errors print as `error: ...` with exit code 2.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Detect(args) => detect::run_detect(&args).map(|()| ExitCode::SUCCESS),
        Command::Devices(args) => devices::run(&args),
        Command::Bench(BenchCommand::Detect(args)) => detect::run_bench(&args).map(|()| ExitCode::SUCCESS),
        Command::Model(ModelCommand::Import(args)) => model::run_import(&args).map(|()| ExitCode::SUCCESS),
        Command::Eval(cmd) => eval::run(&cmd).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

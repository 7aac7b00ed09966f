//! `perch`: the real-time perception pipeline's command line.

mod assemble;
mod config;
#[path = "cli/eval_quant.rs"]
mod eval_quant_cli;
mod jsonl;
#[path = "cli/quantize.rs"]
mod quantize_cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  perch run --config configs/replay.toml
      replay the committed vtest sequence at its recorded 10 fps and print per-stage latency
  perch run --config configs/replay.toml --set source.pacing=max --report out/report.json
      as fast as possible, and write the JSON report
  perch run --config configs/replay.toml --set detect.imgsz=320 --set track.tracker=sort
      smaller model input (the Jetson Nano profile) and the SORT tracker
  perch detect datasets/vtest/img1/000001.jpg --json
      detections of one image, in source pixels
  perch bench detect --imgsz 640 --threads 2 --runs 30
      detector latency (median/p95/p99), cold start and peak memory
  perch model import yolov8n.onnx -o models/yolov8n
      import an Ultralytics ONNX export
  perch model quantize models/yolov12n --calib datasets/vtest --frames 64 -o models/yolov12n-int8
      int8 post-training quantization calibrated on your frames
  perch eval mot --gt datasets/tud-campus/gt.txt --tracks datasets/tud-campus/test.txt
      MOTA/MOTP/IDF1/HOTA of a tracker output against ground truth
  perch eval quant --variants f32,int8-minmax,int8-percentile --calib datasets/vtest/img1 --frames datasets/vtest/img1 --frames-skip 100 --plot out/eval-quant/scatter.png
      accuracy-latency table of precision variants (agreement mAP vs f32, latency median/p95/p99)";

#[derive(Parser)]
#[command(name = "perch", version, about = "Real-time perception pipeline for drones and robots", after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the pipeline described by a config until the source ends or Ctrl-C.
    Run(RunArgs),
    /// Detect objects in single images (like `yolo predict`).
    Detect(perch_detect::cli::DetectArgs),
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Model files.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Evaluate tracking against MOT ground truth, or a model's precision variants.
    #[command(subcommand)]
    Eval(EvalCommand),
}

#[derive(Subcommand)]
enum EvalCommand {
    #[command(flatten)]
    Track(perch_track::cli::EvalCommand),
    /// Accuracy-latency table of a model's precision variants (f32, int8 recipes, ONNX Runtime peer).
    Quant(eval_quant_cli::EvalQuantArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Detector latency: cold start, per-frame median/p95/p99/min, peak RSS.
    Detect(perch_detect::cli::BenchArgs),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Import an Ultralytics ONNX export into a perch model folder (model.safetensors + model.json).
    Import(perch_detect::cli::ImportArgs),
    /// Quantize an f32 model to int8, calibrated on your frames (model.safetensors + model.json, precision int8).
    Quantize(quantize_cli::QuantizeArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// TOML config (keys: configs/README.md); without it, the built-in defaults of every key.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override one key: `--set source.pacing=max` (repeatable; values are TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the run report as JSON (schema `perch.report/1`, see README).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write every published frame's detections as JSON lines (seq, source index/time, boxes in source
    /// pixels, class, score, track id).
    #[arg(long, value_name = "FILE")]
    detections: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PERCH_LOG").unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Detect(args) => perch_detect::cli::run_detect(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::Detect(args)) => perch_detect::cli::run_bench(&args).map(|()| ExitCode::SUCCESS),
        Command::Model(ModelCommand::Import(args)) => perch_detect::cli::run_import(&args).map(|()| ExitCode::SUCCESS),
        Command::Model(ModelCommand::Quantize(args)) => quantize_cli::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Eval(EvalCommand::Track(cmd)) => perch_track::cli::run(&cmd).map(|()| ExitCode::SUCCESS),
        Command::Eval(EvalCommand::Quant(args)) => eval_quant_cli::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg: config::Config = perch_pipeline::config::load(args.config.as_deref(), &args.sets)?;
    let mut pipeline = assemble::assemble(&cfg)?;
    if let Some(path) = &args.detections {
        pipeline.taps.push(Box::new(jsonl::JsonlTap::create(path)?));
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting without a report");
                std::process::exit(130);
            }
            eprintln!("interrupt: stopping the source, counting frames in flight as `shutdown`");
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    let report = pipeline.run(stop)?;
    print!("{}", report.table());
    if let Some(path) = &args.report {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing report {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if !report.invariant_ok {
        eprintln!("error: frame accounting does not balance: a frame vanished or ended twice");
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

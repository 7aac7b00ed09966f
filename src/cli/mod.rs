//! The `perch` command line: one file per command group. Adding a command is one variant of
//! [`Command`] (the table clap parses) and its file here.

mod bench;
mod detect;
mod devices;
mod eval;
mod inputs;
mod info;
mod eval_quant;
mod model;
mod quantize;
mod run;
mod run_flags;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  perch run --config configs/replay.toml
      replay the committed vtest sequence at its recorded 10 fps and print per-stage latency
      (the default job: the same as `perch run`)
  perch run --config configs/replay.toml --set source.pacing=max --report out/report.json
      as fast as possible, and write the JSON report
  perch run --config configs/replay.toml --set detect.imgsz=320 --set track.tracker=sort
      smaller model input (the Jetson Nano profile) and the SORT tracker
  perch run --conf 0.5 --classes person --save-video run.mp4
      the default job with a higher threshold, people only, and an annotated video (needs ffmpeg)
  perch run --config configs/replay.toml --set source.fps=30 --set detect.schedule=async
      a 30 fps camera and a slower detector: every frame published, detections folded in late
  perch run --config configs/nano.toml --source /dev/video0
      the Nano profile on a USB camera (build with --features camera); --source 0 and
      --source datasets/vtest work too
  perch run --source flight.mp4        (or --source rtsp://192.168.1.20:8554/stream)
      a video file at its own frame rate, or a network camera (build with --features video)
  perch devices
      the cameras present, with their formats, sizes and frame rates
  perch detect datasets/vtest/img1/000001.jpg --json
      detections of one image, in source pixels
  perch detect datasets/vtest/img1 --save
      every image of a folder, annotated copies in runs/detect/predict
  perch info --config configs/nano.toml
      CPU, ISA features, the kernels that will run, cores, clocks, Jetson power mode, warnings
  perch bench detect --imgsz 640 --threads 2 --runs 30
      detector latency (median/p95/p99), cold start and peak memory
  perch bench pipeline --plots out/bench
      the whole pipeline at increasing input rates: the highest rate with < 5 % dropped frames
  perch bench sustained --minutes 10
      a steady run: throughput, latency, clocks, temperatures and energy per frame, minute by minute
  perch bench cold-start
      exec to the first published detection, in fresh processes
  perch bench compare
      perch f32/int8 against ONNX Runtime f32/static INT8, interleaved rounds (needs the detect venv)
  perch model import yolov8n.onnx -o models/yolov8n
      import an Ultralytics ONNX export
  perch model quantize models/yolov12n --calib datasets/vtest --frames 64 -o models/yolov12n-int8
      int8 post-training quantization calibrated on your frames
  perch eval mot --gt datasets/tud-campus/gt.txt --tracks datasets/tud-campus/test.txt
      MOTA/MOTP/IDF1/HOTA of a tracker output against ground truth
  perch eval track --gt datasets/tud-campus/gt.txt --detector-ms 90 --fps 30 --seeds 5
      a 90 ms detector on a 30 fps camera: three ways of publishing its late results, scored
  perch eval quant --variants f32,int8-minmax,int8-percentile --calib datasets/vtest/img1 --frames datasets/vtest/img1 --frames-skip 100 --plot out/eval-quant/scatter.png
      accuracy-latency table of precision variants (agreement mAP vs f32, latency median/p95/p99)

Environment: PERCH_LOG (log filter, default \"warn,perch=info\"), PERCH_HOME (where models/, configs/
and datasets/ are found when no path is given), PERCH_FFMPEG (the ffmpeg for --save-video).";

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
    /// Evaluate tracking against MOT ground truth, or a model's precision variants.
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// The machine as perch sees it: CPU, ISA features, kernels, threads, board, clocks, warnings.
    Info(info::InfoArgs),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Detector latency: cold start, per-frame median/p95/p99/min, peak RSS.
    Detect(detect::BenchArgs),
    /// The whole pipeline at increasing input rates: the highest rate with < 5 % dropped, and its
    /// per-stage latency, jitter, CPU per thread, memory, energy.
    Pipeline(bench::PipelineArgs),
    /// A steady run of N minutes: throughput and latency per window, clocks, temperatures, energy per frame.
    Sustained(bench::SustainedArgs),
    /// Exec to the first published detection, in fresh processes, with its parts.
    ColdStart(bench::ColdStartArgs),
    /// perch f32/int8 vs ONNX Runtime f32/static INT8: same export, tensors, threads; interleaved rounds.
    Compare(bench::CompareArgs),
}

#[derive(Subcommand)]
enum ModelCommand {
    /// Import an Ultralytics ONNX export into a perch model folder (model.safetensors + model.json).
    Import(model::ImportArgs),
    /// Quantize an f32 model to int8, calibrated on your frames (model.safetensors + model.json, precision int8).
    Quantize(quantize::QuantizeArgs),
}

/// Parse the command line and run the command. Errors print as `error: ...` with exit code 2.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Detect(args) => detect::run_detect(&args),
        Command::Devices(args) => devices::run(&args),
        Command::Bench(BenchCommand::Detect(args)) => detect::run_bench(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::Pipeline(args)) => bench::run_pipeline(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::Sustained(args)) => bench::run_sustained(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::ColdStart(args)) => bench::run_cold_start(&args).map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::Compare(args)) => bench::run_compare(&args).map(|()| ExitCode::SUCCESS),
        Command::Model(ModelCommand::Import(args)) => model::run_import(&args).map(|()| ExitCode::SUCCESS),
        Command::Model(ModelCommand::Quantize(args)) => quantize::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Eval(cmd) => eval::run(&cmd).map(|()| ExitCode::SUCCESS),
        Command::Info(args) => info::run(&args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

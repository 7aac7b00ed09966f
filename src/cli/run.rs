//! `perch run`: assemble the pipeline from a config, run it, print and write the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::{assemble, config, jsonl, outputs};

#[derive(Args)]
pub struct RunArgs {
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

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // First: a Ctrl-C while the model loads or warms up still ends the run with a report.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting without a report (result files keep their whole lines)");
                outputs::exit_between_writes(130);
            }
            eprintln!("interrupt: stopping the source, counting frames in flight as `shutdown`");
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    let cfg: config::Config = perch_pipeline::config::load(args.config.as_deref(), &args.sets)?;
    // Result destinations are created before anything long starts.
    outputs::check_distinct(args.report.as_deref(), args.detections.as_deref())?;
    let report_file = args.report.as_deref().map(outputs::ReportFile::open).transpose()?;
    let detections = args.detections.as_deref().map(jsonl::JsonlTap::create).transpose()?;
    let mut pipeline = assemble::assemble(&cfg)?;
    if let Some(tap) = detections {
        pipeline.taps.push(Box::new(tap));
    }
    let report = pipeline.run(stop)?;
    print!("{}", report.table());
    let all_written = outputs::finish(&report, report_file);
    if !report.invariant_ok {
        eprintln!("error: frame accounting does not balance: a frame vanished or ended twice");
        return Ok(ExitCode::from(3));
    }
    if !all_written {
        return Ok(ExitCode::from(outputs::EXIT_OUTPUT_LOST));
    }
    Ok(ExitCode::SUCCESS)
}

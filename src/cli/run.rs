//! `perch run`: assemble the pipeline from a config, run it, print and write the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use super::run_flags::{Shorthands, ViewFlags};
use crate::{assemble, jsonl, outputs, paths};

#[derive(Args)]
pub struct RunArgs {
    /// TOML config (keys: configs/README.md): a file, or a shipped config by name (`nano`); without
    /// it, the default job (the built-in defaults, = configs/replay.toml). Relative paths inside a
    /// config file are relative to the file's folder.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override one key: `--set source.pacing=max` (repeatable; values are TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the run report as JSON (schema `perch.report/2`, see README).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write every published frame's detections as JSON lines (seq, source index/time, fresh, detection
    /// age, boxes in source pixels, class, score, track id, predicted and age per box).
    #[arg(long, value_name = "FILE")]
    detections: Option<PathBuf>,
    #[command(flatten)]
    shorthands: Shorthands,
    #[command(flatten)]
    view: ViewFlags,
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
    let sets = [args.sets.clone(), args.shorthands.sets(&args.sets)?].concat();
    let cfg = paths::load_job(args.config.as_deref(), &sets)?.config;
    // Result destinations are created before anything long starts.
    outputs::check_distinct(args.report.as_deref(), args.detections.as_deref())?;
    let report_file = args.report.as_deref().map(outputs::ReportFile::open).transpose()?;
    let detections = args.detections.as_deref().map(jsonl::JsonlTap::create).transpose()?;
    let mut pipeline = assemble::assemble(&cfg)?;
    pipeline.taps.extend(args.view.taps(&cfg)?);
    if let Some(tap) = detections {
        pipeline.taps.push(Box::new(tap));
    }
    let report = pipeline.run(stop)?;
    print!("{}", report.table());
    let all_written = outputs::finish(&report, report_file);
    args.view.check(&report)?;
    if !report.invariant_ok {
        eprintln!("error: frame accounting does not balance: a frame vanished or ended twice");
        return Ok(ExitCode::from(3));
    }
    if !all_written {
        return Ok(ExitCode::from(outputs::EXIT_OUTPUT_LOST));
    }
    Ok(ExitCode::SUCCESS)
}

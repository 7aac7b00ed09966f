//! `perch run`: assemble the pipeline from a config, run it, print and write the report.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use crate::{assemble, config, jsonl};

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

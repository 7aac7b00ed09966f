//! `perch bench cold-start`: exec to the first published detection. Each run starts this binary
//! afresh as `perch run` on the config (a few frames, paced `max`), its detections going line by
//! line to a pipe; the clock stops at the first line whose boxes come from that frame's own
//! detection. The parts (model load, warm-up pass) come from the child's run report.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context};
use perch_detect::eval::table::LatencyStats;
use serde::Serialize;

use super::Header;

pub const SCHEMA: &str = "perch.bench_cold_start/1";

#[derive(Clone, Debug, Serialize)]
pub struct ColdRun {
    /// exec -> the first published frame (ms).
    pub first_frame_ms: Option<f64>,
    /// exec -> the first published frame whose boxes come from its own detection (ms).
    pub first_detection_ms: Option<f64>,
    /// Reading the weights and building the network (the detect stage's `model_load_us`).
    pub model_load_ms: Option<f64>,
    /// The untimed forward pass before the first frame (`warm_up_us`).
    pub warm_up_ms: Option<f64>,
    /// exec -> exit, with the few frames and the report.
    pub exit_ms: f64,
}

#[derive(Serialize)]
pub struct ColdStartBench {
    #[serde(flatten)]
    pub header: Header,
    /// The goal this machine is held to (the default model, ms).
    pub goal_ms: f64,
    pub runs: Vec<ColdRun>,
    pub first_detection_ms: Option<LatencyStats>,
    pub model_load_ms: Option<LatencyStats>,
    pub warm_up_ms: Option<LatencyStats>,
    /// The child's command (without the report path).
    pub child: String,
}

/// Start `exe run <run_args>` `runs` times, one after the other.
pub fn cold_start(exe: &Path, run_args: &[String], runs: usize, scratch: &Path, header: Header) -> anyhow::Result<ColdStartBench> {
    anyhow::ensure!(runs >= 1, "--runs must be at least 1");
    std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut out = Vec::new();
    for k in 0..runs {
        out.push(one(exe, run_args, &scratch.join(format!("cold-{k}.json")))?);
    }
    let stats = |f: fn(&ColdRun) -> Option<f64>| LatencyStats::from_ms(out.iter().filter_map(f).collect());
    Ok(ColdStartBench {
        header,
        goal_ms: 1000.0,
        first_detection_ms: stats(|r| r.first_detection_ms),
        model_load_ms: stats(|r| r.model_load_ms),
        warm_up_ms: stats(|r| r.warm_up_ms),
        runs: out,
        child: format!("{} run {} --detections /dev/stdout", exe.display(), run_args.join(" ")),
    })
}

fn one(exe: &Path, run_args: &[String], report: &PathBuf) -> anyhow::Result<ColdRun> {
    let t0 = Instant::now();
    let mut child = Command::new(exe)
        .arg("run")
        .args(run_args)
        .args(["--detections", "/dev/stdout", "--report"])
        .arg(report)
        .env("PERCH_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", exe.display()))?;
    let stdout = child.stdout.take().context("the child's stdout")?;
    let (mut first_frame, mut first_detection) = (None, None);
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading the child's detections")?;
        if !line.starts_with('{') {
            continue; // the report table printed at the end
        }
        let at = t0.elapsed().as_secs_f64() * 1e3;
        first_frame.get_or_insert(at);
        if first_detection.is_none() {
            let v: serde_json::Value = serde_json::from_str(&line).context("a detections line that is not JSON")?;
            if v["fresh"].as_bool() == Some(true) {
                first_detection = Some(at);
            }
        }
    }
    let output = child.wait_with_output().context("waiting for the child")?;
    let exit_ms = t0.elapsed().as_secs_f64() * 1e3;
    if !output.status.success() {
        bail!("`perch run` failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr).trim());
    }
    let text = std::fs::read_to_string(report).with_context(|| format!("reading {}", report.display()))?;
    let r: perch_pipeline::RunReport = serde_json::from_str(&text).with_context(|| format!("{}: not a run report", report.display()))?;
    let counter = |name: &str| {
        r.stages.iter().find(|s| s.name == "detect").and_then(|s| s.counters.get(name)).map(|&us| us as f64 / 1e3)
    };
    Ok(ColdRun { first_frame_ms: first_frame, first_detection_ms: first_detection, model_load_ms: counter("model_load_us"), warm_up_ms: counter("warm_up_us"), exit_ms })
}

//! `perch eval mot`, `perch eval track` and (in eval_quant.rs) `perch eval quant`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use perch_track::corrupt::Corruption;
use perch_track::eval::{eval_mot, eval_track, format_table, TrackEvalOptions};
use perch_track::TrackerKind;

/// `perch eval <what>`.
#[derive(Subcommand, Debug, Clone)]
pub enum EvalCommand {
    /// Score a tracker's output (MOT15/16/17 text) against ground truth: MOTA, MOTP, IDF1, HOTA...
    Mot(EvalMotArgs),
    /// Make seeded corrupted detections from ground truth, track them, and score the tracks.
    Track(EvalTrackArgs),
    /// Accuracy-latency table of a model's precision variants (f32, int8 recipes, ONNX Runtime peer).
    Quant(super::eval_quant::EvalQuantArgs),
}

#[derive(Args, Debug, Clone)]
pub struct EvalMotArgs {
    /// Ground truth, MOTChallenge format (`frame,id,left,top,width,height,conf,...`).
    #[arg(long)]
    pub gt: PathBuf,
    /// Tracker output, MOTChallenge format.
    #[arg(long)]
    pub tracks: PathBuf,
    /// Largest 1 - IoU at which a track box can match a ground-truth box.
    #[arg(long, default_value_t = 0.5)]
    pub max_distance: f64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvalTrackArgs {
    /// Ground truth, MOTChallenge format; rows with conf < 1 are ignored.
    #[arg(long)]
    pub gt: PathBuf,
    /// Tracker to run: bytetrack or sort.
    #[arg(long, default_value = "bytetrack")]
    pub tracker: TrackerKind,
    /// Box noise: standard deviation of centre shift and size change, as a fraction of the box size.
    #[arg(long, default_value_t = 0.05)]
    pub jitter: f64,
    /// Probability that a ground-truth box is missed.
    #[arg(long, default_value_t = 0.1)]
    pub miss: f64,
    /// Mean number of false-positive boxes per frame (Poisson).
    #[arg(long, default_value_t = 0.5)]
    pub fp: f64,
    /// Standard deviation of detection scores around 0.85.
    #[arg(long, default_value_t = 0.15)]
    pub score_noise: f64,
    /// Seed of the corruption (same seed, same detections).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Every Nth frame has no fresh detections and the tracker coasts (0 = never).
    #[arg(long, default_value_t = 0)]
    pub coast_every: u32,
    /// Frame rate of the sequence (scales `track_buffer`).
    #[arg(long, default_value_t = 30.0)]
    pub frame_rate: f64,
    /// Tracker parameters as a TOML table (the `[track]` keys), e.g. `track_buffer = 60`.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write the corrupted detections here (MOT det format: id -1, conf = score).
    #[arg(long)]
    pub out_dets: Option<PathBuf>,
    /// Write the tracker's output here (MOT results format).
    #[arg(long)]
    pub out_tracks: Option<PathBuf>,
}

pub fn run(cmd: &EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Quant(a) => super::eval_quant::run(a)?,
        EvalCommand::Mot(a) => {
            let m = eval_mot(&a.gt, &a.tracks, a.max_distance)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                print!("{}", format_table(&m));
            }
        }
        EvalCommand::Track(a) => {
            let corruption = Corruption { jitter: a.jitter, miss: a.miss, fp: a.fp, score_noise: a.score_noise, seed: a.seed };
            let report = eval_track(&TrackEvalOptions {
                gt: a.gt.clone(),
                tracker: a.tracker,
                corruption,
                coast_every: a.coast_every,
                frame_rate: a.frame_rate,
                config: a.config.clone(),
                out_dets: a.out_dets.clone(),
                out_tracks: a.out_tracks.clone(),
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} on {} ({} detections: jitter {}, miss {}, fp {}/frame, score noise {}, seed {})",
                    a.tracker.display_name(),
                    a.gt.display(),
                    report.detections,
                    a.jitter,
                    a.miss,
                    a.fp,
                    a.score_noise,
                    a.seed
                );
                print!("{}", format_table(&report.metrics));
            }
        }
    }
    Ok(())
}

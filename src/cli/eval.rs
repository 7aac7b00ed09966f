//! `perch eval mot`, `perch eval track` and (in eval_quant.rs) `perch eval quant`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use perch_track::corrupt::Corruption;
use perch_track::eval::{eval_mot, eval_schedules, eval_track, format_schedule_table, format_table, TrackEvalOptions};
use perch_track::simulate::DetectorSim;
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
    /// Tracker to run: bytetrack or sort [default: the config's, else bytetrack].
    #[arg(long)]
    pub tracker: Option<TrackerKind>,
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
    /// Frame rate of the sequence (scales `track_buffer`); with --detector-ms, the simulated camera's rate.
    #[arg(long, visible_alias = "fps", default_value_t = 30.0)]
    pub frame_rate: f64,
    /// Simulate a detector taking this long per frame on a live camera at --fps, and compare ways of
    /// publishing its late results, scoring every frame (a frame without output scores as misses).
    #[arg(long, value_name = "MS")]
    pub detector_ms: Option<f64>,
    /// Standard deviation of the simulated detector's time per run (seeded by --seed).
    #[arg(long, value_name = "MS", default_value_t = 0.0, requires = "detector_ms")]
    pub detector_jitter_ms: f64,
    /// With --detector-ms: run seeds --seed, --seed + 1, ... (this many) and report each and the mean.
    #[arg(long, default_value_t = 1, requires = "detector_ms")]
    pub seeds: u64,
    /// Tracker parameters: a TOML file of `[track]` keys (`track_buffer = 60`, with or without the
    /// `[track]` header), or a perch config such as configs/replay.toml (its `[track]` section).
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
            let opts = TrackEvalOptions {
                gt: a.gt.clone(),
                tracker: a.tracker,
                corruption,
                coast_every: a.coast_every,
                frame_rate: a.frame_rate,
                config: a.config.clone(),
                out_dets: a.out_dets.clone(),
                out_tracks: a.out_tracks.clone(),
            };
            if let Some(latency_ms) = a.detector_ms {
                anyhow::ensure!(
                    a.coast_every == 0 && a.out_dets.is_none() && a.out_tracks.is_none(),
                    "--detector-ms: the simulated schedule decides which frames are detected; drop --coast-every, --out-dets and --out-tracks"
                );
                anyhow::ensure!((1..=1000).contains(&a.seeds), "--seeds {}: must be between 1 and 1000", a.seeds);
                let sim = DetectorSim { latency_ms, jitter_ms: a.detector_jitter_ms, fps: a.frame_rate, seed: a.seed };
                let seeds: Vec<u64> = (a.seed..a.seed + a.seeds).collect();
                let report = eval_schedules(&opts, &sim, &seeds)?;
                if a.json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    print!("{}", format_schedule_table(&report));
                }
                return Ok(());
            }
            let report = eval_track(&opts)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!(
                    "{} on {} ({} detections: jitter {}, miss {}, fp {}/frame, score noise {}, seed {})",
                    report.tracker.display_name(),
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

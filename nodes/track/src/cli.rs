//! `perch eval mot` and `perch eval track`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::corrupt::{corrupt, Corruption};
use crate::mot::{evaluate, format_mot, read_mot, MotMetrics, MotOptions};
use crate::replay::{frame_range, track_detections};
use crate::stage::TrackConfig;
use crate::tracker::TrackerKind;

/// `perch eval <what>`.
#[derive(Subcommand, Debug, Clone)]
pub enum EvalCommand {
    /// Score a tracker's output (MOT15/16/17 text) against ground truth: MOTA, MOTP, IDF1, HOTA...
    Mot(EvalMotArgs),
    /// Make seeded corrupted detections from ground truth, track them, and score the tracks.
    Track(EvalTrackArgs),
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
    /// Tracker to run.
    #[arg(long, value_enum, default_value_t = TrackerKind::Bytetrack)]
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

/// Run an `eval` subcommand.
pub fn run(cmd: &EvalCommand) -> anyhow::Result<()> {
    match cmd {
        EvalCommand::Mot(a) => run_mot(a),
        EvalCommand::Track(a) => run_track(a),
    }
}

pub fn run_mot(args: &EvalMotArgs) -> anyhow::Result<()> {
    if !(args.max_distance > 0.0 && args.max_distance <= 1.0) {
        anyhow::bail!(
            "--max-distance {}: must be in (0, 1] (1 - IoU)",
            args.max_distance
        );
    }
    let gt = read_mot(&args.gt)?;
    let tracks = read_mot(&args.tracks)?;
    let opts = MotOptions {
        max_distance: args.max_distance,
        ..MotOptions::default()
    };
    let m = evaluate(&gt, &tracks, &opts);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        print!("{}", format_table(&m));
    }
    Ok(())
}

#[derive(Serialize)]
struct TrackReport<'a> {
    gt: String,
    tracker: TrackerKind,
    corruption: Corruption,
    coast_every: u32,
    config: &'a TrackConfig,
    detections: usize,
    metrics: MotMetrics,
}

pub fn run_track(args: &EvalTrackArgs) -> anyhow::Result<()> {
    let corruption = Corruption {
        jitter: args.jitter,
        miss: args.miss,
        fp: args.fp,
        score_noise: args.score_noise,
        seed: args.seed,
    };
    corruption.validate()?;
    let mut config = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<TrackConfig>(&text)
                .with_context(|| format!("{}: not a valid [track] table", p.display()))?
        }
        None => TrackConfig::default(),
    };
    config.tracker = args.tracker;
    if config.frame_rate.is_none() {
        config.frame_rate = Some(args.frame_rate);
    }
    let params = config.params(None)?;
    let gt = read_mot(&args.gt)?;
    let Some((first, last)) = frame_range(&gt) else {
        anyhow::bail!("{}: no ground-truth boxes", args.gt.display());
    };
    let dets = corrupt(&gt, &corruption);
    let every = args.coast_every as i64;
    let tracks = track_detections(&dets, params, first, last, |f| {
        every == 0 || (f - first + 1) % every != 0
    });
    if let Some(p) = &args.out_dets {
        std::fs::write(p, format_mot(&dets))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.out_tracks {
        std::fs::write(p, format_mot(&tracks))
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let m = evaluate(&gt, &tracks, &MotOptions::default());
    if args.json {
        let report = TrackReport {
            gt: args.gt.display().to_string(),
            tracker: args.tracker,
            corruption,
            coast_every: args.coast_every,
            config: &config,
            detections: dets.len(),
            metrics: m,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} on {} ({} detections: jitter {}, miss {}, fp {}/frame, score noise {}, seed {})",
            match args.tracker {
                TrackerKind::Bytetrack => "ByteTrack",
                TrackerKind::Sort => "SORT",
            },
            args.gt.display(),
            dets.len(),
            args.jitter,
            args.miss,
            args.fp,
            args.score_noise,
            args.seed
        );
        print!("{}", format_table(&m));
    }
    Ok(())
}

/// The metrics as a two-line table (motmetrics' column names).
pub fn format_table(m: &MotMetrics) -> String {
    let cols: [(&str, String); 20] = [
        ("IDF1", format!("{:.4}", m.idf1)),
        ("IDP", format!("{:.4}", m.idp)),
        ("IDR", format!("{:.4}", m.idr)),
        ("Rcll", format!("{:.4}", m.recall)),
        ("Prcn", format!("{:.4}", m.precision)),
        ("GT", m.num_unique_objects.to_string()),
        ("MT", m.mostly_tracked.to_string()),
        ("PT", m.partially_tracked.to_string()),
        ("ML", m.mostly_lost.to_string()),
        ("FP", m.num_false_positives.to_string()),
        ("FN", m.num_misses.to_string()),
        ("IDs", m.num_switches.to_string()),
        ("FM", m.num_fragmentations.to_string()),
        ("MOTA", format!("{:.4}", m.mota)),
        ("MOTP", format!("{:.4}", m.motp)),
        ("HOTA", format!("{:.4}", m.hota.hota)),
        ("DetA", format!("{:.4}", m.hota.deta)),
        ("AssA", format!("{:.4}", m.hota.assa)),
        ("LocA", format!("{:.4}", m.hota.loca)),
        ("frames", m.num_frames.to_string()),
    ];
    let mut head = String::new();
    let mut vals = String::new();
    for (name, v) in &cols {
        let w = name.len().max(v.len());
        head.push_str(&format!("{name:>w$} "));
        vals.push_str(&format!("{v:>w$} "));
    }
    format!("{}\n{}\n", head.trim_end(), vals.trim_end())
}

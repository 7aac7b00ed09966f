//! What `perch eval mot` and `perch eval track` compute (the binary owns their command lines):
//! scoring a tracker output against ground truth, and tracking seeded corruptions of ground truth.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::corrupt::{corrupt, Corruption};
use crate::mot::{evaluate, format_mot, read_mot, MotMetrics, MotOptions};
use crate::replay::{frame_range, track_detections};
use crate::stage::TrackConfig;
use crate::tracker::TrackerKind;

/// MOT metrics of the tracker output `tracks` against the ground truth `gt` (MOTChallenge text).
/// `max_distance`: the largest 1 - IoU at which a track box can match a ground-truth box.
pub fn eval_mot(gt: &Path, tracks: &Path, max_distance: f64) -> anyhow::Result<MotMetrics> {
    if !(max_distance > 0.0 && max_distance <= 1.0) {
        anyhow::bail!("--max-distance {max_distance}: must be in (0, 1] (1 - IoU)");
    }
    let gt = read_mot(gt)?;
    let tracks = read_mot(tracks)?;
    let opts = MotOptions { max_distance, ..MotOptions::default() };
    Ok(evaluate(&gt, &tracks, &opts))
}

/// One `eval track` run: corrupt the ground truth into detections, track them, score the tracks.
#[derive(Debug, Clone)]
pub struct TrackEvalOptions {
    /// Ground truth, MOTChallenge format; rows with conf < 1 are ignored.
    pub gt: PathBuf,
    pub tracker: TrackerKind,
    pub corruption: Corruption,
    /// Every Nth frame has no fresh detections and the tracker coasts (0 = never).
    pub coast_every: u32,
    /// Frame rate of the sequence (scales `track_buffer`), unless the config sets one.
    pub frame_rate: f64,
    /// Tracker parameters as a TOML table (the `[track]` keys).
    pub config: Option<PathBuf>,
    /// Write the corrupted detections here (MOT det format: id -1, conf = score).
    pub out_dets: Option<PathBuf>,
    /// Write the tracker's output here (MOT results format).
    pub out_tracks: Option<PathBuf>,
}

/// The result of [`eval_track`], as `perch eval track --json` prints it.
#[derive(Debug, Serialize)]
pub struct TrackEvalReport {
    pub gt: String,
    pub tracker: TrackerKind,
    pub corruption: Corruption,
    pub coast_every: u32,
    pub config: TrackConfig,
    pub detections: usize,
    pub metrics: MotMetrics,
}

pub fn eval_track(opts: &TrackEvalOptions) -> anyhow::Result<TrackEvalReport> {
    let corruption = opts.corruption;
    corruption.validate()?;
    let mut config = match &opts.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?;
            toml::from_str::<TrackConfig>(&text).with_context(|| format!("{}: not a valid [track] table", p.display()))?
        }
        None => TrackConfig::default(),
    };
    config.tracker = opts.tracker;
    if config.frame_rate.is_none() {
        config.frame_rate = Some(opts.frame_rate);
    }
    let params = config.params(None)?;
    let gt = read_mot(&opts.gt)?;
    let Some((first, last)) = frame_range(&gt) else {
        anyhow::bail!("{}: no ground-truth boxes", opts.gt.display());
    };
    let dets = corrupt(&gt, &corruption);
    let every = opts.coast_every as i64;
    let tracks = track_detections(&dets, params, first, last, |f| every == 0 || (f - first + 1) % every != 0);
    if let Some(p) = &opts.out_dets {
        std::fs::write(p, format_mot(&dets)).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &opts.out_tracks {
        std::fs::write(p, format_mot(&tracks)).with_context(|| format!("cannot write {}", p.display()))?;
    }
    let metrics = evaluate(&gt, &tracks, &MotOptions::default());
    Ok(TrackEvalReport {
        gt: opts.gt.display().to_string(),
        tracker: opts.tracker,
        corruption,
        coast_every: opts.coast_every,
        config,
        detections: dets.len(),
        metrics,
    })
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

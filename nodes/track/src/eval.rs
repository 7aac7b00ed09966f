//! What `perch eval mot` and `perch eval track` compute (the binary owns their command lines):
//! scoring a tracker output against ground truth, and tracking seeded corruptions of ground truth.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::corrupt::{corrupt, Corruption};
use crate::mot::{evaluate, format_mot, read_mot, MotMetrics, MotOptions};
use crate::replay::{frame_range, track_detections};
use crate::simulate::{simulate, DetectorSim, Publish, SimStats};
use crate::stage::TrackConfig;
use crate::tracker::TrackerKind;

/// MOT metrics of the tracker output `tracks` against the ground truth `gt` (MOTChallenge text).
/// `max_distance`: the largest 1 - IoU at which a track box can match a ground-truth box.
pub fn eval_mot(gt: &Path, tracks: &Path, max_distance: f64) -> anyhow::Result<MotMetrics> {
    if !(max_distance > 0.0 && max_distance <= 1.0) {
        anyhow::bail!("--max-distance {max_distance}: must be in (0, 1] (1 - IoU)");
    }
    let (gt_path, tracks_path) = (gt, tracks);
    let gt = read_mot(gt_path)?;
    if gt.is_empty() {
        anyhow::bail!("{}: no ground-truth boxes (an empty file scores nothing)", gt_path.display());
    }
    let tracks = read_mot(tracks_path)?;
    if tracks.is_empty() {
        // A tracker that saw nothing is a valid (bad) result: score it, but say so.
        tracing::warn!("{}: no tracks at all: every ground-truth box is a miss", tracks_path.display());
    }
    let opts = MotOptions { max_distance, ..MotOptions::default() };
    Ok(evaluate(&gt, &tracks, &opts))
}

/// One `eval track` run: corrupt the ground truth into detections, track them, score the tracks.
#[derive(Debug, Clone)]
pub struct TrackEvalOptions {
    /// Ground truth, MOTChallenge format; rows with conf < 1 are ignored.
    pub gt: PathBuf,
    /// The tracker; `None`: the config's (`bytetrack` without one).
    pub tracker: Option<TrackerKind>,
    pub corruption: Corruption,
    /// Every Nth frame has no fresh detections and the tracker coasts (0 = never).
    pub coast_every: u32,
    /// Frame rate of the sequence (scales `track_buffer`), unless the config sets one.
    pub frame_rate: f64,
    /// Tracker parameters: a TOML file of `[track]` keys, with or without the `[track]` header, or a
    /// whole perch config (its `[track]` section is used).
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
    let mut config = load_options_config(opts)?;
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
        tracker: config.tracker,
        corruption,
        coast_every: opts.coast_every,
        config,
        detections: dets.len(),
        metrics,
    })
}

/// The tracker settings in a TOML file: the `[track]` table of a perch config (`configs/replay.toml`,
/// other sections ignored: they belong to other stages), a file with only a `[track]` table, or the
/// bare keys (`track_buffer = 60`). Unknown keys are errors naming the key.
pub fn load_track_config(path: &Path) -> anyhow::Result<TrackConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let table: toml::Table = text.parse().with_context(|| format!("{}: not valid TOML", path.display()))?;
    let origin = path.display().to_string();
    let sections = table.values().all(toml::Value::is_table);
    let (value, prefix) = match table.get("track") {
        Some(track @ toml::Value::Table(_)) => (track.clone(), "track."),
        // A perch config without a [track] section: the tracker's defaults.
        _ if sections && !table.is_empty() => return Ok(TrackConfig::default()),
        _ => (toml::Value::Table(table), ""),
    };
    perch_pipeline::config::from_table(value, &origin).map_err(|e| match e {
        perch_pipeline::ConfigError::Key { origin, key, message } => {
            anyhow::anyhow!("{origin}: key `{prefix}{key}`: {message}")
        }
        other => other.into(),
    })
}

/// `[track]` keys from `opts.config` (or the defaults), with the tracker of `opts` if it names one.
fn load_options_config(opts: &TrackEvalOptions) -> anyhow::Result<TrackConfig> {
    let mut config = match &opts.config {
        Some(p) => load_track_config(p)?,
        None => TrackConfig::default(),
    };
    if let Some(kind) = opts.tracker {
        config.tracker = kind;
    }
    Ok(config)
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

/// One way of publishing a simulated detector's results, scored over several seeds.
#[derive(Debug, Serialize)]
pub struct ScheduleScore {
    pub publish: Publish,
    pub description: &'static str,
    /// Per seed, in the order given.
    pub runs: Vec<ScheduleRun>,
    pub mean_idf1: f64,
    pub mean_mota: f64,
}

#[derive(Debug, Serialize)]
pub struct ScheduleRun {
    pub seed: u64,
    pub stats: SimStats,
    pub metrics: MotMetrics,
}

/// The result of [`eval_schedules`], as `perch eval track --detector-ms ... --json` prints it.
#[derive(Debug, Serialize)]
pub struct ScheduleEvalReport {
    pub gt: String,
    pub tracker: TrackerKind,
    pub detector: DetectorSim,
    pub corruption: Corruption,
    pub seeds: Vec<u64>,
    /// Every frame detected at once (no latency): the ceiling the others are measured against.
    pub every_frame_no_latency: ScheduleScore,
    pub schedules: Vec<ScheduleScore>,
}

/// Simulate `sim` on the corrupted ground truth of `opts` for each seed (the seed drives both the
/// corruption and the latency jitter) and score every frame of each way of publishing it.
pub fn eval_schedules(opts: &TrackEvalOptions, sim: &DetectorSim, seeds: &[u64]) -> anyhow::Result<ScheduleEvalReport> {
    sim.validate()?;
    anyhow::ensure!(!seeds.is_empty(), "--seeds: at least one seed");
    let mut config = load_options_config(opts)?;
    config.frame_rate = config.frame_rate.or(Some(sim.fps));
    let params = config.params(None)?;
    let gt = read_mot(&opts.gt)?;
    let Some((first, last)) = frame_range(&gt) else {
        anyhow::bail!("{}: no ground-truth boxes", opts.gt.display());
    };
    let mut oracle = Vec::new();
    let mut by_mode: Vec<Vec<ScheduleRun>> = Publish::ALL.iter().map(|_| Vec::new()).collect();
    for &seed in seeds {
        let corruption = Corruption { seed, ..opts.corruption };
        corruption.validate()?;
        let dets = corrupt(&gt, &corruption);
        let tracks = track_detections(&dets, params, first, last, |_| true);
        let stats = SimStats { frames: (last - first + 1) as u64, detector_runs: (last - first + 1) as u64, published_frames: (last - first + 1) as u64, mean_result_delay_frames: 0.0 };
        oracle.push(ScheduleRun { seed, stats, metrics: evaluate(&gt, &tracks, &MotOptions::default()) });
        for (p, runs) in Publish::ALL.iter().zip(&mut by_mode) {
            let sim = DetectorSim { seed, ..*sim };
            let (tracks, stats) = simulate(&dets, params, config.history_frames as usize, first, last, &sim, *p);
            runs.push(ScheduleRun { seed, stats, metrics: evaluate(&gt, &tracks, &MotOptions::default()) });
        }
    }
    let score = |publish: Publish, description: &'static str, runs: Vec<ScheduleRun>| {
        let n = runs.len() as f64;
        ScheduleScore {
            publish,
            description,
            mean_idf1: runs.iter().map(|r| r.metrics.idf1).sum::<f64>() / n,
            mean_mota: runs.iter().map(|r| r.metrics.mota).sum::<f64>() / n,
            runs,
        }
    };
    Ok(ScheduleEvalReport {
        gt: opts.gt.display().to_string(),
        tracker: config.tracker,
        detector: *sim,
        corruption: opts.corruption,
        seeds: seeds.to_vec(),
        every_frame_no_latency: score(Publish::AtTheirFrame, "every frame detected, no latency (ceiling)", oracle),
        schedules: Publish::ALL.iter().zip(by_mode).map(|(p, runs)| score(*p, p.describe(), runs)).collect(),
    })
}

/// The comparison as a table: one row per way of publishing, IDF1 and MOTA per seed and their mean.
pub fn format_schedule_table(r: &ScheduleEvalReport) -> String {
    let mut s = format!(
        "{} on {}, detector {} ms (jitter {} ms) at {} fps, seeds {:?}\n",
        r.tracker.display_name(),
        r.gt,
        r.detector.latency_ms,
        r.detector.jitter_ms,
        r.detector.fps,
        r.seeds
    );
    s.push_str(&format!("{:<52} {:>9} {:>7} {:>7}  per seed (IDF1/MOTA)\n", "", "published", "IDF1", "MOTA"));
    for row in std::iter::once(&r.every_frame_no_latency).chain(&r.schedules) {
        let published: u64 = row.runs.iter().map(|x| x.stats.published_frames).sum();
        let frames: u64 = row.runs.iter().map(|x| x.stats.frames).sum();
        let per: Vec<String> = row.runs.iter().map(|x| format!("{:.3}/{:.3}", x.metrics.idf1, x.metrics.mota)).collect();
        s.push_str(&format!(
            "{:<52} {:>8.1}% {:>7.3} {:>7.3}  {}\n",
            row.description,
            100.0 * published as f64 / frames.max(1) as f64,
            row.mean_idf1,
            row.mean_mota,
            per.join(" ")
        ));
    }
    s
}

#[cfg(test)]
mod config_file_tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("perch-track-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn track_config_files_with_or_without_the_header_and_whole_perch_configs() {
        let bare = load_track_config(&write("bare.toml", "track_buffer = 60\ntracker = \"sort\"\n")).unwrap();
        assert_eq!((bare.track_buffer, bare.tracker), (60, TrackerKind::Sort));
        let headed = load_track_config(&write("headed.toml", "[track]\ntrack_buffer = 45\n")).unwrap();
        assert_eq!(headed.track_buffer, 45);
        let perch = load_track_config(&write("job.toml", "[pipeline]\nbudget_ms = 5\n[track]\nmatch_thresh = 0.7\n")).unwrap();
        assert_eq!(perch.match_thresh, 0.7);
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
        assert_eq!(load_track_config(&shipped.join("replay.toml")).unwrap().tracker, TrackerKind::Bytetrack);
        assert_eq!(load_track_config(&shipped.join("nano.toml")).unwrap(), TrackConfig::default());
        let e = load_track_config(&write("typo.toml", "[track]\ntrack_bufer = 1\n")).unwrap_err().to_string();
        assert!(e.contains("key `track.track_bufer`") && e.contains("typo.toml"), "{e}");
        let e = load_track_config(&write("bare_typo.toml", "trak_buffer = 1\n")).unwrap_err().to_string();
        assert!(e.contains("key `trak_buffer`"), "{e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ground_truth_is_an_error_and_empty_tracks_score_zero() {
        let dir = std::env::temp_dir().join(format!("perch-eval-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (gt, empty) = (dir.join("gt.txt"), dir.join("empty.txt"));
        std::fs::write(&gt, "1,1,10,10,20,40,1,-1,-1,-1\n2,1,12,10,20,40,1,-1,-1,-1\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let e = eval_mot(&empty, &gt, 0.5).unwrap_err().to_string();
        assert!(e.contains("empty.txt") && e.contains("no ground-truth boxes"), "{e}");
        let m = eval_mot(&gt, &empty, 0.5).unwrap();
        assert_eq!(m.num_misses, 2);
    }
}

//! `perch run`'s shorthand flags (Ultralytics' names) and its output flags: what a user types
//! instead of `--set`, and what they watch while the pipeline runs.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use perch_detect::DeviceKind;
use perch_pipeline::{RunReport, Tap};
use perch_track::TrackerKind;

use crate::status::{Mode, StatusTap};

/// A flag value where an empty string means "not given": what a ROS 2 launch file passes for an
/// argument left unset (`--conf ''` keeps the config's `detect.conf`).
#[derive(Clone, Debug, Default)]
pub struct OrEmpty<T>(Option<T>);

impl<T: std::str::FromStr> std::str::FromStr for OrEmpty<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "" => Ok(Self(None)),
            v => v.parse().map(|v| Self(Some(v))).map_err(|e: T::Err| e.to_string()),
        }
    }
}

fn given<T: Clone>(flag: &Option<OrEmpty<T>>) -> Option<T> {
    flag.as_ref().and_then(|v| v.0.clone())
}

/// Shorthands: each is one `--set` key (and it is an error to give both for the same key). An
/// empty value counts as not given (for launch files).
#[derive(Args, Debug, Default)]
#[command(next_help_heading = "Shorthands for --set")]
pub struct Shorthands {
    /// Model directory: `--set detect.model=DIR` (relative to the current directory).
    #[arg(long, value_name = "DIR")]
    model: Option<OrEmpty<PathBuf>>,
    /// Minimum class score: `--set detect.conf=X`.
    #[arg(long, value_name = "X")]
    conf: Option<OrEmpty<f64>>,
    /// NMS IoU threshold: `--set detect.iou=X`.
    #[arg(long, value_name = "X")]
    iou: Option<OrEmpty<f64>>,
    /// Model input side, a multiple of 32: `--set detect.imgsz=N`.
    #[arg(long, value_name = "N")]
    imgsz: Option<OrEmpty<u32>>,
    /// Classes to keep, ids or names: `--classes person,car` = `--set 'detect.classes=["person","car"]'`.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    classes: Vec<String>,
    /// `cpu` or `cuda`: `--set detect.device=...`.
    #[arg(long)]
    device: Option<DeviceKind>,
    /// `bytetrack` or `sort`: `--set track.tracker=...`.
    #[arg(long)]
    tracker: Option<TrackerKind>,
}

impl Shorthands {
    /// The `--set` arguments these flags stand for, after checking none repeats a key in `explicit`.
    pub fn sets(&self, explicit: &[String]) -> anyhow::Result<Vec<String>> {
        let mut out: Vec<(&str, &str, toml::Value)> = Vec::new();
        if let Some(m) = given(&self.model) {
            out.push(("--model", "detect.model", toml::Value::String(m.display().to_string())));
        }
        if let Some(c) = given(&self.conf) {
            out.push(("--conf", "detect.conf", toml::Value::Float(c)));
        }
        if let Some(i) = given(&self.iou) {
            out.push(("--iou", "detect.iou", toml::Value::Float(i)));
        }
        if let Some(s) = given(&self.imgsz) {
            out.push(("--imgsz", "detect.imgsz", toml::Value::Integer(s.into())));
        }
        let classes: Vec<&String> = self.classes.iter().filter(|c| !c.trim().is_empty()).collect();
        if !classes.is_empty() {
            let list = classes
                .iter()
                .map(|c| match c.trim().parse::<i64>() {
                    Ok(id) => toml::Value::Integer(id),
                    Err(_) => toml::Value::String(c.trim().to_string()),
                })
                .collect();
            out.push(("--classes", "detect.classes", toml::Value::Array(list)));
        }
        if let Some(d) = self.device {
            let name = match d {
                DeviceKind::Cpu => "cpu",
                DeviceKind::Cuda => "cuda",
            };
            out.push(("--device", "detect.device", toml::Value::String(name.into())));
        }
        if let Some(t) = self.tracker {
            out.push(("--tracker", "track.tracker", toml::Value::String(t.as_str().into())));
        }
        for (flag, key, _) in &out {
            if let Some(s) = explicit.iter().find(|s| s.split('=').next().map(str::trim) == Some(key)) {
                bail!("{flag} and --set {s} both set `{key}`: give one");
            }
        }
        Ok(out.into_iter().map(|(_, key, v)| format!("{key}={v}")).collect())
    }
}

/// What `perch run` shows and saves while it runs.
#[derive(Args, Debug)]
#[command(next_help_heading = "Watching the run")]
pub struct ViewFlags {
    /// Write the published frames, annotated (boxes, class, score, track id; predicted boxes dashed):
    /// `out.mp4`/`.mkv`/`.mov`/`.avi`/`.webm` through the `ffmpeg` program, anything else is a folder
    /// of JPEGs.
    #[arg(long, value_name = "PATH")]
    save_video: Option<PathBuf>,
    /// No status line on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// Seconds between status lines when stderr is not a terminal (a file, a pipe, journald); on a
    /// terminal the line is redrawn every second.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    status_every: f64,
}

impl ViewFlags {
    /// The taps these flags ask for; errors (ffmpeg missing, a bad interval) before the run starts.
    pub fn taps(&self, cfg: &crate::config::Config) -> anyhow::Result<Vec<Box<dyn Tap>>> {
        let mut taps: Vec<Box<dyn Tap>> = Vec::new();
        if let Some(path) = &self.save_video {
            let target = perch_annotate::VideoTarget::from_path(path);
            // An offline replay waits for the writer (every frame in the video); a live one never does.
            let offline = cfg.source.pacing == perch_capture::Pacing::Max;
            taps.push(Box::new(perch_annotate::VideoTap::new(target, offline)?));
        }
        if !self.quiet {
            if !(self.status_every.is_finite() && self.status_every >= 0.1) {
                bail!("--status-every {}: must be at least 0.1 seconds", self.status_every);
            }
            taps.push(Box::new(StatusTap::new(Mode::detect(Duration::from_secs_f64(self.status_every)))));
        }
        Ok(taps)
    }

    /// After the run: an error when the video could not be written completely.
    pub fn check(&self, report: &RunReport) -> anyhow::Result<()> {
        let Some(path) = &self.save_video else { return Ok(()) };
        let video = report.taps.get("video");
        let count = |k: &str| video.and_then(|c| c.get(k)).copied().unwrap_or(0);
        if count("errors") > 0 {
            bail!("--save-video {}: writing failed ({} frames written, {} not); see the log above", path.display(), count("written"), count("errors"));
        }
        eprintln!(
            "video: {} frames written to {} ({} repeated to fill dropped frames, {} not written: the writer fell behind)",
            count("written"),
            path.display(),
            count("filled"),
            count("dropped")
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorthands_are_set_keys() {
        let s = Shorthands {
            model: Some("models/x".parse().unwrap()),
            conf: Some("0.5".parse().unwrap()),
            iou: Some(OrEmpty(Some(0.6))),
            imgsz: Some(OrEmpty(Some(320))),
            classes: vec!["person".into(), "2".into()],
            device: Some(DeviceKind::Cpu),
            tracker: Some(TrackerKind::Sort),
        };
        let sets = s.sets(&[]).unwrap();
        assert_eq!(
            sets,
            [
                "detect.model=\"models/x\"",
                "detect.conf=0.5",
                "detect.iou=0.6",
                "detect.imgsz=320",
                "detect.classes=[\"person\", 2]",
                "detect.device=\"cpu\"",
                "track.tracker=\"sort\"",
            ]
        );
        let cfg: crate::config::Config = perch_pipeline::config::load(None, &sets).unwrap();
        assert_eq!(cfg.detect.conf, 0.5);
        assert_eq!(cfg.detect.imgsz, 320);
        assert_eq!(cfg.track.tracker, TrackerKind::Sort);
        let e = s.sets(&["detect.conf=0.3".into()]).unwrap_err().to_string();
        assert!(e.contains("--conf") && e.contains("detect.conf"), "{e}");
        // Empty values (a launch file's unset arguments) are not given.
        let empty = Shorthands {
            model: Some("".parse().unwrap()),
            conf: Some("".parse().unwrap()),
            classes: vec!["".into()],
            ..Default::default()
        };
        assert!(empty.sets(&["detect.conf=0.3".into()]).unwrap().is_empty());
        assert!("abc".parse::<OrEmpty<f64>>().is_err());
    }
}

//! `[detect]` in the pipeline TOML. Keys and defaults follow Ultralytics' predict arguments.

use std::path::PathBuf;

use std::time::Duration;

use anyhow::{bail, ensure};
use perch_pipeline::{Schedule, ScheduleConfig};
use serde::{Deserialize, Serialize};

use crate::postprocess::NmsParams;

/// Where the network runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    #[default]
    Cpu,
    /// The first CUDA GPU; needs a build with the `cuda` feature.
    Cuda,
}

impl std::str::FromStr for DeviceKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda),
            other => bail!("device '{other}': accepted values are \"cpu\" and \"cuda\""),
        }
    }
}

/// A class to keep, by id (`0`) or by name (`"person"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum ClassSel {
    Id(u32),
    Name(String),
}

/// By hand rather than `untagged`, whose error ("did not match any variant of untagged enum
/// ClassSel") names neither the value nor what is accepted.
impl<'de> Deserialize<'de> for ClassSel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl serde::de::Visitor<'_> for Visit {
            type Value = ClassSel;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a class id (0, 1, ...) or a class name (\"person\")")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ClassSel, E> {
                u32::try_from(v).map(ClassSel::Id).map_err(|_| E::custom(format!("class id {v} is too large")))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ClassSel, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "class id {v}: ids are 0 or more (0 is the model's first class); or give a class name"
                    ))),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ClassSel, E> {
                Ok(ClassSel::Name(v.to_string()))
            }
        }
        d.deserialize_any(Visit)
    }
}

impl std::str::FromStr for ClassSel {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim().parse::<u32>() {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name(s.trim().to_string()),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Directory of an imported model (`model.safetensors` + `model.json`).
    pub model: PathBuf,
    /// Minimum class score of a detection (strictly greater passes).
    pub conf: f32,
    /// IoU above which NMS suppresses the lower-scored box of the same class.
    pub iou: f32,
    /// Most detections per frame.
    pub max_det: usize,
    /// Keep only these classes (ids or names); empty or absent: all.
    pub classes: Option<Vec<ClassSel>>,
    /// Side of the square model input; a multiple of 32. It also sizes the preprocessing (there is
    /// no separate preprocess key).
    pub imgsz: u32,
    pub device: DeviceKind,
    /// CPU threads for the network; 0: one per available core.
    pub threads: usize,
    /// Which frames the detector runs on: `every_frame`, `interval`, `async` or `auto`.
    pub schedule: Schedule,
    /// `schedule = "interval"`: frames skipped between two detections (DeepStream's `interval`).
    pub interval: Option<u32>,
    /// Evaluation of a schedule on a replay (`source.pacing = "max"`): the detector counts as
    /// taking exactly this long on the source clock, so the output does not depend on the machine.
    pub virtual_latency_ms: Option<f64>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            model: PathBuf::from("models/yolov12n"),
            conf: 0.25,
            iou: 0.7,
            max_det: 300,
            classes: None,
            imgsz: 640,
            device: DeviceKind::Cpu,
            threads: 0,
            schedule: Schedule::EveryFrame,
            interval: None,
            virtual_latency_ms: None,
        }
    }
}

impl DetectConfig {
    /// Check every key on its own (what does not need the model).
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.conf.is_finite() && (0.0..=1.0).contains(&self.conf),
            "detect.conf = {}: must be between 0 and 1",
            self.conf
        );
        ensure!(self.iou.is_finite() && (0.0..=1.0).contains(&self.iou), "detect.iou = {}: must be between 0 and 1", self.iou);
        ensure!(self.max_det >= 1, "detect.max_det = 0: must be at least 1");
        perch_pipeline::letterbox::validate_imgsz(self.imgsz, "detect.imgsz")?;
        ensure!(self.threads <= 1024, "detect.threads = {}: must be 0 (all cores) or a thread count", self.threads);
        match (self.schedule, self.interval) {
            (Schedule::Interval, None) => bail!(
                "detect.schedule = \"interval\" needs detect.interval: the frames skipped between two detections \
                 (DeepStream's `interval`; 2 = detect every third frame)"
            ),
            (Schedule::Interval, Some(n)) => ensure!(
                n <= 10_000,
                "detect.interval = {n}: must be at most 10000 frames skipped between detections"
            ),
            (other, Some(n)) => bail!(
                "detect.interval = {n} applies only to detect.schedule = \"interval\" (detect.schedule is \"{}\")",
                other.as_str()
            ),
            (_, None) => {}
        }
        if let Some(ms) = self.virtual_latency_ms {
            ensure!(
                ms.is_finite() && ms > 0.0 && ms <= 60_000.0,
                "detect.virtual_latency_ms = {ms}: must be a latency in milliseconds, more than 0 and at most 60000"
            );
        }
        if self.device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
            bail!("detect.device = \"cuda\": this perch was built without CUDA support (rebuild with `--features cuda`), or use \"cpu\"");
        }
        Ok(())
    }

    /// The schedule the stage runs the detector under.
    pub fn schedule_config(&self) -> ScheduleConfig {
        ScheduleConfig { schedule: self.schedule, interval: self.interval.unwrap_or(0), ..ScheduleConfig::default() }
    }

    /// `virtual_latency_ms` as a duration.
    pub fn virtual_latency(&self) -> Option<Duration> {
        self.virtual_latency_ms.map(|ms| Duration::from_secs_f64(ms / 1000.0))
    }

    /// The NMS parameters, with class names resolved against the model's.
    pub fn nms_params(&self, class_names: &[String]) -> anyhow::Result<NmsParams> {
        let classes = match &self.classes {
            None => None,
            Some(v) if v.is_empty() => None,
            Some(v) => Some(resolve_classes(v, class_names)?),
        };
        Ok(NmsParams { conf: self.conf, iou: self.iou, max_det: self.max_det, classes })
    }

    /// Threads to use: the configured count capped at the available cores (more only contend for
    /// them; a warning says so), or every available core for 0.
    pub fn effective_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (threads, warning) = cap_threads(self.threads, cores);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        threads
    }
}

/// `detect.threads` against `cores`: the count to use, and a warning when it was capped.
pub fn cap_threads(requested: usize, cores: usize) -> (usize, Option<String>) {
    match requested {
        0 => (cores, None),
        n if n > cores => (
            cores,
            Some(format!("detect.threads = {n} is more than the {cores} available cores: using {cores}")),
        ),
        n => (n, None),
    }
}

fn resolve_classes(sel: &[ClassSel], names: &[String]) -> anyhow::Result<Vec<u32>> {
    sel.iter()
        .map(|s| match s {
            ClassSel::Id(id) if (*id as usize) < names.len() => Ok(*id),
            ClassSel::Id(id) => bail!("detect.classes: class id {id} is out of range (the model has {} classes, 0..{})", names.len(), names.len() - 1),
            ClassSel::Name(n) => match names.iter().position(|x| x == n) {
                Some(i) => Ok(i as u32),
                None => {
                    let shown: Vec<_> = names.iter().take(12).map(|s| format!("{s:?}")).collect();
                    let more = if names.len() > 12 { format!(", ... ({} in all)", names.len()) } else { String::new() };
                    bail!("detect.classes: the model has no class named {n:?}; its classes are {}{more}", shown.join(", "))
                }
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_ultralytics_predict_defaults() {
        let c = DetectConfig::default();
        assert_eq!((c.conf, c.iou, c.max_det, c.imgsz), (0.25, 0.7, 300, 640));
        c.validate().unwrap();
    }

    #[test]
    fn parses_toml_like_json_with_ids_and_names() {
        let c: DetectConfig = serde_json::from_str(r#"{"conf": 0.4, "classes": [0, "car"], "imgsz": 320}"#).unwrap();
        let names: Vec<String> = ["person", "bicycle", "car"].iter().map(|s| s.to_string()).collect();
        assert_eq!(c.nms_params(&names).unwrap().classes, Some(vec![0, 2]));
        let bad: DetectConfig = serde_json::from_str(r#"{"classes": ["dragon"]}"#).unwrap();
        let err = bad.nms_params(&names).unwrap_err().to_string();
        assert!(err.contains("no class named \"dragon\"") && err.contains("\"person\""), "{err}");
        let bad: DetectConfig = serde_json::from_str(r#"{"classes": [7]}"#).unwrap();
        assert!(bad.nms_params(&names).unwrap_err().to_string().contains("out of range"));
    }

    #[test]
    fn threads_are_capped_at_the_cores_with_a_warning() {
        assert_eq!(cap_threads(0, 4), (4, None));
        assert_eq!(cap_threads(2, 4), (2, None));
        let (n, w) = cap_threads(1000, 4);
        assert_eq!(n, 4);
        assert!(w.unwrap().contains("detect.threads = 1000"));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(DetectConfig { threads: 1000, ..Default::default() }.effective_threads(), cores);
    }

    #[test]
    fn a_negative_class_id_says_what_is_accepted() {
        let e = serde_json::from_str::<DetectConfig>(r#"{"classes": [-1]}"#).unwrap_err().to_string();
        assert!(e.contains("class id -1") && e.contains("0 or more") && !e.contains("untagged"), "{e}");
        let e = serde_json::from_str::<DetectConfig>(r#"{"classes": [1.5]}"#).unwrap_err().to_string();
        assert!(e.contains("class id") && e.contains("class name"), "{e}");
        let c: DetectConfig = serde_json::from_str(r#"{"classes": [0, "car"]}"#).unwrap();
        assert_eq!(c.classes, Some(vec![ClassSel::Id(0), ClassSel::Name("car".into())]));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        assert!(serde_json::from_str::<DetectConfig>(r#"{"confidence": 0.5}"#).unwrap_err().to_string().contains("confidence"));
        let e = DetectConfig { imgsz: 300, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.imgsz = 300"), "{e}");
        let e = DetectConfig { conf: 1.5, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.conf"), "{e}");
        assert!(serde_json::from_str::<DetectConfig>(r#"{"device": "tpu"}"#).is_err());
    }

    #[test]
    fn schedule_keys_are_checked_together() {
        let c: DetectConfig = serde_json::from_str(r#"{"schedule": "interval", "interval": 2}"#).unwrap();
        c.validate().unwrap();
        assert_eq!(c.schedule_config().interval, 2);
        let e = serde_json::from_str::<DetectConfig>(r#"{"schedule": "sometimes"}"#).unwrap_err().to_string();
        assert!(e.contains("every_frame") && e.contains("interval") && e.contains("async") && e.contains("auto"), "{e}");
        let e = DetectConfig { schedule: Schedule::Interval, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.interval"), "{e}");
        let e = DetectConfig { schedule: Schedule::Async, interval: Some(3), ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.interval = 3") && e.contains("async"), "{e}");
        let e = DetectConfig { virtual_latency_ms: Some(-5.0), ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.virtual_latency_ms"), "{e}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = DetectConfig { device: DeviceKind::Cuda, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("without CUDA support"), "{e}");
    }
}

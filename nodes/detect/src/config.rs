//! `[detect]` in the pipeline TOML. Keys and defaults follow Ultralytics' predict arguments.

use std::path::PathBuf;

use anyhow::{bail, ensure};
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
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassSel {
    Id(u32),
    Name(String),
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
        if self.device == DeviceKind::Cuda && !cfg!(feature = "cuda") {
            bail!("detect.device = \"cuda\": this perch was built without CUDA support (rebuild with `--features cuda`), or use \"cpu\"");
        }
        Ok(())
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

    /// Threads to use: the configured count, or every available core.
    pub fn effective_threads(&self) -> usize {
        if self.threads > 0 {
            self.threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
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
    fn unknown_keys_and_bad_values_are_named() {
        assert!(serde_json::from_str::<DetectConfig>(r#"{"confidence": 0.5}"#).unwrap_err().to_string().contains("confidence"));
        let e = DetectConfig { imgsz: 300, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.imgsz = 300"), "{e}");
        let e = DetectConfig { conf: 1.5, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("detect.conf"), "{e}");
        assert!(serde_json::from_str::<DetectConfig>(r#"{"device": "tpu"}"#).is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let e = DetectConfig { device: DeviceKind::Cuda, ..Default::default() }.validate().unwrap_err().to_string();
        assert!(e.contains("without CUDA support"), "{e}");
    }
}

//! perch's detect stage: native YOLO (YOLOv8, YOLOv12) in Candle on weights imported
//! from Ultralytics ONNX exports, with decode + class-aware NMS on plain slices.
//!
//! * [`DetectStage`] / [`DetectConfig`]: the pipeline stage (`frame.tensor` → `frame.detections`).
//! * [`Detector`]: the same engine outside the pipeline (CLI, benchmarks, tests).
//! * [`import::import_onnx`]: `perch model import` (ONNX → `model.safetensors` + `model.json`).
//! * [`quant::quantize_model`]: `perch model quantize` (post-training int8 with calibration).
//! * [`eval`]: COCO-style mAP and `perch eval quant` (the precision variants' trade-off table).
//! * [`predict`] and [`bench`]: what `perch detect` and `perch bench detect` run (the binary owns
//!   their command lines).

pub mod bench;
pub mod config;
pub mod detector;
pub mod eval;
pub mod import;
pub mod meta;
pub mod model;
pub mod onnx;
pub mod postprocess;
pub mod quant;
pub mod predict;
mod stage;

pub use config::{ClassSel, DetectConfig, DeviceKind};
pub use detector::{Detector, Timing};
pub use meta::ModelMeta;
pub use postprocess::{NmsParams, Postprocessor};
pub use stage::DetectStage;

/// The class names of an imported model (index = class id), without loading its weights.
pub fn class_names(model_dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    Ok(ModelMeta::load(model_dir)?.class_names)
}

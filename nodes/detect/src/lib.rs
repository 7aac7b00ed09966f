#![doc = include_str!("../README.md")]

pub mod bench;
pub mod config;
pub mod detector;
pub mod eval;
pub mod import;
pub mod meta;
pub mod model;
pub mod onnx;
pub mod postprocess;
pub mod predict;
pub mod quant;
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

//! `model.json`: what the importer learned about a model, read back when the model is loaded.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::model::{Arch, Scale};

/// The file names of an imported model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const META_FILE: &str = "model.json";

/// Contents of `model.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelMeta {
    /// Version of this file's layout.
    pub format: u32,
    pub architecture: Arch,
    pub scale: Scale,
    /// Always "detect" for now (the importer refuses other tasks).
    pub task: String,
    /// Input size the model was exported/trained at, [height, width].
    pub imgsz: [u32; 2],
    /// True when the ONNX input has symbolic height/width (the network itself accepts any multiple of `stride`).
    pub dynamic_input: bool,
    pub stride: u32,
    pub num_classes: usize,
    pub class_names: Vec<String>,
    /// Number of parameters (f32 values) stored in `model.safetensors`.
    pub parameters: u64,
    /// Names of tensors the importer added because the export had folded them away (exact constants).
    #[serde(default)]
    pub synthesized: Vec<String>,
    pub source: SourceInfo,
    /// Ultralytics metadata as found in the file.
    pub ultralytics_version: Option<String>,
    pub description: Option<String>,
    pub author: Option<String>,
    pub date: Option<String>,
    /// The license stated in the model's metadata (the weights' license, not perch's).
    pub license: Option<String>,
    /// Numeric precision of the weights: `f32` (what `perch model import` writes; absent in
    /// format-1 files) or `int8` (`perch model quantize`, format 2).
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// How an int8 model was made: recipe, calibration frames, f32 source (int8 only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<crate::quant::QuantInfo>,
}

/// Numeric precision of a model's weights.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    F32,
    /// s8 weights and u8 activations in the int8 convs; the rest f32 (see `quantization`).
    Int8,
}

impl Precision {
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }
}

/// Where the weights came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    /// File name of the imported export (no directory).
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub producer: String,
    pub ir_version: i64,
    pub opset: i64,
}

impl ModelMeta {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (import a model with `perch model import <export.onnx> -o {}`)", path.display(), dir.display())
        })?;
        let de = &mut serde_json::Deserializer::from_str(&text);
        let meta: ModelMeta = serde_path_to_error::deserialize(de).map_err(|e| {
            let at = e.path().to_string();
            anyhow::anyhow!("{}: not a perch model.json: {}{}", path.display(), if at == "." { String::new() } else { format!("{at}: ") }, e.inner())
        })?;
        match (meta.format, meta.precision, meta.quantization.is_some()) {
            (1, Precision::F32, false) | (2, Precision::Int8, true) => {}
            (1 | 2, p, q) => anyhow::bail!(
                "{}: format {} with precision {p:?} {} quantization record: format 1 is f32 (no record), format 2 int8 (with one)",
                path.display(),
                meta.format,
                if q { "and a" } else { "and no" }
            ),
            (f, _, _) => anyhow::bail!("{}: format {f} is not supported (this build reads formats 1 (f32) and 2 (int8))", path.display()),
        }
        if meta.class_names.len() != meta.num_classes {
            anyhow::bail!(
                "{}: {} class names for num_classes = {}",
                path.display(),
                meta.class_names.len(),
                meta.num_classes
            );
        }
        Ok(meta)
    }

    pub fn weights_path(dir: &Path) -> PathBuf {
        dir.join(WEIGHTS_FILE)
    }
}

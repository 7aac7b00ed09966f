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
        Self::parse(&text, &path)
    }

    /// Parse and check the text of a `model.json`; `path` names it in messages.
    pub fn parse(text: &str, path: &Path) -> anyhow::Result<Self> {
        let meta: ModelMeta =
            serde_json::from_str(text).with_context(|| format!("{}: not a perch model.json", path.display()))?;
        if meta.format != 1 {
            anyhow::bail!("{}: format {} is not supported (this build reads format 1)", path.display(), meta.format);
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

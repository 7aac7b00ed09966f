//! The variants `perch eval quant` compares: the model as given (f32, the reference), the same
//! weights in other precisions, int8 models built from it, and prebuilt model directories.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context;
use candle_core::DType;
use sha2::{Digest, Sha256};

use crate::meta::ModelMeta;
use crate::quant::{CalibMethod, QuantRecipe};

/// How a perch variant is obtained.
#[derive(Clone, Debug, PartialEq)]
pub enum VariantSpec {
    /// The model directory as given, f32 on the CPU's fused kernels (the reference).
    F32,
    /// The same weights run in f16 by Candle's reference ops (the CUDA path's numerics, on the CPU).
    F16,
    /// Built by post-training int8 quantization of the model on the calibration frames.
    Int8(Int8Recipe),
    /// A prebuilt model directory (e.g. made by `perch model quantize`): `NAME=DIR`.
    Dir { name: String, dir: PathBuf },
}

/// The int8 recipes of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Int8Recipe {
    /// Activation ranges from the calibration minimum/maximum.
    Minmax,
    /// Activation ranges from a high percentile of the calibration values.
    Percentile,
    /// Percentile, with the layers that lose most kept in f32.
    Mixed,
}

impl VariantSpec {
    pub fn name(&self) -> String {
        match self {
            VariantSpec::F32 => "f32".into(),
            VariantSpec::F16 => "f16".into(),
            VariantSpec::Int8(Int8Recipe::Minmax) => "int8-minmax".into(),
            VariantSpec::Int8(Int8Recipe::Percentile) => "int8-percentile".into(),
            VariantSpec::Int8(Int8Recipe::Mixed) => "int8-mixed".into(),
            VariantSpec::Dir { name, .. } => name.clone(),
        }
    }

    /// Whether building it needs calibration frames.
    pub fn needs_calibration(&self) -> bool {
        matches!(self, VariantSpec::Int8(_))
    }

    /// The precision to force when loading (None: the model's own).
    pub fn dtype(&self) -> Option<DType> {
        match self {
            VariantSpec::F16 => Some(DType::F16),
            _ => None,
        }
    }
}

impl FromStr for VariantSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.trim() {
            "f32" => VariantSpec::F32,
            "f16" => VariantSpec::F16,
            "int8-minmax" => VariantSpec::Int8(Int8Recipe::Minmax),
            "int8-percentile" => VariantSpec::Int8(Int8Recipe::Percentile),
            "int8-mixed" => VariantSpec::Int8(Int8Recipe::Mixed),
            other => match other.split_once('=') {
                Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
                    VariantSpec::Dir { name: name.to_string(), dir: PathBuf::from(dir) }
                }
                _ => {
                    return Err(format!(
                        "unknown variant '{other}': use f32, f16, int8-minmax, int8-percentile, int8-mixed, or NAME=MODEL_DIR"
                    ))
                }
            },
        })
    }
}

/// Bytes of the regular files directly in a model directory (what a user copies to the device).
pub fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let m = e?.metadata()?;
        if m.is_file() {
            total += m.len();
        }
    }
    Ok(total)
}

/// The recipe of an int8 variant at input size `imgsz` (calibration runs at the size the model runs at).
pub fn int8_recipe(recipe: Int8Recipe, imgsz: u32, threads: usize) -> QuantRecipe {
    let base = QuantRecipe { imgsz, threads, force: true, ..QuantRecipe::default() };
    match recipe {
        Int8Recipe::Minmax => QuantRecipe { method: CalibMethod::Minmax, ..base },
        Int8Recipe::Percentile => QuantRecipe { method: CalibMethod::Percentile(99.99), ..base },
        // The layers int8.md and ultralytics' PTQ reports call sensitive: the stem conv (it sees
        // raw pixels) and the six last head convs (box and class logits).
        Int8Recipe::Mixed => QuantRecipe {
            method: CalibMethod::Percentile(99.99),
            keep_f32: MIXED_KEEP_F32.iter().map(|s| s.to_string()).collect(),
            ..base
        },
    }
}

/// Convs `int8-mixed` keeps in f32.
pub const MIXED_KEEP_F32: [&str; 7] = [
    "model.0",
    "model.21.cv2.0.2",
    "model.21.cv2.1.2",
    "model.21.cv2.2.2",
    "model.21.cv3.0.2",
    "model.21.cv3.1.2",
    "model.21.cv3.2.2",
];

/// Builds an int8 variant of `model` into `out` from the calibration frames (`perch model
/// quantize`'s library function), or reuses `out` when it holds the same recipe made from the same
/// model and frames. Returns the directory and a note (recipe, kept layers, output SQNR).
pub fn build_int8(
    recipe: &QuantRecipe,
    model: &Path,
    out: &Path,
    calib: &[PathBuf],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> anyhow::Result<(PathBuf, String)> {
    let frames_hash = crate::quant::frames::hash(calib)?;
    let weights_sha = crate::import::hex(&Sha256::digest(std::fs::read(ModelMeta::weights_path(model)).with_context(|| format!("reading {}", ModelMeta::weights_path(model).display()))?));
    if let Ok(meta) = ModelMeta::load(out) {
        if let Some(q) = &meta.quantization {
            // `threads` and `force` say how to run, not what to make: not stored.
            let same_recipe = QuantRecipe { threads: q.recipe.threads, force: q.recipe.force, ..recipe.clone() } == q.recipe;
            if same_recipe && q.calibration.sha256 == frames_hash && q.source_model.weights_sha256 == weights_sha {
                return Ok((out.to_path_buf(), format!("{} (cached: {} int8 convs, f32: {})", recipe.method, q.int8_convs, list(&q.f32_convs))));
            }
        }
    }
    let r = crate::quant::quantize_model(model, out, recipe, calib, progress).with_context(|| format!("quantizing {} ({})", model.display(), recipe.method))?;
    Ok((
        out.to_path_buf(),
        format!(
            "{}: {} int8 convs, f32: {}; output SQNR on the calibration frames: scores {:.1} dB, boxes {:.1} dB",
            recipe.method,
            r.info.int8_convs,
            list(&r.info.f32_convs),
            r.output_sqnr.scores_db,
            r.output_sqnr.boxes_db
        ),
    ))
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_variant_names() {
        for n in ["f32", "f16", "int8-minmax", "int8-percentile", "int8-mixed"] {
            assert_eq!(n.parse::<VariantSpec>().unwrap().name(), n);
        }
        assert_eq!(
            "q=models/x".parse::<VariantSpec>().unwrap(),
            VariantSpec::Dir { name: "q".into(), dir: PathBuf::from("models/x") }
        );
        let e = "int4".parse::<VariantSpec>().unwrap_err();
        assert!(e.contains("unknown variant 'int4'"), "{e}");
        assert!("=x".parse::<VariantSpec>().is_err());
    }
}

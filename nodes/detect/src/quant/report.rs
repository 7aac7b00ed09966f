//! What quantization produced: the int8 `model.safetensors` bytes and the per-layer report.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Serialize;

use super::format::{self, Int8ConvTensors, OwnedTensor};
use super::plan::Plan;
use super::sqnr::{Acc, OutputSqnr};
use super::QuantInfo;
use crate::meta::ModelMeta;
use crate::model::graph::ConvNode;
use crate::model::YoloModel;

/// One conv layer of the report.
#[derive(Debug, Clone, Serialize)]
pub struct LayerReport {
    pub name: String,
    /// "3x3 s2 16->32", "dw 7x7 64 +res", "1x1 256->128 cat3".
    pub kind: String,
    pub int8: bool,
    /// Why it stayed f32: "requested" (`keep_f32`) or "auto" (`auto_keep`).
    pub kept: Option<String>,
    /// Input quantization [scale, zero point] (int8 layers).
    pub input: Option<(f32, u8)>,
    /// Output requantization [scale, zero point]; None: f32 output.
    pub output: Option<(f32, u8)>,
    /// The clipped and the observed input range.
    pub clip: Option<(f32, f32)>,
    pub observed: Option<(f32, f32)>,
    /// Network output SQNR with only this layer in int8 (sensitivity; when measured).
    pub alone: Option<OutputSqnr>,
    /// SQNR of this layer's output in the quantized model against the f32 model's (accumulated
    /// error of everything before it).
    pub output_sqnr_db: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QuantReport {
    pub out_dir: PathBuf,
    pub info: QuantInfo,
    pub layers: Vec<LayerReport>,
    /// The quantized network's output against f32's on the verification frames.
    pub output_sqnr: OutputSqnr,
    pub f32_bytes: u64,
    pub int8_bytes: u64,
    pub seconds: f64,
}

impl QuantReport {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        out_dir: &Path,
        graph: &[ConvNode],
        plan: &Plan,
        requested: &BTreeSet<String>,
        auto: &BTreeSet<String>,
        alone: &HashMap<String, OutputSqnr>,
        layer_acc: &HashMap<String, Acc>,
        output_sqnr: OutputSqnr,
        info: &QuantInfo,
    ) -> Self {
        let layers = graph
            .iter()
            .map(|n| {
                let p = plan.convs.get(&n.name);
                LayerReport {
                    name: n.name.clone(),
                    kind: n.describe(),
                    int8: p.is_some(),
                    kept: if requested.contains(&n.name) {
                        Some("requested".into())
                    } else if auto.contains(&n.name) {
                        Some("auto".into())
                    } else {
                        None
                    },
                    input: p.map(|p| (p.input.scale, p.input.zero_point)),
                    output: p.and_then(|p| p.output.map(|o| (o.scale, o.zero_point))),
                    clip: p.map(|p| p.clip),
                    observed: p.map(|p| p.observed),
                    alone: alone.get(&n.name).copied(),
                    output_sqnr_db: layer_acc.get(&n.name).map(|a| a.db()),
                }
            })
            .collect();
        Self { out_dir: out_dir.to_path_buf(), info: info.clone(), layers, output_sqnr, f32_bytes: 0, int8_bytes: 0, seconds: 0.0 }
    }

    pub(super) fn sized(mut self, f32_bytes: u64, int8_bytes: u64, seconds: f64) -> Self {
        (self.f32_bytes, self.int8_bytes, self.seconds) = (f32_bytes, int8_bytes, seconds);
        self
    }

    /// The per-layer table as text (what `perch model quantize` prints).
    pub fn table(&self) -> String {
        let mut s = format!(
            "{:<28} {:<22} {:>5} {:>10} {:>10} {:>9}\n",
            "layer", "kind", "prec", "alone dB", "layer dB", "input clip"
        );
        for l in &self.layers {
            let prec = if l.int8 { "int8" } else if l.kept.as_deref() == Some("auto") { "f32*" } else { "f32" };
            let alone = l.alone.map_or("-".into(), |a| format!("{:.1}", a.min_db()));
            let layer = l.output_sqnr_db.map_or("-".into(), |d| format!("{d:.1}"));
            let clip = l.clip.map_or("-".into(), |(a, b)| format!("[{a:.2}, {b:.2}]"));
            s += &format!("{:<28} {:<22} {:>5} {:>10} {:>10} {}\n", l.name, l.kind, prec, alone, layer, clip);
        }
        s
    }
}

/// The int8 `model.safetensors`: every tensor of the f32 source, with each int8 conv's weight
/// and bias replaced by its int8 tensors ([`format`]).
pub(super) fn serialize(src_bytes: &[u8], qmodel: &YoloModel, meta: &ModelMeta, info: &QuantInfo) -> Result<Vec<u8>> {
    let src = safetensors::SafeTensors::deserialize(src_bytes).context("reading the f32 source weights")?;
    let mut tensors: Vec<(String, OwnedTensor)> = Vec::new();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    for c in qmodel.convs() {
        let Some(q) = c.int8() else { continue };
        let t = Int8ConvTensors { w: q.w.clone(), w_scale: q.w_scale.clone(), bias: c.float_bias().to_vec(), input: q.input, output: q.output };
        tensors.extend(format::int8_conv_tensors(c.prefix(), &c.spec(), &t));
        replaced.insert(format!("{}.{}", c.prefix(), format::WEIGHT));
        replaced.insert(format!("{}.{}", c.prefix(), format::BIAS));
    }
    for (name, view) in src.iter() {
        if !replaced.contains(name) {
            tensors.push((name.to_string(), OwnedTensor { dtype: view.dtype(), shape: view.shape().to_vec(), data: view.data().to_vec() }));
        }
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let info_map: HashMap<String, String> = [
        ("format".to_string(), "perch".to_string()),
        ("precision".to_string(), "int8".to_string()),
        ("source_sha256".to_string(), meta.source.sha256.clone()),
        ("f32_weights_sha256".to_string(), info.source_model.weights_sha256.clone()),
    ]
    .into();
    safetensors::serialize(tensors.iter().map(|(k, t)| (k.as_str(), t)), Some(info_map)).context("serialising the int8 safetensors")
}

//! Post-training int8 quantization of an imported model (`perch model quantize`).
//!
//! 1. **Calibrate**: run the f32 model on real frames (decoded and letterboxed as the pipeline
//!    does) and collect every conv's input statistics ([`calibrate`]).
//! 2. **Plan**: group the tensors each conv reads together (one quantization per group, so a
//!    concatenation stays a list of u8 planes), pick each group's range with the recipe's
//!    method, keep the requested layers in f32 ([`plan`]).
//! 3. **Sensitivity** (`auto_keep`): quantize each layer alone and measure the network output's
//!    SQNR against f32; keep the N worst in f32 ([`sqnr`]).
//! 4. **Write** a normal model directory: s8 weights, per-channel scales, f32 biases and the
//!    activation quantization in `model.safetensors` ([`format`]), `model.json` with
//!    `precision: "int8"` and how it was made ([`QuantInfo`]), `quant_report.json` with the
//!    per-layer table ([`QuantReport`]). The file is read back and must reproduce the in-memory
//!    model's output bit for bit before anything is installed.

pub mod calibrate;
pub mod format;
pub mod frames;
pub mod plan;
pub mod report;
pub mod sqnr;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{Device, Tensor};
use perch_pipeline::{ImageBuf, TensorBuf};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use calibrate::CalibMethod;
use calibrate::StatsObserver;
pub use report::{LayerReport, QuantReport};

use crate::meta::{ModelMeta, Precision, META_FILE, WEIGHTS_FILE};
use crate::model::graph::ConvNode;
use crate::model::YoloModel;
use sqnr::{CompareOutputs, OutputAcc, RecordOutputs};

/// File with the per-layer report, written next to the model.
pub const REPORT_FILE: &str = "quant_report.json";

/// What to make: stored in the quantized model's `model.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantRecipe {
    pub method: CalibMethod,
    /// Conv layers kept in f32, by Ultralytics module name (`model.21.cv2.0.2`); a trailing `*`
    /// matches a prefix (`model.21.cv3.*`).
    pub keep_f32: Vec<String>,
    /// Also keep in f32 the N layers whose quantization alone lowers the output SQNR most.
    pub auto_keep: usize,
    /// Input size calibration runs at (the size the model will run at).
    pub imgsz: u32,
    /// Calibration frames (the first N) the per-layer sensitivity runs on.
    pub sensitivity_frames: usize,
    /// Calibration frames (the first N) the final f32-vs-int8 comparison runs on.
    pub verify_frames: usize,
    /// Measure per-layer sensitivity for the report even when `auto_keep` is 0.
    pub sensitivity: bool,
    /// CPU threads (0: all cores). How to run, not what to make: not recorded.
    #[serde(skip)]
    pub threads: usize,
    /// Replace a model already in the output directory. Not recorded.
    #[serde(skip)]
    pub force: bool,
}

impl Default for QuantRecipe {
    fn default() -> Self {
        Self {
            method: CalibMethod::Percentile(99.99),
            keep_f32: Vec::new(),
            auto_keep: 0,
            imgsz: 640,
            sensitivity_frames: 4,
            verify_frames: 4,
            sensitivity: false,
            threads: 0,
            force: false,
        }
    }
}

/// The calibration frames a model was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibInfo {
    /// Their common folder.
    pub folder: String,
    pub frames: usize,
    /// sha256 over every frame's file name and bytes, in order ([`frames::hash`]).
    pub sha256: String,
    pub first: String,
    pub last: String,
}

/// The f32 model a quantized model was made from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceModel {
    pub dir: String,
    /// sha256 of its `model.safetensors`.
    pub weights_sha256: String,
}

/// `model.json`'s record of how an int8 model was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuantInfo {
    pub recipe: QuantRecipe,
    /// Weights are in [-weight_range, weight_range] (`perch_int8::weight_range()` when made).
    pub weight_range: i8,
    pub calibration: CalibInfo,
    pub source_model: SourceModel,
    pub int8_convs: usize,
    /// Convs kept in f32 (requested or by sensitivity).
    pub f32_convs: Vec<String>,
    pub perch_version: String,
}

/// A `--keep-f32` entry that names no layer, with the closest names.
fn unknown_layer(name: &str, graph: &[ConvNode]) -> anyhow::Error {
    let dist = |a: &str, b: &str| {
        // Levenshtein distance, two rows.
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1; b.len() + 1];
            for (j, cb) in b.iter().enumerate() {
                cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
            }
            prev = cur;
        }
        prev[b.len()]
    };
    let mut close: Vec<(usize, &str)> = graph.iter().map(|n| (dist(name, &n.name), n.name.as_str())).collect();
    close.sort();
    let close: Vec<&str> = close.iter().take(5).map(|c| c.1).collect();
    anyhow::anyhow!(
        "--keep-f32: no conv layer is named '{name}'; closest: {} (layer names are Ultralytics module names; `perch model quantize --list-layers` prints them all)",
        close.join(", ")
    )
}

/// The convs `keep_f32` names (exact names, or prefixes ending in `*`).
pub fn resolve_keep(keep: &[String], graph: &[ConvNode]) -> Result<BTreeSet<String>> {
    let mut out = BTreeSet::new();
    for k in keep {
        let k = k.trim().trim_end_matches(".conv");
        let hits: Vec<&ConvNode> = match k.strip_suffix('*') {
            Some(prefix) => graph.iter().filter(|n| n.name.starts_with(prefix)).collect(),
            None => graph.iter().filter(|n| n.name == k).collect(),
        };
        if hits.is_empty() {
            return Err(unknown_layer(k, graph));
        }
        out.extend(hits.into_iter().map(|n| n.name.clone()));
    }
    Ok(out)
}

/// The conv layers of the model in `dir` (names for `keep_f32`), in load order.
pub fn list_layers(dir: &Path) -> Result<Vec<ConvNode>> {
    let meta = ModelMeta::load(dir)?;
    let w = ModelMeta::weights_path(dir);
    let model = match meta.precision {
        Precision::F32 => YoloModel::load(&w, meta.architecture, meta.scale, meta.num_classes, &Device::Cpu)?,
        Precision::Int8 => YoloModel::load_int8(&w, meta.architecture, meta.scale, meta.num_classes)?,
    };
    Ok(model.graph().to_vec())
}

fn sha256_hex(bytes: &[u8]) -> String {
    crate::import::hex(&Sha256::digest(bytes))
}

fn input_tensor(t: &TensorBuf) -> Result<Tensor> {
    let [c, h, w] = t.shape;
    Ok(Tensor::from_slice(&t.data, (1, c, h, w), &Device::Cpu)?)
}

/// Quantizes the f32 model in `src_dir` into `out_dir` (see the module doc). `progress(phase,
/// done, total)` is called as the phases (`calibrate`, `sensitivity`, `verify`) advance.
pub fn quantize_model(
    src_dir: &Path,
    out_dir: &Path,
    recipe: &QuantRecipe,
    calib_frames: &[PathBuf],
    progress: &(dyn Fn(&str, usize, usize) + Sync),
) -> Result<QuantReport> {
    let t_start = Instant::now();
    let meta = ModelMeta::load(src_dir)?;
    if meta.precision != Precision::F32 {
        let from = meta.quantization.as_ref().map(|q| q.source_model.dir.clone()).unwrap_or_default();
        bail!("{} is already quantized (precision {:?}): quantize its f32 source ({from}) instead", src_dir.display(), meta.precision);
    }
    ensure!(!calib_frames.is_empty(), "no calibration frames: give a folder of .jpg/.png frames from the camera the model will see");
    ensure!(recipe.imgsz >= 32 && recipe.imgsz % 32 == 0, "imgsz {} is not a positive multiple of 32", recipe.imgsz);
    if let CalibMethod::Percentile(p) = recipe.method {
        ensure!((50.0..=100.0).contains(&p), "percentile {p} is outside 50..=100 (99.99 is typical)");
    }
    if out_dir.canonicalize().ok().is_some_and(|o| src_dir.canonicalize().ok() == Some(o)) {
        bail!("the output directory {} is the source model: pick another (-o models/<name>-int8)", out_dir.display());
    }
    if out_dir.join(META_FILE).exists() && !recipe.force {
        bail!("{} already holds a model (pass --force to replace it)", out_dir.display());
    }
    let weights_path = ModelMeta::weights_path(src_dir);
    let src_bytes = std::fs::read(&weights_path).with_context(|| format!("reading {}", weights_path.display()))?;
    let weight_range = perch_int8::weight_range();
    let nc = meta.num_classes;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(if recipe.threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { recipe.threads })
        .build()
        .context("creating the quantizer's thread pool")?;
    pool.install(|| -> Result<QuantReport> {
        let model = YoloModel::load(&weights_path, meta.architecture, meta.scale, nc, &Device::Cpu)?;
        let graph = model.graph().to_vec();
        let requested = resolve_keep(&recipe.keep_f32, &graph)?;

        // 1. Calibration: statistics of every conv's input, and the f32 outputs of the frames
        // the later phases compare on.
        let (mut image, mut tensor) = (ImageBuf::default(), TensorBuf::default());
        let stats_obs = StatsObserver::default();
        let n_ref = recipe.sensitivity_frames.max(recipe.verify_frames).min(calib_frames.len()).max(1);
        let mut inputs: Vec<Tensor> = Vec::new();
        let mut ref_out: Vec<Vec<f32>> = Vec::new();
        for (i, f) in calib_frames.iter().enumerate() {
            frames::load_input(f, recipe.imgsz, &mut image, &mut tensor)?;
            let x = input_tensor(&tensor)?;
            let y = model.forward_observed(&x, &stats_obs).with_context(|| format!("calibration frame {}", f.display()))?;
            if i < n_ref {
                ref_out.push(y.flatten_all()?.to_vec1()?);
                inputs.push(x);
            }
            progress("calibrate", i + 1, calib_frames.len());
        }
        let stats = stats_obs.into_stats();
        let all: BTreeSet<String> = graph.iter().map(|n| n.name.clone()).collect();

        // 2-3. Per-layer sensitivity: each layer alone in int8.
        let mut alone: HashMap<String, sqnr::OutputSqnr> = HashMap::new();
        if recipe.auto_keep > 0 || recipe.sensitivity {
            let cands: Vec<&ConvNode> = graph.iter().filter(|n| !requested.contains(&n.name)).collect();
            let sf = recipe.sensitivity_frames.clamp(1, inputs.len());
            for (i, n) in cands.iter().enumerate() {
                let p = plan::plan(&graph, &BTreeSet::from([n.name.clone()]), &stats, recipe.method)?;
                let m = plan::apply(&model, &p, weight_range)?;
                let mut acc = OutputAcc::default();
                for (x, r) in inputs.iter().zip(&ref_out).take(sf) {
                    let y: Vec<f32> = m.forward(x)?.flatten_all()?.to_vec1()?;
                    acc.add(r, &y, nc);
                }
                alone.insert(n.name.clone(), acc.sqnr());
                progress("sensitivity", i + 1, cands.len());
            }
        }
        let mut ranked: Vec<(&String, f64)> = alone.iter().map(|(k, v)| (k, v.min_db())).collect();
        ranked.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(b.0)));
        let auto: BTreeSet<String> = ranked.iter().take(recipe.auto_keep).map(|(k, _)| (*k).clone()).collect();
        let int8: BTreeSet<String> = all.iter().filter(|n| !requested.contains(*n) && !auto.contains(*n)).cloned().collect();
        ensure!(!int8.is_empty(), "every conv is kept in f32: nothing to quantize");

        // 4. The final model, compared layer by layer with f32 on the verification frames.
        let p = plan::plan(&graph, &int8, &stats, recipe.method)?;
        let qmodel = plan::apply(&model, &p, weight_range)?;
        let vf = recipe.verify_frames.clamp(1, inputs.len());
        let mut out_acc = OutputAcc::default();
        let mut layer_acc: HashMap<String, sqnr::Acc> = HashMap::new();
        let mut first_out: Option<Vec<f32>> = None;
        for (i, (x, r)) in inputs.iter().zip(&ref_out).take(vf).enumerate() {
            let rec = RecordOutputs::default();
            model.forward_observed(x, &rec)?;
            let reference = rec.outputs.into_inner().unwrap_or_else(|e| e.into_inner());
            let cmp = CompareOutputs::new(&reference);
            let y: Vec<f32> = qmodel.forward_observed(x, &cmp)?.flatten_all()?.to_vec1()?;
            out_acc.add(r, &y, nc);
            for (k, a) in cmp.acc.into_inner().unwrap_or_else(|e| e.into_inner()) {
                let e = layer_acc.entry(k).or_default();
                e.signal += a.signal;
                e.noise += a.noise;
            }
            first_out.get_or_insert(y);
            progress("verify", i + 1, vf);
        }

        // Serialise, read back, and check the file reproduces the in-memory model.
        let info = QuantInfo {
            recipe: recipe.clone(),
            weight_range,
            calibration: CalibInfo {
                folder: frames::folder_of(calib_frames),
                frames: calib_frames.len(),
                sha256: frames::hash(calib_frames)?,
                first: calib_frames[0].display().to_string(),
                last: calib_frames[calib_frames.len() - 1].display().to_string(),
            },
            source_model: SourceModel { dir: src_dir.display().to_string(), weights_sha256: sha256_hex(&src_bytes) },
            int8_convs: int8.len(),
            f32_convs: all.difference(&int8).cloned().collect(),
            perch_version: env!("CARGO_PKG_VERSION").to_string(),
        };
        let bytes = report::serialize(&src_bytes, &qmodel, &meta, &info)?;
        let reloaded = YoloModel::load_int8_bytes(&bytes, meta.architecture, meta.scale, nc)?;
        let again: Vec<f32> = reloaded.forward(&inputs[0])?.flatten_all()?.to_vec1()?;
        ensure!(
            first_out.as_deref() == Some(&again[..]),
            "internal error: the written int8 model does not reproduce the quantized model's output"
        );
        let mut out_meta = meta.clone();
        out_meta.format = 2;
        out_meta.precision = Precision::Int8;
        out_meta.quantization = Some(info.clone());
        let report = QuantReport::new(out_dir, &graph, &p, &requested, &auto, &alone, &layer_acc, out_acc.sqnr(), &info)
            .sized(src_bytes.len() as u64, bytes.len() as u64, t_start.elapsed().as_secs_f64());
        let report_json = serde_json::to_vec_pretty(&report)?;
        crate::import::install_model(
            out_dir,
            recipe.force,
            "quantize",
            &[(WEIGHTS_FILE, &bytes), (REPORT_FILE, &report_json)],
            &out_meta,
        )?;
        Ok(report)
    })
}

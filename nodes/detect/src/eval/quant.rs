//! `perch eval quant`: builds the variants, scores each one's detections on held-out frames against
//! the reference's (agreement mAP), and times all of them in interleaved rounds on one frame.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use perch_pipeline::{Detection, ImageBuf, Letterbox, TensorBuf};

use super::frames::{decode, FrameSelect, FrameSet};
use super::map::{coco_map, xyxy_to_xywh, DtBox, GtBox, ImageBoxes, MapParams};
use super::peer::{Peer, PeerInfo};
use super::settle::Settle;
use super::table::{loadavg, Agreement, LatencyStats, Machine, Protocol, QuantTable, Row, Runtime, Skipped, SCHEMA};
use super::variant::{build_int8, dir_size, int8_recipe, VariantSpec};
use crate::config::DetectConfig;
use crate::detector::Detector;
use crate::postprocess::{NmsParams, Postprocessor};

/// Everything `perch eval quant` needs.
#[derive(Clone, Debug)]
pub struct EvalQuantOptions {
    pub model: PathBuf,
    /// The first one is the reference (normally `f32`).
    pub variants: Vec<VariantSpec>,
    pub calib: Option<PathBuf>,
    pub calib_select: FrameSelect,
    pub frames: PathBuf,
    pub frames_select: FrameSelect,
    pub imgsz: Vec<u32>,
    pub runs: usize,
    pub rounds: usize,
    pub warmup: usize,
    pub threads: usize,
    pub conf: f32,
    pub reference_conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// Where built variants are cached and the peer exchanges tensors.
    pub work_dir: PathBuf,
    /// The peer command (`scripts/ort_int8.py serve ...`).
    pub peer: Option<String>,
    pub progress: bool,
}

impl EvalQuantOptions {
    fn validate(&self) -> anyhow::Result<()> {
        if self.variants.is_empty() {
            bail!("--variants: name at least one variant");
        }
        if self.variants[0] != VariantSpec::F32 {
            bail!("--variants: the first variant is the reference and must be f32 (got {})", self.variants[0].name());
        }
        let mut names: Vec<String> = self.variants.iter().map(VariantSpec::name).collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            bail!("--variants: '{}' is listed twice", w[0]);
        }
        if self.imgsz.is_empty() || self.imgsz.iter().any(|&s| s == 0 || s % 32 != 0) {
            bail!("--imgsz: sizes must be positive multiples of 32, got {:?}", self.imgsz);
        }
        if self.runs == 0 || self.rounds == 0 || self.rounds > self.runs {
            bail!("--runs ({}) must be at least 1 and at least --rounds ({})", self.runs, self.rounds);
        }
        if !(self.conf > 0.0 && self.conf <= self.reference_conf) {
            bail!("--conf ({}) must be in (0, reference conf {}]", self.conf, self.reference_conf);
        }
        Ok(())
    }
}

/// A perch variant ready to run at one size.
struct Loaded {
    name: String,
    precision: String,
    dir: PathBuf,
    size_bytes: u64,
    note: String,
    det: Detector,
    load_ms: f64,
}

/// A peer variant (run by the peer process).
struct PeerRow {
    name: String,
    precision: String,
    path: String,
    size_bytes: u64,
    load_ms: f64,
    note: String,
}

fn bar(progress: bool, len: usize, msg: String) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template("{msg:40} [{bar:30}] {pos}/{len} {elapsed_precise} (eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(msg);
    b
}

fn letterbox(img: &ImageBuf, imgsz: u32, t: &mut TensorBuf) -> anyhow::Result<Letterbox> {
    perch_preprocess::letterbox_into(img, imgsz, imgsz, t)
}

fn to_gt(d: &[Detection]) -> Vec<GtBox> {
    d.iter().map(|d| GtBox { class: d.class_id, xywh: xyxy_to_xywh([d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]) }).collect()
}

fn to_dt(d: &[Detection]) -> Vec<DtBox> {
    d.iter()
        .map(|d| DtBox { class: d.class_id, score: f64::from(d.score), xywh: xyxy_to_xywh([d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2]) })
        .collect()
}

/// Runs the evaluation and returns the table (not yet written).
pub fn eval_quant(o: &EvalQuantOptions) -> anyhow::Result<QuantTable> {
    o.validate()?;
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut machine = Machine::probe();
    let heldout = FrameSet::select(&o.frames, &o.frames_select).context("--frames")?;
    let needs_calib = o.variants.iter().any(VariantSpec::needs_calibration) || o.peer.is_some();
    let calib = match (&o.calib, needs_calib) {
        (Some(dir), true) => {
            let c = FrameSet::select(dir, &o.calib_select).context("--calib")?;
            c.ensure_disjoint(&heldout)?;
            Some(c)
        }
        (None, true) => bail!("--calib DIR is needed: the int8 variants and the peer calibrate on it"),
        (_, false) => None,
    };
    let mut skipped = Vec::new();

    // Build (or find) every perch variant's model directory, per input size for the int8 ones
    // (they are calibrated at the size they run at).
    let mut built: Vec<Vec<(VariantSpec, PathBuf, String)>> = vec![Vec::new(); o.imgsz.len()];
    for (si, &imgsz) in o.imgsz.iter().enumerate() {
        for v in &o.variants {
            let (dir, note) = match v {
                VariantSpec::F32 | VariantSpec::F16 => (o.model.clone(), String::new()),
                VariantSpec::Dir { dir, .. } => (dir.clone(), String::new()),
                VariantSpec::Int8(recipe) => {
                    let out = o.work_dir.join(format!("{}-{imgsz}", v.name()));
                    let paths = calib.as_ref().map(|c| c.paths.clone()).unwrap_or_default();
                    let b = bar(o.progress, paths.len(), format!("{} @{imgsz}", v.name()));
                    let progress = |phase: &str, done: usize, total: usize| {
                        b.set_length(total as u64);
                        b.set_position(done as u64);
                        b.set_message(format!("{} @{imgsz}: {phase}", v.name()));
                    };
                    let r = build_int8(&int8_recipe(*recipe, imgsz, o.threads), &o.model, &out, &paths, &progress)
                        .with_context(|| format!("variant {} @{imgsz}", v.name()))?;
                    b.finish_and_clear();
                    r
                }
            };
            built[si].push((v.clone(), dir, note));
        }
    }

    // The held-out frames, decoded once (an unreadable frame is skipped and named in the report).
    let mut frames: Vec<(String, ImageBuf)> = Vec::new();
    let mut unreadable = Vec::new();
    for p in &heldout.paths {
        match decode(p) {
            Ok(img) => frames.push((p.display().to_string(), img)),
            Err(e) => {
                eprintln!("warning: skipping held-out frame: {e:#}");
                unreadable.push(p.display().to_string());
            }
        }
    }
    if frames.is_empty() {
        bail!("--frames: none of the {} held-out frames could be decoded", heldout.paths.len());
    }

    // The peer: calibrate on perch's tensors of the calibration frames, then open its sessions.
    let mut peer_info: Option<PeerInfo> = None;
    let mut peer_json = None;
    let mut peer = match &o.peer {
        Some(cmd) => {
            let mut p = Peer::spawn(cmd, &o.work_dir.join("peer-exchange"))?;
            let size = p.input_size()?.unwrap_or(*o.imgsz.iter().max().unwrap_or(&640));
            let c = calib.as_ref().context("peer without calibration frames")?;
            let b = bar(o.progress, c.paths.len(), format!("peer: calibration tensors @{size}"));
            let mut t = TensorBuf::default();
            for path in &c.paths {
                letterbox(&decode(path)?, size, &mut t)?;
                p.calib_add(&t)?;
                b.inc(1);
            }
            b.finish_and_clear();
            if o.progress {
                eprintln!("peer: quantizing / opening sessions (cached after the first run) ...");
            }
            let (info, raw) = p.prepare()?;
            if info.threads != o.threads {
                bail!("the peer runs {} threads but --threads is {}: pass the same count to both", info.threads, o.threads);
            }
            let mut j = raw;
            j["command"] = serde_json::Value::String(cmd.clone());
            j["calibration_imgsz"] = size.into();
            peer_json = Some(j);
            peer_info = Some(info);
            Some(p)
        }
        None => None,
    };
    let peer_rows: Vec<PeerRow> = peer_info
        .iter()
        .flat_map(|i| i.variants.iter())
        .map(|v| PeerRow {
            name: v.name.clone(),
            precision: v.precision.clone(),
            path: v.path.clone(),
            size_bytes: v.bytes,
            load_ms: v.load_ms,
            note: v.recipe.as_ref().map_or(String::new(), |r| format!("ONNX Runtime quantize_static: {r}")),
        })
        .collect();

    let latency_frame = frames[0].0.clone();
    let mut rows = Vec::new();
    let mut settle = Settle::default();
    for (si, &imgsz) in o.imgsz.iter().enumerate() {
        let peer_here = peer_info.as_ref().is_some_and(|i| i.input_hw.is_none_or(|hw| hw == [imgsz, imgsz]));
        if let (Some(i), false) = (&peer_info, peer_here) {
            for v in &i.variants {
                skipped.push(Skipped {
                    variant: v.name.clone(),
                    imgsz: Some(imgsz),
                    reason: format!("the ONNX has a fixed {:?} input", i.input_hw.unwrap_or_default()),
                });
            }
        }
        // Load every perch variant at this size (cold start timed).
        let mut loaded = Vec::new();
        for (spec, dir, note) in &built[si] {
            let cfg = DetectConfig {
                model: dir.clone(),
                imgsz,
                threads: o.threads,
                conf: o.reference_conf,
                iou: o.iou,
                max_det: o.max_det,
                ..Default::default()
            };
            let t = Instant::now();
            let det = Detector::load_with_dtype(&cfg, spec.dtype()).with_context(|| format!("variant {}", spec.name()))?;
            let load_ms = t.elapsed().as_secs_f64() * 1e3;
            let precision = match spec.dtype() {
                Some(d) => format!("{d:?}").to_lowercase(),
                None => model_precision(dir),
            };
            loaded.push(Loaded { name: spec.name(), precision, dir: dir.clone(), size_bytes: dir_size(dir)?, note: note.clone(), det, load_ms });
        }
        let nc = loaded[0].det.meta().num_classes;
        for l in &loaded[1..] {
            if l.det.class_names() != loaded[0].det.class_names() {
                bail!("variant {}: its class names differ from the reference model's", l.name);
            }
        }

        // Agreement: every variant on every held-out frame.
        let n_rows = loaded.len() + if peer_here { peer_rows.len() } else { 0 };
        let mut boxes: Vec<Vec<ImageBoxes>> = vec![Vec::with_capacity(frames.len()); n_rows];
        let ref_params = NmsParams { conf: o.reference_conf, iou: o.iou, max_det: o.max_det, classes: None };
        let low_params = NmsParams { conf: o.conf, ..ref_params.clone() };
        let mut post = Postprocessor::new();
        let (mut gt_dets, mut dets) = (Vec::new(), Vec::new());
        let mut tensor = TensorBuf::default();
        let b = bar(o.progress, frames.len(), format!("agreement @{imgsz}: {n_rows} variants"));
        for (_, img) in &frames {
            let lb = letterbox(img, imgsz, &mut tensor)?;
            let mut gt = Vec::new();
            for (k, l) in loaded.iter_mut().enumerate() {
                let (out, n) = l.det.forward_raw(&tensor)?;
                if k == 0 {
                    post.run(out, nc, n, &ref_params, &lb, &mut gt_dets)?;
                    gt = to_gt(&gt_dets);
                }
                post.run(out, nc, n, &low_params, &lb, &mut dets)?;
                boxes[k].push(ImageBoxes { gt: Vec::new(), dt: to_dt(&dets) });
            }
            if let (Some(p), true) = (peer.as_mut(), peer_here) {
                for (j, pr) in peer_rows.iter().enumerate() {
                    let (out, n) = p.forward(&pr.name, &tensor, nc)?;
                    post.run(out, nc, n, &low_params, &lb, &mut dets)?;
                    boxes[loaded.len() + j].push(ImageBoxes { gt: Vec::new(), dt: to_dt(&dets) });
                }
            }
            for v in boxes.iter_mut() {
                if let Some(last) = v.last_mut() {
                    last.gt = gt.clone();
                }
            }
            b.inc(1);
        }
        b.finish_and_clear();
        let mp = MapParams { max_dets: o.max_det };
        let agreements: Vec<Agreement> = boxes
            .iter()
            .map(|im| {
                let m = coco_map(im, &mp);
                Agreement { map50_95: m.map50_95, map50: m.map50, map75: m.map75, frames: m.images, gt_boxes: m.gt_boxes, dt_boxes: m.dt_boxes }
            })
            .collect();

        // Latency: interleaved rounds on one frame, every variant in every round.
        let lb = letterbox(&frames[0].1, imgsz, &mut tensor)?;
        for l in loaded.iter_mut() {
            for _ in 0..o.warmup {
                l.det.detect(&tensor, &lb, &mut dets)?;
            }
        }
        // Before every variant's round: the other runtime's leftover spinning has stopped (settle.rs).
        let peer_pid = peer.as_ref().map(|p| p.pid());
        let mut lat: Vec<Vec<f64>> = vec![Vec::new(); n_rows];
        let mut fwd: Vec<Vec<f64>> = vec![Vec::new(); loaded.len()];
        let b = bar(o.progress, o.runs * n_rows, format!("latency @{imgsz}: {} rounds", o.rounds));
        for r in 0..o.rounds {
            let runs = o.runs / o.rounds + usize::from(r < o.runs % o.rounds);
            for (k, l) in loaded.iter_mut().enumerate() {
                settle.wait(true, peer_pid);
                for _ in 0..runs {
                    let t = l.det.detect(&tensor, &lb, &mut dets)?;
                    lat[k].push((t.forward + t.postprocess).as_secs_f64() * 1e3);
                    fwd[k].push(t.forward.as_secs_f64() * 1e3);
                    b.inc(1);
                }
            }
            if let (Some(p), true) = (peer.as_mut(), peer_here) {
                for (j, pr) in peer_rows.iter().enumerate() {
                    settle.wait(true, peer_pid);
                    let ms = p.bench(&pr.name, &tensor, runs, if r == 0 { o.warmup } else { 0 })?;
                    lat[loaded.len() + j].extend(ms);
                    b.inc(runs as u64);
                }
            }
        }
        b.finish_and_clear();

        for (k, l) in loaded.iter().enumerate() {
            rows.push(Row {
                variant: l.name.clone(),
                runtime: Runtime::Perch,
                precision: l.precision.clone(),
                path: l.dir.display().to_string(),
                imgsz,
                size_bytes: l.size_bytes,
                load_ms: l.load_ms,
                latency_ms: LatencyStats::from_ms(std::mem::take(&mut lat[k])),
                forward_ms: LatencyStats::from_ms(std::mem::take(&mut fwd[k])),
                agreement: Some(agreements[k].clone()),
                speedup_vs_reference: None,
                note: l.note.clone(),
            });
        }
        if peer_here {
            for (j, pr) in peer_rows.iter().enumerate() {
                let k = loaded.len() + j;
                rows.push(Row {
                    variant: pr.name.clone(),
                    runtime: Runtime::Peer,
                    precision: pr.precision.clone(),
                    path: pr.path.clone(),
                    imgsz,
                    size_bytes: pr.size_bytes,
                    load_ms: pr.load_ms,
                    latency_ms: LatencyStats::from_ms(std::mem::take(&mut lat[k])),
                    forward_ms: None,
                    agreement: Some(agreements[k].clone()),
                    speedup_vs_reference: None,
                    note: pr.note.clone(),
                });
            }
        }
    }
    drop(peer);
    machine.loadavg_end = loadavg();
    let mut table = QuantTable {
        schema: SCHEMA.to_string(),
        perch_version: env!("CARGO_PKG_VERSION").to_string(),
        started_unix,
        model: o.model.display().to_string(),
        calibration: calib.map(|c| c.info),
        heldout: heldout.info,
        heldout_unreadable: unreadable,
        protocol: Protocol {
            reference: o.variants[0].name(),
            reference_conf: o.reference_conf,
            conf: o.conf,
            iou: o.iou,
            max_det: o.max_det,
            map_max_dets: o.max_det,
            threads: o.threads,
            runs: o.runs,
            rounds: o.rounds,
            warmup: o.warmup,
            latency_frame,
            settle: Some(settle.stats()),
        },
        machine,
        peer: peer_json,
        rows,
        skipped,
    };
    table.derive_speedups();
    Ok(table)
}

/// Default cache folder for built variants: `<out>/variants`.
pub fn default_work_dir(out: &Path) -> PathBuf {
    out.join("variants")
}

/// `precision` from a model's model.json ("f32" when it has none: an imported, unquantized model).
pub fn model_precision(dir: &Path) -> String {
    std::fs::read_to_string(crate::meta::ModelMeta::weights_path(dir).with_file_name(crate::meta::META_FILE))
        .ok()
        .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
        .and_then(|v| v.get("precision").and_then(|p| p.as_str().map(str::to_string)))
        .unwrap_or_else(|| "f32".to_string())
}

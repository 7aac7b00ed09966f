//! `perch model import`, `perch detect` and `perch bench detect`: clap argument structs and their
//! run functions (the `perch` binary wires them in).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use perch_pipeline::{Detection, ImageBuf, PixelFormat, TensorBuf};
use serde::Serialize;

use crate::config::{ClassSel, DetectConfig, DeviceKind};
use crate::detector::Detector;

/// `perch model import <export.onnx> -o models/<name>/`
#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    /// An Ultralytics ONNX export (`yolo export format=onnx`) of a detection model.
    pub onnx: PathBuf,
    /// Directory to create (`model.safetensors` + `model.json` are written into it).
    #[arg(short = 'o', long = "out")]
    pub out: PathBuf,
    /// Replace a model already in the directory.
    #[arg(long)]
    pub force: bool,
}

pub fn run_import(args: &ImportArgs) -> anyhow::Result<()> {
    let meta = crate::import::import_onnx(&args.onnx, &args.out, args.force)?;
    println!(
        "imported {} -> {}: {:?} {:?}, {} classes, imgsz {}x{}{}, {} parameters, Ultralytics {}, license: {}",
        args.onnx.display(),
        args.out.display(),
        meta.architecture,
        meta.scale,
        meta.num_classes,
        meta.imgsz[0],
        meta.imgsz[1],
        if meta.dynamic_input { " (dynamic)" } else { "" },
        meta.parameters,
        meta.ultralytics_version.as_deref().unwrap_or("?"),
        meta.license.as_deref().unwrap_or("not stated"),
    );
    Ok(())
}

/// Options shared by `perch detect` and `perch bench detect`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Imported model directory.
    #[arg(long, default_value = "models/yolov12n")]
    pub model: PathBuf,
    /// Model input side (multiple of 32).
    #[arg(long, default_value_t = 640)]
    pub imgsz: u32,
    /// "cpu" or "cuda".
    #[arg(long, default_value = "cpu")]
    pub device: DeviceKind,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `perch detect IMAGE...`: detections for single images, like `yolo predict`.
#[derive(Args, Debug, Clone)]
pub struct DetectArgs {
    /// Images (JPEG or PNG).
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: ModelArgs,
    /// Minimum class score.
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.7)]
    pub iou: f32,
    /// Most detections per image.
    #[arg(long, default_value_t = 300)]
    pub max_det: usize,
    /// Keep only these classes (ids or names, comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub classes: Vec<ClassSel>,
    /// One JSON object per image and line instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl DetectArgs {
    pub fn config(&self) -> DetectConfig {
        DetectConfig {
            model: self.model.model.clone(),
            conf: self.conf,
            iou: self.iou,
            max_det: self.max_det,
            classes: (!self.classes.is_empty()).then(|| self.classes.clone()),
            imgsz: self.model.imgsz,
            device: self.model.device,
            threads: self.model.threads,
        }
    }
}

/// One image's result, as `perch detect --json` prints it.
#[derive(Debug, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionOut>,
    pub inference_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct DetectionOut {
    pub class_id: u32,
    pub class: String,
    pub score: f32,
    /// [x1, y1, x2, y2] in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// Decode an image file into an RGB8 buffer.
pub fn load_image(path: &Path, into: &mut ImageBuf) -> anyhow::Result<()> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?
        .decode()
        .with_context(|| format!("{}: not a decodable image (JPEG and PNG are supported)", path.display()))?
        .into_rgb8();
    into.reshape(PixelFormat::Rgb8, img.width(), img.height());
    into.data.copy_from_slice(img.as_raw());
    Ok(())
}

/// Detect objects in one image file with a loaded detector.
pub fn detect_file(detector: &mut Detector, path: &Path) -> anyhow::Result<ImageResult> {
    let mut image = ImageBuf::default();
    load_image(path, &mut image)?;
    let mut tensor = TensorBuf::default();
    let s = detector.imgsz();
    let lb = perch_preprocess::letterbox_into(&image, s, s, &mut tensor)?;
    let mut dets: Vec<Detection> = Vec::new();
    let t = detector.detect(&tensor, &lb, &mut dets)?;
    let names = detector.class_names();
    Ok(ImageResult {
        image: path.display().to_string(),
        width: image.width,
        height: image.height,
        detections: dets
            .iter()
            .map(|d| DetectionOut {
                class_id: d.class_id,
                class: names.get(d.class_id as usize).cloned().unwrap_or_default(),
                score: d.score,
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
            })
            .collect(),
        inference_ms: (t.forward + t.postprocess).as_secs_f64() * 1e3,
    })
}

pub fn run_detect(args: &DetectArgs) -> anyhow::Result<()> {
    let mut detector = Detector::load(&args.config())?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let total = args.images.len();
    for (i, path) in args.images.iter().enumerate() {
        let r = detect_file(&mut detector, path)?;
        if args.json {
            serde_json::to_writer(&mut out, &r)?;
            writeln!(out)?;
        } else {
            writeln!(out, "image {}/{} {}: {}x{} {}, {:.1}ms", i + 1, total, r.image, r.width, r.height, summary(&r), r.inference_ms)?;
            if !r.detections.is_empty() {
                writeln!(out, "  {:<16} {:>6} {:>8} {:>8} {:>8} {:>8}", "class", "score", "x1", "y1", "x2", "y2")?;
            }
            for d in &r.detections {
                writeln!(
                    out,
                    "  {:<16} {:>6.3} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
                    format!("{} ({})", d.class, d.class_id),
                    d.score,
                    d.bbox[0],
                    d.bbox[1],
                    d.bbox[2],
                    d.bbox[3]
                )?;
            }
        }
    }
    Ok(())
}

/// "4 persons, 1 car" (Ultralytics' summary line), or "(no detections)".
fn summary(r: &ImageResult) -> String {
    let mut counts: Vec<(u32, &str, usize)> = Vec::new();
    for d in &r.detections {
        match counts.iter_mut().find(|c| c.0 == d.class_id) {
            Some(c) => c.2 += 1,
            None => counts.push((d.class_id, &d.class, 1)),
        }
    }
    counts.sort_by_key(|c| c.0);
    if counts.is_empty() {
        return "(no detections)".into();
    }
    counts.iter().map(|(_, n, k)| format!("{k} {n}{}", if *k > 1 { "s" } else { "" })).collect::<Vec<_>>().join(", ")
}

/// `perch bench detect`: model load time, warm-up, per-frame latency and peak memory.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Timed frames.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Untimed frames first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Input image (default: the first vtest frame when present, else a mid-grey frame).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Latency statistics in milliseconds (nearest-rank percentiles over the sorted samples).
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl Stats {
    pub fn from_ms(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Self { n, median, p95: rank(95.0), p99: rank(99.0), min: v[0], max: v[n - 1], mean: v.iter().sum::<f64>() / n as f64 }
    }
}

#[derive(Debug, Serialize)]
pub struct BenchReport {
    pub model: String,
    pub architecture: String,
    pub imgsz: u32,
    pub device: String,
    pub threads: usize,
    pub image: String,
    /// Cold start: reading the weights and building the network.
    pub load_ms: f64,
    pub warmup: usize,
    /// The first warm-up frame (lazy initialisation, page faults).
    pub first_frame_ms: Option<f64>,
    /// Network only (upload, forward, download).
    pub forward_ms: Stats,
    /// Decode + NMS + mapping to source pixels.
    pub postprocess_ms: Stats,
    /// What the stage costs per frame: forward + postprocess.
    pub latency_ms: Stats,
    pub detections: usize,
    /// Peak resident memory of the process (VmHWM).
    pub peak_rss_mib: Option<f64>,
}

/// Peak resident set size of this process, from /proc/self/status (Linux).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub fn bench(args: &BenchArgs) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(args.runs >= 1, "--runs must be at least 1");
    let config = DetectConfig {
        model: args.model.model.clone(),
        imgsz: args.model.imgsz,
        device: args.model.device,
        threads: args.model.threads,
        ..Default::default()
    };
    let t = Instant::now();
    let mut detector = Detector::load(&config)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let default_image = PathBuf::from("datasets/vtest/img1/000001.jpg");
    let image_path = args.image.clone().or_else(|| default_image.exists().then_some(default_image));
    let mut image = ImageBuf::default();
    match &image_path {
        Some(p) => load_image(p, &mut image)?,
        None => {
            image.reshape(PixelFormat::Rgb8, 768, 576);
            image.data.fill(128);
        }
    }
    let s = detector.imgsz();
    let mut tensor = TensorBuf::default();
    let lb = perch_preprocess::letterbox_into(&image, s, s, &mut tensor)?;
    let mut dets = Vec::new();
    let mut first_frame_ms = None;
    for i in 0..args.warmup {
        let t = detector.detect(&tensor, &lb, &mut dets)?;
        if i == 0 {
            first_frame_ms = Some((t.forward + t.postprocess).as_secs_f64() * 1e3);
        }
    }
    let (mut fwd, mut post, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..args.runs {
        let t = detector.detect(&tensor, &lb, &mut dets)?;
        fwd.push(t.forward.as_secs_f64() * 1e3);
        post.push(t.postprocess.as_secs_f64() * 1e3);
        total.push((t.forward + t.postprocess).as_secs_f64() * 1e3);
    }
    Ok(BenchReport {
        model: args.model.model.display().to_string(),
        architecture: format!("{:?}{:?}", detector.meta().architecture, detector.meta().scale).to_lowercase(),
        imgsz: s,
        device: format!("{:?}", args.model.device).to_lowercase(),
        threads: detector.threads(),
        image: image_path.map_or_else(|| "(grey 768x576)".to_string(), |p| p.display().to_string()),
        load_ms,
        warmup: args.warmup,
        first_frame_ms,
        forward_ms: Stats::from_ms(fwd),
        postprocess_ms: Stats::from_ms(post),
        latency_ms: Stats::from_ms(total),
        detections: dets.len(),
        peak_rss_mib: peak_rss_mib(),
    })
}

pub fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let r = bench(args)?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "perch bench detect: {} ({}) imgsz {} on {} with {} threads, image {}",
        r.model, r.architecture, r.imgsz, r.device, r.threads, r.image
    );
    println!("  cold start (load):  {:.1} ms", r.load_ms);
    if let Some(f) = r.first_frame_ms {
        println!("  first frame:        {f:.1} ms (warm-up {} frames)", r.warmup);
    }
    for (name, s) in [("latency", &r.latency_ms), ("  forward", &r.forward_ms), ("  postprocess", &r.postprocess_ms)] {
        println!(
            "  {name:<18}  median {:.2} ms  p95 {:.2}  p99 {:.2}  min {:.2}  max {:.2}  (n = {})",
            s.median, s.p95, s.p99, s.min, s.max, s.n
        );
    }
    println!("  detections/frame:   {}", r.detections);
    if let Some(m) = r.peak_rss_mib {
        println!("  peak RSS:           {m:.1} MiB");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_nearest_rank() {
        let s = Stats::from_ms((1..=100).map(f64::from).collect());
        assert_eq!((s.n, s.median, s.p95, s.p99, s.min, s.max), (100, 50.5, 95.0, 99.0, 1.0, 100.0));
        let s = Stats::from_ms(vec![3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.p99), (2.0, 3.0));
    }
}

//! `perch detect` and `perch bench detect`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use perch_detect::bench::{bench, BenchOptions};
use perch_detect::predict::{detect_file, summary};
use perch_detect::{ClassSel, DetectConfig, Detector, DeviceKind};

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
    fn config(&self) -> DetectConfig {
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

pub fn run_bench(args: &BenchArgs) -> anyhow::Result<()> {
    let r = bench(&BenchOptions {
        model: args.model.model.clone(),
        imgsz: args.model.imgsz,
        device: args.model.device,
        threads: args.model.threads,
        runs: args.runs,
        warmup: args.warmup,
        image: args.image.clone(),
    })?;
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

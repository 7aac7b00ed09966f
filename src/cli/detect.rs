//! `perch detect` and `perch bench detect`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use perch_annotate::{Annotator, Canvas};
use perch_detect::bench::{bench, BenchOptions};
use perch_detect::predict::{detect_image, summary, ImageBuffers, ImageResult};
use perch_detect::{ClassSel, DetectConfig, Detector, DeviceKind};

use super::inputs;

/// Options shared by `perch detect` and `perch bench detect`.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Imported model directory [default: models/yolov12n in the perch home].
    #[arg(long)]
    pub model: Option<PathBuf>,
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

impl ModelArgs {
    /// `--model`, or the shipped model in the perch home.
    pub fn model_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.model {
            Some(m) => Ok(m.clone()),
            None => crate::home::find(Path::new("models/yolov12n")).map_err(|e| anyhow::anyhow!("--model not given and {e}")),
        }
    }
}

/// `perch detect IMAGE...`: detections for single images, like `yolo predict`.
#[derive(Args, Debug, Clone)]
pub struct DetectArgs {
    /// Images (JPEG or PNG), folders of images, or quoted glob patterns (`'img1/*.jpg'`).
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
    /// One JSON object per image and line instead of a table (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Save annotated images (boxes, class, score) into DIR, default `runs/detect/predict`
    /// (`predict2`, `predict3`, ... when it exists, as Ultralytics). Written `--save=DIR`.
    #[arg(long, value_name = "DIR", num_args = 0..=1, require_equals = true)]
    pub save: Option<Option<PathBuf>>,
}

impl DetectArgs {
    fn config(&self) -> anyhow::Result<DetectConfig> {
        Ok(DetectConfig {
            model: self.model.model_dir()?,
            conf: self.conf,
            iou: self.iou,
            max_det: self.max_det,
            classes: (!self.classes.is_empty()).then(|| self.classes.clone()),
            imgsz: self.model.imgsz,
            device: self.model.device,
            threads: self.model.threads,
            ..DetectConfig::default()
        })
    }
}

/// Totals over every image, for the summary line.
#[derive(Default)]
struct Totals {
    images: usize,
    per_class: BTreeMap<(u32, String), usize>,
    inference_ms: f64,
    decode_ms: f64,
}

pub fn run_detect(args: &DetectArgs) -> anyhow::Result<ExitCode> {
    let (files, mut failures) = inputs::expand(&args.images);
    for f in &failures {
        eprintln!("error: {f}");
    }
    if files.is_empty() {
        eprintln!("error: no image to process ({} inputs, none usable)", failures.len());
        return Ok(ExitCode::from(1));
    }
    let mut detector = Detector::load(&args.config()?)?;
    let save_dir = match &args.save {
        None => None,
        Some(None) => Some(perch_annotate::next_run_dir(Path::new("runs/detect"), "predict")?),
        Some(Some(d)) => {
            std::fs::create_dir_all(d).with_context(|| format!("--save={}: cannot create the folder", d.display()))?;
            Some(d.clone())
        }
    };
    let annotator = Annotator::new();
    let mut taken = HashSet::new();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut bufs = ImageBuffers::default();
    let mut totals = Totals::default();
    let total = files.len();
    for (i, path) in files.iter().enumerate() {
        let r = match detect_image(&mut detector, path, &mut bufs) {
            Ok(r) => r,
            Err(e) => {
                // One bad file does not stop the rest; the exit code says something failed.
                eprintln!("error: {e:#}");
                failures.push(format!("{e:#}"));
                continue;
            }
        };
        totals.images += 1;
        totals.inference_ms += r.inference_ms;
        totals.decode_ms += bufs.decode_ms;
        for d in &r.detections {
            *totals.per_class.entry((d.class_id, d.class.clone())).or_default() += 1;
        }
        if let Some(dir) = &save_dir {
            let target = perch_annotate::output_path(dir, path, &mut taken);
            let img = &mut bufs.image;
            annotator.draw(&mut Canvas { data: &mut img.data, width: img.width, height: img.height }, &bufs.detections, detector.class_names());
            if let Err(e) = perch_annotate::save_rgb(&target, &img.data, img.width, img.height) {
                eprintln!("error: {e:#}");
                failures.push(format!("{e:#}"));
            }
        }
        if args.json {
            serde_json::to_writer(&mut out, &r)?;
            writeln!(out)?;
        } else {
            print_table(&mut out, &r, i + 1, total)?;
        }
    }
    let line = summary_line(&totals, failures.len());
    if args.json {
        eprintln!("{line}");
    } else {
        writeln!(out, "{line}")?;
    }
    if let Some(dir) = &save_dir {
        eprintln!("results saved to {}", dir.display());
    }
    if !failures.is_empty() {
        eprintln!("error: {} of {} inputs failed (listed above)", failures.len(), totals.images + failures.len());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(out: &mut impl Write, r: &ImageResult, index: usize, total: usize) -> std::io::Result<()> {
    writeln!(out, "image {index}/{total} {}: {}x{} {}, {:.1}ms", r.image, r.width, r.height, summary(r), r.inference_ms)?;
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
    Ok(())
}

/// `summary: 3 images, 21 detections (person 20, car 1), mean 84.2 ms inference + 3.1 ms decode per image`
fn summary_line(t: &Totals, failed: usize) -> String {
    let n: usize = t.per_class.values().sum();
    let classes: Vec<String> = t.per_class.iter().map(|((_, name), k)| format!("{name} {k}")).collect();
    let classes = if classes.is_empty() { String::new() } else { format!(" ({})", classes.join(", ")) };
    let mean = |ms: f64| if t.images > 0 { ms / t.images as f64 } else { 0.0 };
    let failed = if failed > 0 { format!(", {failed} failed") } else { String::new() };
    format!(
        "summary: {} image{}, {n} detection{}{classes}, mean {:.1} ms inference + {:.1} ms decode per image{failed}",
        t.images,
        if t.images == 1 { "" } else { "s" },
        if n == 1 { "" } else { "s" },
        mean(t.inference_ms),
        mean(t.decode_ms)
    )
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
        model: args.model.model_dir()?,
        imgsz: args.model.imgsz,
        device: args.model.device,
        threads: args.model.threads,
        runs: args.runs,
        warmup: args.warmup,
        // The first vtest frame from the perch home, so the default input does not depend on the cwd.
        image: args.image.clone().or_else(|| crate::home::find(Path::new("datasets/vtest/img1/000001.jpg")).ok()),
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

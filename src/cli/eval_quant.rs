//! `perch eval quant`: the accuracy–latency trade-off table of a model's precision variants
//! (library: `perch_detect::eval`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use perch_detect::eval::frames::FrameSelect;
use perch_detect::eval::{eval_quant, EvalQuantOptions, QuantTable, VariantSpec};

/// `perch eval quant --model DIR --variants f32,int8-minmax,... --calib DIR --frames DIR`
#[derive(Args, Debug, Clone)]
pub struct EvalQuantArgs {
    /// The f32 model directory (the reference, and what the int8 variants are built from).
    #[arg(long, default_value = "models/yolov12n")]
    pub model: PathBuf,
    /// Variants, the first being the reference: f32, f16 (Candle's reference ops in f16), int8-minmax,
    /// int8-percentile, int8-mixed, or NAME=MODEL_DIR (a prebuilt model, e.g. from `perch model quantize`).
    #[arg(long, value_delimiter = ',', default_value = "f32,int8-minmax,int8-percentile,int8-mixed")]
    pub variants: Vec<VariantSpec>,
    /// Calibration frames (the int8 variants and the peer's INT8 are calibrated on them).
    #[arg(long)]
    pub calib: Option<PathBuf>,
    /// How many calibration frames (the first N of --calib, by name).
    #[arg(long, default_value_t = 64)]
    pub calib_frames: usize,
    /// Held-out frames (JPEG/PNG, sorted by name); must not share a frame with the calibration set.
    #[arg(long, required_unless_present = "from")]
    pub frames: Option<PathBuf>,
    /// Skip the first N held-out frames (e.g. the calibration range when both are one folder).
    #[arg(long, default_value_t = 0)]
    pub frames_skip: usize,
    /// Take every K-th held-out frame.
    #[arg(long, default_value_t = 1)]
    pub frames_every: usize,
    /// At most N held-out frames (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_frames: usize,
    /// Model input sizes (multiples of 32).
    #[arg(long, value_delimiter = ',', default_value = "640,320")]
    pub imgsz: Vec<u32>,
    /// Timed frames per variant and size.
    #[arg(long, default_value_t = 30)]
    pub runs: usize,
    /// Rounds the timed frames are split into; every round runs every variant in turn.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Untimed frames per variant first.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// CPU threads per detector (and the peer's; pass the same to its --threads).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Score threshold of the scored detections.
    #[arg(long, default_value_t = 0.001)]
    pub conf: f32,
    /// Score threshold of the reference's detections (the ground truth).
    #[arg(long, default_value_t = 0.25)]
    pub reference_conf: f32,
    /// NMS IoU threshold.
    #[arg(long, default_value_t = 0.7)]
    pub iou: f32,
    /// Most detections per frame (and the mAP's maxDets).
    #[arg(long, default_value_t = 300)]
    pub max_det: usize,
    /// Output folder: eval_quant.json (schema perch.eval_quant/1) and eval_quant.md.
    #[arg(long, default_value = "out/eval-quant")]
    pub out: PathBuf,
    /// Where built variants are cached (default: OUT/variants).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Also write the latency-vs-agreement scatter as PNG.
    #[arg(long, value_name = "FILE.png")]
    pub plot: Option<PathBuf>,
    /// A peer process that runs other runtimes' rows, e.g.
    /// ".venv-detect/bin/python nodes/detect/scripts/ort_int8.py serve --onnx .cache/fixtures/yolov12n.onnx"
    #[arg(long, value_name = "COMMAND")]
    pub peer: Option<String>,
    /// Render the table (and --plot) from a saved eval_quant.json instead of running.
    #[arg(long, value_name = "REPORT.json", conflicts_with_all = ["peer"])]
    pub from: Option<PathBuf>,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
}

impl EvalQuantArgs {
    pub fn options(&self) -> EvalQuantOptions {
        EvalQuantOptions {
            model: self.model.clone(),
            variants: self.variants.clone(),
            calib: self.calib.clone(),
            calib_select: FrameSelect { skip: 0, every: 1, limit: self.calib_frames },
            frames: self.frames.clone().unwrap_or_default(),
            frames_select: FrameSelect { skip: self.frames_skip, every: self.frames_every, limit: self.max_frames },
            imgsz: self.imgsz.clone(),
            runs: self.runs,
            rounds: self.rounds,
            warmup: self.warmup,
            threads: self.threads,
            conf: self.conf,
            reference_conf: self.reference_conf,
            iou: self.iou,
            max_det: self.max_det,
            work_dir: self.work_dir.clone().unwrap_or_else(|| self.out.join("variants")),
            peer: self.peer.clone(),
            progress: !self.quiet,
        }
    }
}

pub fn run(args: &EvalQuantArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.calib_frames >= 1, "--calib-frames must be at least 1");
    let table = match &args.from {
        Some(p) => QuantTable::load(p)?,
        None => {
            let t = eval_quant(&args.options())?;
            let (json, md) = t.write(&args.out)?;
            eprintln!("wrote {} and {}", json.display(), md.display());
            t
        }
    };
    print!("{}", table.markdown());
    if let Some(p) = &args.plot {
        perch_detect::eval::plot::write_png(&table, p).with_context(|| format!("--plot {}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

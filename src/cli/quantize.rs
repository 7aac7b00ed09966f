//! `perch model quantize`: post-training int8 quantization of an imported f32 model, calibrated
//! on the user's own frames (see perch-detect's README, "Quantization").

use std::path::PathBuf;
use std::sync::Mutex;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use perch_detect::quant::{self, CalibMethod, QuantRecipe};

/// How activation ranges are chosen from the calibration statistics.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Method {
    /// The observed min and max.
    Minmax,
    /// The --percentile-th value at the top, its complement at the bottom.
    Percentile,
    /// The range with the least expected squared quantization error.
    Mse,
}

#[derive(Args, Debug, Clone)]
pub struct QuantizeArgs {
    /// The f32 model directory (from `perch model import`).
    pub model: PathBuf,
    /// Calibration frames: a folder of .jpg/.png images, or a sequence folder with img1/.
    #[arg(long, required_unless_present = "list_layers")]
    pub calib: Option<PathBuf>,
    /// Frames to calibrate on, spread evenly over the folder (0: all).
    #[arg(long, default_value_t = 64)]
    pub frames: usize,
    #[arg(long, value_enum, default_value = "percentile")]
    pub method: Method,
    /// The percentile of --method percentile.
    #[arg(long, default_value_t = 99.99)]
    pub percentile: f64,
    /// Conv layers to keep in f32 (Ultralytics module names, comma-separated; `prefix*` matches a prefix).
    #[arg(long, value_delimiter = ',')]
    pub keep_f32: Vec<String>,
    /// Also keep in f32 the N layers whose quantization alone hurts the output most (measured).
    #[arg(long, default_value_t = 0)]
    pub auto_keep: usize,
    /// Measure every layer's sensitivity for the report even without --auto-keep.
    #[arg(long)]
    pub sensitivity: bool,
    /// Calibration frames the per-layer sensitivity runs on.
    #[arg(long, default_value_t = 4)]
    pub sensitivity_frames: usize,
    /// Input size to calibrate at (the size the model will run at).
    #[arg(long, default_value_t = 640)]
    pub imgsz: u32,
    /// CPU threads (0: all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Output model directory.
    #[arg(short = 'o', long = "out", required_unless_present = "list_layers")]
    pub out: Option<PathBuf>,
    /// Replace a model already in the output directory.
    #[arg(long)]
    pub force: bool,
    /// Print the model's conv layer names (for --keep-f32) and exit.
    #[arg(long)]
    pub list_layers: bool,
}

pub fn run(args: &QuantizeArgs) -> anyhow::Result<()> {
    if args.list_layers {
        for n in quant::list_layers(&args.model)? {
            println!("{:<28} {}", n.name, n.describe());
        }
        return Ok(());
    }
    let (Some(calib), Some(out)) = (&args.calib, &args.out) else { anyhow::bail!("--calib and -o are required") };
    let files = quant::frames::list(calib)?;
    let frames = quant::frames::spread(&files, args.frames);
    let recipe = QuantRecipe {
        method: match args.method {
            Method::Minmax => CalibMethod::Minmax,
            Method::Percentile => CalibMethod::Percentile(args.percentile),
            Method::Mse => CalibMethod::Mse,
        },
        keep_f32: args.keep_f32.clone(),
        auto_keep: args.auto_keep,
        imgsz: args.imgsz,
        sensitivity_frames: args.sensitivity_frames,
        sensitivity: args.sensitivity,
        threads: args.threads,
        force: args.force,
        ..QuantRecipe::default()
    };
    eprintln!("calibrating on {} of {} frames in {}", frames.len(), files.len(), calib.display());
    let bar: Mutex<Option<(String, ProgressBar)>> = Mutex::new(None);
    let style = ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta})")
        .context("progress bar template")?
        .progress_chars("=> ");
    let progress = |phase: &str, done: usize, total: usize| {
        let mut b = bar.lock().unwrap_or_else(|p| p.into_inner());
        if b.as_ref().is_none_or(|(p, _)| p != phase) {
            if let Some((_, old)) = b.take() {
                old.finish();
            }
            let pb = ProgressBar::new(total as u64).with_style(style.clone()).with_prefix(phase.to_string());
            *b = Some((phase.to_string(), pb));
        }
        if let Some((_, pb)) = b.as_ref() {
            pb.set_position(done as u64);
        }
    };
    let result = quant::quantize_model(&args.model, out, &recipe, &frames, &progress);
    if let Some((_, pb)) = bar.into_inner().unwrap_or_else(|p| p.into_inner()) {
        pb.finish();
    }
    let report = result?;
    print!("{}", report.table());
    println!(
        "quantized {} -> {}: {} int8 convs, {} kept in f32 ({}), {:.1} MB -> {:.1} MB, output SQNR scores {:.1} dB, boxes {:.1} dB (on {} calibration frames), {:.0} s",
        args.model.display(),
        out.display(),
        report.info.int8_convs,
        report.info.f32_convs.len(),
        if report.info.f32_convs.is_empty() { "none".to_string() } else { report.info.f32_convs.join(", ") },
        report.f32_bytes as f64 / 1e6,
        report.int8_bytes as f64 / 1e6,
        report.output_sqnr.scores_db,
        report.output_sqnr.boxes_db,
        recipe.verify_frames.min(frames.len()),
        report.seconds
    );
    Ok(())
}

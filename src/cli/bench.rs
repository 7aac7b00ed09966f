//! `perch bench pipeline | sustained | cold-start | compare` (library: [`crate::bench`]; the
//! detector alone is `perch bench detect`, in `detect.rs`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::bench::{self, cold, markdown, plots, sustained, sweep, Header};
use crate::paths;

/// Options every pipeline bench shares: the job and where the reports go.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// TOML config (as `perch run --config`); default: the default job.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override one key (`--set detect.imgsz=320`; repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Report folder (JSON + Markdown).
    #[arg(long, default_value = "out/bench")]
    out: PathBuf,
    /// Also draw PNG figures into DIR.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    quiet: bool,
}

impl JobArgs {
    fn load(&self) -> anyhow::Result<crate::config::Config> {
        Ok(paths::load_job(self.config.as_deref(), &self.sets)?.config)
    }
}

/// `perch bench pipeline`: the highest input rate with fewer than --max-drop frames dropped.
#[derive(Args, Debug, Clone)]
pub struct PipelineArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Input rates to run, in order (fps, comma-separated); default: search (double from
    /// --start-fps until a rate fails, then bisect --refine times).
    #[arg(long, value_delimiter = ',')]
    rates: Vec<f64>,
    #[arg(long, default_value_t = 2.5)]
    start_fps: f64,
    /// The search stops here (the peak is then "at least").
    #[arg(long, default_value_t = 160.0)]
    max_fps: f64,
    #[arg(long, default_value_t = 3)]
    refine: u32,
    /// Seconds per rate (the replay loops).
    #[arg(long, default_value_t = 10.0)]
    step_s: f64,
    /// A rate passes below this fraction of dropped frames.
    #[arg(long, default_value_t = 0.05)]
    max_drop: f64,
}

/// `perch bench sustained`: a steady run cut into windows (throughput, latency, clocks,
/// temperatures, energy per frame).
#[derive(Args, Debug, Clone)]
pub struct SustainedArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Length of the run (fractions allowed: 0.5 = 30 s).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Window length in seconds.
    #[arg(long, default_value_t = 60.0)]
    window_s: f64,
    /// Input rate (fps); default: the config's source.fps, else the recording's.
    #[arg(long)]
    rate: Option<f64>,
}

/// `perch bench cold-start`: exec to the first published detection, and its parts.
#[derive(Args, Debug, Clone)]
pub struct ColdStartArgs {
    #[command(flatten)]
    job: JobArgs,
    /// Fresh processes to start, one after the other.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Frames each run replays (paced `max`).
    #[arg(long, default_value_t = 3)]
    frames: u64,
}

fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    ctrlc::set_handler(move || {
        if s.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("interrupt: ending the current step; the report covers the steps run so far");
    })
    .context("installing the Ctrl-C handler")?;
    Ok(stop)
}

fn spinner(quiet: bool, len: Option<u64>, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = match len {
        Some(n) => ProgressBar::new(n).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len}s ({elapsed})").unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner(),
    };
    pb.set_message(what.to_string());
    pb.enable_steady_tick(Duration::from_millis(250));
    pb
}

fn finish_out(job: &JobArgs, json: &Path, md: &Path, text: &str) {
    if !job.quiet {
        eprintln!("wrote {} and {}", json.display(), md.display());
    }
    print!("{text}");
}

pub fn run_pipeline(a: &PipelineArgs) -> anyhow::Result<()> {
    let cfg = a.job.load()?;
    anyhow::ensure!(a.step_s >= 1.0 && a.step_s.is_finite(), "--step-s must be at least 1 second, got {}", a.step_s);
    let header = Header::new(sweep::SCHEMA, &cfg)?;
    let interrupt = interrupt_flag()?;
    let plan = sweep::SweepPlan {
        rates: a.rates.clone(),
        start_fps: a.start_fps,
        max_fps: a.max_fps,
        refine: a.refine,
        step: Duration::from_secs_f64(a.step_s),
        max_drop: a.max_drop,
    };
    let pb = spinner(a.job.quiet, None, "bench pipeline: sweeping input rates");
    let mut b = sweep::sweep(&cfg, &plan, header, &interrupt, &mut |s| {
        pb.println(format!(
            "  {:>6.1} fps in: {:>5} captured, {:>5} published, {:>5.1} % dropped, {:>6.1} fps out",
            s.rate_fps.unwrap_or(0.0),
            s.captured,
            s.published,
            s.drop_fraction * 100.0,
            s.output_fps
        ));
    })?;
    pb.finish_and_clear();
    b.header.finish();
    let md = markdown::pipeline(&b);
    let (json, mdp) = bench::write_report(&a.job.out, "bench_pipeline", &b, &md)?;
    if let Some(dir) = &a.job.plots {
        for p in plots::pipeline_plots(&b, dir)? {
            eprintln!("wrote {}", p.display());
        }
    }
    finish_out(&a.job, &json, &mdp, &md);
    if b.peak_rate_fps.is_none() {
        bail!("no input rate tried dropped fewer than {:.0} % of its frames", a.max_drop * 100.0);
    }
    Ok(())
}

pub fn run_sustained(a: &SustainedArgs) -> anyhow::Result<()> {
    let cfg = a.job.load()?;
    let header = Header::new(sustained::SCHEMA, &cfg)?;
    let interrupt = interrupt_flag()?;
    let total = (a.minutes * 60.0).ceil() as u64;
    let pb = spinner(a.job.quiet, Some(total), "bench sustained");
    let ticker = {
        let (pb, stop) = (pb.clone(), interrupt.clone());
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            while !pb.is_finished() && !stop.load(Ordering::Relaxed) {
                pb.set_position(t0.elapsed().as_secs().min(total));
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let result = sustained::sustained(&cfg, a.minutes, a.window_s, a.rate, header, &interrupt);
    pb.finish_and_clear();
    let _ = ticker.join();
    let mut b = result?;
    b.header.finish();
    let md = markdown::sustained(&b);
    let (json, mdp) = bench::write_report(&a.job.out, "bench_sustained", &b, &md)?;
    if let Some(dir) = &a.job.plots {
        let p = dir.join("sustained_latency_over_time.png");
        plots::latency_over_time(&b.step, &format!("end-to-end latency per frame over {:.1} min", a.minutes), &p)?;
        eprintln!("wrote {}", p.display());
        let p = dir.join("sustained_latency_cdf.png");
        plots::latency_cdf(&b.step, &format!("latency per stage over {:.1} min ({} frames)", a.minutes, b.step.published), &p)?;
        eprintln!("wrote {}", p.display());
    }
    finish_out(&a.job, &json, &mdp, &md);
    Ok(())
}

pub fn run_cold_start(a: &ColdStartArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.frames >= 1, "--frames must be at least 1");
    let cfg = a.job.load()?;
    let header = Header::new(cold::SCHEMA, &cfg)?;
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut args: Vec<String> = Vec::new();
    if let Some(c) = &a.job.config {
        args.extend(["--config".to_string(), c.display().to_string()]);
    }
    for s in &a.job.sets {
        args.extend(["--set".to_string(), s.clone()]);
    }
    let end = cfg.source.start_frame + a.frames;
    args.extend(["--set".into(), "source.pacing=\"max\"".into(), "--set".into(), format!("source.end_frame={end}")]);
    let pb = spinner(a.job.quiet, None, &format!("bench cold-start: {} fresh processes", a.runs));
    let result = cold::cold_start(&exe, &args, a.runs, &a.job.out.join("cold-start-runs"), header);
    pb.finish_and_clear();
    let mut b = result?;
    b.header.finish();
    let md = markdown::cold_start(&b);
    let (json, mdp) = bench::write_report(&a.job.out, "bench_cold_start", &b, &md)?;
    finish_out(&a.job, &json, &mdp, &md);
    Ok(())
}

/// `perch bench compare`: perch f32 and int8 vs ONNX Runtime f32 and static INT8 on the same
/// export, tensors and threads, in interleaved rounds (needs the Python venv with onnxruntime:
/// `bash nodes/detect/scripts/setup-venv.sh`, and the ONNX export: `fetch-fixtures.sh yolov12n`).
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// The f32 model (perch's f32 row, and what the ONNX must be the export of).
    #[arg(long, default_value = "models/yolov12n")]
    model: PathBuf,
    /// perch's int8 model (`perch model quantize`); `none` for f32 only.
    #[arg(long, default_value = "models/yolov12n-int8")]
    int8: PathBuf,
    /// The same model as an ONNX export (ONNX Runtime's rows).
    #[arg(long, default_value = ".cache/fixtures/yolov12n.onnx")]
    onnx: PathBuf,
    /// Python with onnxruntime [default: $PERCH_PYTHON, else .venv-detect/bin/python in the perch home].
    #[arg(long)]
    python: Option<PathBuf>,
    /// ONNX Runtime's static INT8 calibration method(s) (minmax, percentile, entropy).
    #[arg(long, default_value = "minmax")]
    ort_method: String,
    /// Input sizes (the shipped ONNX export is fixed at 640; other sizes need a dynamic export).
    #[arg(long, value_delimiter = ',', default_value = "640")]
    imgsz: Vec<u32>,
    /// Threads for each runtime.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed frames per variant and size (split over the rounds).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Frames: the first --calib-frames calibrate ONNX Runtime's INT8; --agreement-frames after
    /// them score each variant's agreement with perch's f32.
    #[arg(long, default_value = "datasets/vtest/img1")]
    frames: PathBuf,
    #[arg(long, default_value_t = 64)]
    calib_frames: usize,
    #[arg(long, default_value_t = 10)]
    agreement_frames: usize,
    #[arg(long, default_value = "out/bench-compare")]
    out: PathBuf,
    /// Also draw the latency-vs-agreement scatter into DIR.
    #[arg(long, value_name = "DIR")]
    plots: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
}

fn in_home(p: &Path) -> anyhow::Result<PathBuf> {
    if p.exists() || p.is_absolute() {
        return Ok(p.to_path_buf());
    }
    crate::home::find(p).map_err(anyhow::Error::msg)
}

pub fn run_compare(a: &CompareArgs) -> anyhow::Result<()> {
    use perch_detect::eval::frames::FrameSelect;
    use perch_detect::eval::{eval_quant, EvalQuantOptions, VariantSpec};
    let model = in_home(&a.model)?;
    let onnx = in_home(&a.onnx).map_err(|e| anyhow::anyhow!("--onnx: {e} (fetch it: bash nodes/detect/scripts/fetch-fixtures.sh yolov12n)"))?;
    let python = match a.python.clone().or_else(|| std::env::var_os("PERCH_PYTHON").map(PathBuf::from)) {
        Some(p) => p,
        None => in_home(Path::new(".venv-detect/bin/python"))
            .map_err(|e| anyhow::anyhow!("no Python with onnxruntime: {e} (set it up: bash nodes/detect/scripts/setup-venv.sh, or pass --python)"))?,
    };
    let script = in_home(Path::new("nodes/detect/scripts/ort_int8.py"))?;
    let frames = in_home(&a.frames)?;
    for p in [&model, &onnx, &python, &script, &frames] {
        anyhow::ensure!(!p.display().to_string().contains(char::is_whitespace), "{}: paths with spaces are not supported by the peer command", p.display());
    }
    let mut variants = vec![VariantSpec::F32];
    if a.int8.as_os_str() != "none" {
        let dir = in_home(&a.int8).map_err(|e| anyhow::anyhow!("--int8: {e} (make one with `perch model quantize`, or --int8 none)"))?;
        variants.push(VariantSpec::Dir { name: "int8".into(), dir });
    }
    let peer = format!(
        "{} {} serve --onnx {} --method {} --threads {} --cache {}",
        python.display(),
        script.display(),
        onnx.display(),
        a.ort_method,
        a.threads,
        a.out.join("ort-int8-cache").display()
    );
    let opts = EvalQuantOptions {
        model,
        variants,
        calib: Some(frames.clone()),
        calib_select: FrameSelect { skip: 0, every: 1, limit: a.calib_frames },
        frames,
        frames_select: FrameSelect { skip: a.calib_frames, every: 1, limit: a.agreement_frames },
        imgsz: a.imgsz.clone(),
        runs: a.runs,
        rounds: a.rounds,
        warmup: a.warmup,
        threads: a.threads,
        conf: 0.001,
        reference_conf: 0.25,
        iou: 0.7,
        max_det: 300,
        work_dir: a.out.join("variants"),
        peer: Some(peer),
        progress: !a.quiet,
    };
    let table = eval_quant(&opts)?;
    table.write(&a.out)?;
    let b = bench::compare::CompareBench {
        schema: bench::compare::SCHEMA,
        command: std::env::args().collect::<Vec<_>>().join(" "),
        ratios: bench::compare::ratios(&table),
        table,
    };
    let md = bench::compare::markdown(&b);
    let (json, mdp) = bench::write_report(&a.out, "bench_compare", &b, &md)?;
    if let Some(dir) = &a.plots {
        let p = dir.join("compare_scatter.png");
        perch_detect::eval::plot::write_png(&b.table, &p)?;
        eprintln!("wrote {}", p.display());
    }
    if !a.quiet {
        eprintln!("wrote {} and {}", json.display(), mdp.display());
    }
    print!("{md}");
    anyhow::ensure!(!b.ratios.is_empty(), "no perch row had an ONNX Runtime row to compare with");
    Ok(())
}

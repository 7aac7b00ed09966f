//! `perch model ...`: model files.

use std::path::PathBuf;

use clap::Args;

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
    let meta = perch_detect::import::import_onnx(&args.onnx, &args.out, args.force)?;
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

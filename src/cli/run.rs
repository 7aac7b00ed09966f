//! `perch run`: assemble the pipeline from a config, run it, print and write the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use perch_capture::{DeviceSpec, SourceConfig, SourceKind};

use super::run_flags::{Shorthands, ViewFlags};
use crate::{assemble, jsonl, outputs, paths};

#[derive(Args)]
pub struct RunArgs {
    /// TOML config (keys: configs/README.md): a file, or a shipped config by name (`nano`); without
    /// it, the default job (the built-in defaults, = configs/replay.toml). Relative paths inside a
    /// config file are relative to the file's folder.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Where frames come from, replacing `[source]`'s kind and device/folder: a camera index (`0`), a
    /// camera device (`/dev/video2`, `/dev/v4l/by-id/...`) or a folder of frames (`datasets/vtest`).
    /// Keys of the other kind are dropped; `--set source.*` still applies on top.
    #[arg(long, value_name = "SOURCE")]
    source: Option<String>,
    /// Override one key: `--set source.pacing=max` (repeatable; values are TOML).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the run report as JSON (schema `perch.report/2`, see README).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write every published frame's detections as JSON lines (seq, source index/time, fresh, detection
    /// age, boxes in source pixels, class, score, track id, predicted and age per box).
    #[arg(long, value_name = "FILE")]
    detections: Option<PathBuf>,
    #[command(flatten)]
    shorthands: Shorthands,
    #[command(flatten)]
    view: ViewFlags,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    // First: a Ctrl-C while the model loads or warms up still ends the run with a report.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting without a report (result files keep their whole lines)");
                outputs::exit_between_writes(130);
            }
            eprintln!("interrupt: stopping the source, counting frames in flight as `shutdown`");
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    let sets = [args.sets.clone(), args.shorthands.sets(&args.sets)?].concat();
    let mut cfg = paths::load_job(args.config.as_deref(), &sets)?.config;
    if let Some(value) = &args.source {
        apply_source(&mut cfg.source, infer_source(value)?);
    }
    // Result destinations are created before anything long starts.
    outputs::check_distinct(args.report.as_deref(), args.detections.as_deref())?;
    let report_file = args.report.as_deref().map(outputs::ReportFile::open).transpose()?;
    let detections = args.detections.as_deref().map(jsonl::JsonlTap::create).transpose()?;
    let mut pipeline = assemble::assemble(&cfg)?;
    pipeline.taps.extend(args.view.taps(&cfg)?);
    if let Some(tap) = detections {
        pipeline.taps.push(Box::new(tap));
    }
    let report = pipeline.run(stop)?;
    print!("{}", report.table());
    let all_written = outputs::finish(&report, report_file);
    args.view.check(&report)?;
    if !report.invariant_ok {
        eprintln!("error: frame accounting does not balance: a frame vanished or ended twice");
        return Ok(ExitCode::from(3));
    }
    if !all_written {
        return Ok(ExitCode::from(outputs::EXIT_OUTPUT_LOST));
    }
    Ok(ExitCode::SUCCESS)
}

/// What a `--source` value names. The one place that reads it: video files and stream URLs are
/// further variants here.
#[derive(Debug, PartialEq)]
enum SourceArg {
    Camera(DeviceSpec),
    Folder(PathBuf),
}

fn infer_source(value: &str) -> anyhow::Result<SourceArg> {
    if value.is_empty() {
        bail!("--source needs a value: a camera index (0), a device (/dev/video0) or a folder of frames");
    }
    if value.bytes().all(|b| b.is_ascii_digit()) || value.starts_with("/dev/") {
        return Ok(SourceArg::Camera(DeviceSpec::parse(value)));
    }
    let path = Path::new(value);
    if leads_to_a_device(path) {
        return Ok(SourceArg::Camera(DeviceSpec::Path(value.to_string())));
    }
    if path.is_dir() {
        return Ok(SourceArg::Folder(path.to_path_buf()));
    }
    if path.exists() {
        bail!("--source {value}: is a file; perch reads a camera (0, /dev/video0) or a folder of frames (video files are not supported yet)");
    }
    bail!("--source {value}: no such folder, and not a camera (an index like 0, or a /dev/video* device)");
}

/// A character device, or a link into /dev (a stable camera name kept elsewhere, e.g. by a udev rule).
fn leads_to_a_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else { return false };
    if meta.file_type().is_char_device() {
        return true;
    }
    meta.file_type().is_symlink()
        && std::fs::read_link(path).is_ok_and(|t| t.starts_with("/dev/") || (t.is_relative() && path.starts_with("/dev/")))
}

/// Replace the source's kind and locator. Keys only the other kind reads go back to their defaults
/// (a replay's `loop` on a camera, a camera's `width` on a folder); shared keys (`fps`, `end_frame`)
/// and keys of the new kind stay, so `--set source.width=640 --source 0` works in either order.
fn apply_source(src: &mut SourceConfig, arg: SourceArg) {
    let defaults = SourceConfig::default();
    match arg {
        SourceArg::Camera(device) => {
            src.kind = SourceKind::Camera;
            src.device = Some(device);
            src.path = defaults.path;
            src.pacing = defaults.pacing;
            src.looping = defaults.looping;
            src.start_frame = defaults.start_frame;
        }
        SourceArg::Folder(path) => {
            src.kind = SourceKind::Replay;
            src.path = path;
            src.device = None;
            src.width = None;
            src.height = None;
            src.format = None;
            src.timeout_ms = None;
            src.reconnect_ms = None;
            src.reconnect = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kind_is_inferred_from_the_value() {
        assert_eq!(infer_source("0").unwrap(), SourceArg::Camera(DeviceSpec::Index(0)));
        assert_eq!(infer_source("/dev/video2").unwrap(), SourceArg::Camera(DeviceSpec::Path("/dev/video2".into())));
        let by_id = "/dev/v4l/by-id/usb-046d_C920-video-index0";
        assert_eq!(infer_source(by_id).unwrap(), SourceArg::Camera(DeviceSpec::Path(by_id.into())));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/vtest");
        assert_eq!(infer_source(dir).unwrap(), SourceArg::Folder(dir.into()));
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
        assert!(infer_source(file).unwrap_err().to_string().contains("is a file"));
        let e = infer_source("datasets/nope").unwrap_err().to_string();
        assert!(e.contains("no such folder") && e.contains("datasets/nope"), "{e}");
        assert!(infer_source("").is_err());
        let link = std::env::temp_dir().join(format!("perch-source-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("/dev/video4", &link).unwrap();
        let value = link.display().to_string();
        assert_eq!(infer_source(&value).unwrap(), SourceArg::Camera(DeviceSpec::Path(value.clone())));
        std::fs::remove_file(&link).unwrap();
    }

    #[test]
    fn switching_kind_drops_the_other_kinds_keys() {
        let mut src = SourceConfig { looping: true, start_frame: 5, fps: Some(5.0), reconnect_ms: Some(50), ..Default::default() };
        apply_source(&mut src, SourceArg::Camera(DeviceSpec::Index(1)));
        assert_eq!((src.kind, src.device.clone(), src.looping, src.start_frame), (SourceKind::Camera, Some(DeviceSpec::Index(1)), false, 0));
        assert_eq!((src.fps, src.reconnect_ms), (Some(5.0), Some(50)), "shared and camera keys set with --set stay");
        src.width = Some(640);
        src.height = Some(480);
        apply_source(&mut src, SourceArg::Camera(DeviceSpec::Index(2)));
        assert_eq!(src.width, Some(640), "same kind: the camera keys stay");
        apply_source(&mut src, SourceArg::Folder("datasets/vtest".into()));
        assert_eq!((src.kind, src.device.clone(), src.width, src.reconnect_ms), (SourceKind::Replay, None, None, None));
        assert_eq!(src.fps, Some(5.0));
    }
}

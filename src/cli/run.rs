//! `perch run`: assemble the pipeline from a config, run it, print and write the report.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;
use perch_capture::{DeviceSpec, SourceConfig, SourceKind};

use crate::{assemble, config, jsonl};

#[derive(Args)]
pub struct RunArgs {
    /// TOML config (keys: configs/README.md); without it, the built-in defaults of every key.
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
    /// Write the run report as JSON (schema `perch.report/1`, see README).
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Write every published frame's detections as JSON lines (seq, source index/time, boxes in source
    /// pixels, class, score, track id).
    #[arg(long, value_name = "FILE")]
    detections: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut cfg: config::Config = perch_pipeline::config::load(args.config.as_deref(), &args.sets)?;
    if let Some(value) = &args.source {
        apply_source(&mut cfg.source, infer_source(value)?);
    }
    let mut pipeline = assemble::assemble(&cfg)?;
    if let Some(path) = &args.detections {
        pipeline.taps.push(Box::new(jsonl::JsonlTap::create(path)?));
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting without a report");
                std::process::exit(130);
            }
            eprintln!("interrupt: stopping the source, counting frames in flight as `shutdown`");
        })
        .context("installing the Ctrl-C/SIGTERM handler")?;
    }
    let report = pipeline.run(stop)?;
    print!("{}", report.table());
    if let Some(path) = &args.report {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing report {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    if !report.invariant_ok {
        eprintln!("error: frame accounting does not balance: a frame vanished or ended twice");
        return Ok(ExitCode::from(3));
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

//! Fuzz targets: one function per parser of outside input, each the exact code path perch runs.
//!
//! A target takes arbitrary bytes and must not panic, abort or allocate without bound; where a
//! property is known it asserts it (a decoded frame has the size it claims, within the limit; the
//! SIMD letterbox equals the scalar reference). Drivers: `perch-fuzz` (stable: corpus replay and a
//! seeded mutation loop, used by CI) and `perch-fuzz-afl` (AFL++ via `cargo afl`, coverage-guided).
//!
//! Adding a target is one function and one [`TARGETS`] entry (plus seeds in `corpus/<name>/`):
//! e.g. the camera source's MJPEG frames already go through `image` (`decode_jpeg_into`), its raw
//! YUYV/NV12 payloads through `raw_frame`; a video container parser or the quantized model format
//! (see [`model`]) get their own entry.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use perch_pipeline::{ImageBuf, PixelFormat, TensorBuf};
use perch_preprocess::{DecodeLimits, ImageDecoder};

// The binary's config (the `[pipeline]`, `[source]`, ... sections) and its stage table, compiled here
// as they are in `perch` (without the ros2/rerun features: those sections are then plain tables).
#[allow(unexpected_cfgs, dead_code)]
#[path = "../../src/config.rs"]
mod config;
#[allow(unexpected_cfgs, dead_code)]
#[path = "../../src/assemble.rs"]
mod assemble;

pub mod mutate;
pub mod seeds;

/// One fuzz target.
pub struct Target {
    pub name: &'static str,
    /// What it feeds the bytes to.
    pub about: &'static str,
    pub run: fn(&[u8]),
    /// Longest input worth trying (the mutators stay below it).
    pub max_len: usize,
}

/// Every target; `corpus/<name>/` holds its seeds, `regressions/<name>/` inputs that once failed.
pub const TARGETS: &[Target] = &[
    Target { name: "image", about: "JPEG/PNG bytes -> ImageDecoder (replay source, perch detect, MJPEG) -> letterbox", run: image, max_len: 64 << 10 },
    Target { name: "raw_frame", about: "camera payloads (RGB/BGR/RGBA/GRAY/YUYV/NV12 + size) -> fused letterbox vs scalar reference", run: raw_frame, max_len: 16 << 10 },
    Target { name: "seqinfo", about: "seqinfo.ini text -> SeqInfo::parse + consistency checks", run: seqinfo, max_len: 4 << 10 },
    Target { name: "config", about: "TOML config + `--set` lines (after a `%%` line) -> Config, validate, stage table", run: config, max_len: 8 << 10 },
    Target { name: "mot", about: "MOTChallenge text -> parse_mot, format round trip, evaluate", run: mot, max_len: 8 << 10 },
    Target { name: "onnx", about: "ONNX protobuf -> the importer (wire check, decode, structure, tensors)", run: onnx, max_len: 64 << 10 },
    Target { name: "model", about: "model.json, NUL, model.safetensors -> ModelMeta::parse + YoloModel::load_from_bytes", run: model, max_len: 64 << 10 },
];

pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The largest frame the image target decodes (the production default is 8K; a lower limit keeps
/// every execution fast, and the same code enforces both).
pub const FUZZ_MAX_PIXELS: u64 = 4 << 20;

fn image(data: &[u8]) {
    let limits = DecodeLimits { max_pixels: FUZZ_MAX_PIXELS };
    let mut decoder = ImageDecoder::new(limits);
    let mut out = ImageBuf::default();
    match decoder.decode(data, &mut out) {
        Ok(()) => {
            assert_eq!(out.format, PixelFormat::Rgb8);
            let pixels = out.width as u64 * out.height as u64;
            assert!(pixels > 0 && pixels <= FUZZ_MAX_PIXELS, "decoded {}x{}", out.width, out.height);
            assert_eq!(out.data.len() as u64, pixels * 3);
            // What the pipeline does next with a decoded frame.
            let mut t = TensorBuf::default();
            perch_preprocess::letterbox_into(&out, 64, 64, &mut t).expect("a decoded frame letterboxes");
        }
        Err(e) => {
            let msg = format!("{e:#}");
            assert!(!msg.contains("panicked"), "a decoder panicked: {msg}");
        }
    }
    let _ = perch_preprocess::jpeg_check::check_complete(data);
}

fn raw_frame(data: &[u8]) {
    if data.len() < 6 {
        return;
    }
    const FORMATS: [PixelFormat; 6] =
        [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Gray8, PixelFormat::Yuyv, PixelFormat::Nv12];
    let format = FORMATS[data[0] as usize % FORMATS.len()];
    let width = u16::from_le_bytes([data[1], data[2]]) as u32 % 1025;
    let height = u16::from_le_bytes([data[3], data[4]]) as u32 % 1025;
    let dst = [32u32, 64, 96, 320][data[5] as usize % 4];
    let img = ImageBuf { format, width, height, data: data[6..].to_vec() };
    let mut fast = TensorBuf::default();
    let mut reference = TensorBuf::default();
    let a = perch_preprocess::letterbox_into(&img, dst, dst, &mut fast);
    let b = perch_preprocess::reference::letterbox_into_reference(&img, dst, dst, &mut reference);
    assert_eq!(a.is_ok(), b.is_ok(), "fused and reference disagree on {format:?} {width}x{height} ({} bytes): {a:?} vs {b:?}", img.data.len());
    if a.is_ok() {
        assert_eq!(img.data.len(), format.buffer_len(width, height), "accepted a buffer of the wrong length");
        assert_eq!(fast.data.len(), reference.data.len());
        for (i, (x, y)) in fast.data.iter().zip(&reference.data).enumerate() {
            assert!(x.is_finite() && (-1e-3..=1.001).contains(x), "value {x} at {i}");
            assert!((x - y).abs() <= 0.5 / 255.0, "fused {x} vs reference {y} at {i} ({format:?} {width}x{height} -> {dst})");
        }
    }
}

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

fn seqinfo(data: &[u8]) {
    let path = Path::new("fuzz/seqinfo.ini");
    if let Ok(seq) = perch_capture::SeqInfo::parse(&text(data), path) {
        let first = seq.width.zip(seq.height);
        let _ = perch_capture::replay::seqinfo_mismatches(&seq, path, Path::new("fuzz/img1"), 100, first);
        if let Some(f) = seq.frame_rate {
            assert!(f.is_finite() && f > 0.0, "frameRate {f} accepted");
        }
    }
}

fn config(data: &[u8]) {
    let all = text(data);
    let (file, sets) = match all.split_once("\n%%\n") {
        Some((file, sets)) => (file, sets.lines().map(str::to_string).collect::<Vec<_>>()),
        None => (&*all, Vec::new()),
    };
    let Ok(cfg) = perch_pipeline::config::load_str::<config::Config>(Some((file, "fuzz.toml")), &sets) else { return };
    let _ = assemble::stage_settings(&cfg);
    if cfg.validate().is_ok() {
        // What a valid config turns into must not panic: budgets, deadlines, the pacer's period.
        let now = std::time::Instant::now();
        let _ = now + cfg.pipeline.budget();
        for (_, rt) in assemble::stage_settings(&cfg).unwrap_or_default() {
            if let Some(b) = rt.budget() {
                let _ = now + b;
            }
        }
        if let Some(fps) = cfg.source.fps {
            // The replay's pacer on a virtual clock: a few frames due on the grid.
            let clock = std::sync::Arc::new(perch_pipeline::VirtualClock::default());
            let mut pacer = perch_capture::Pacer::new(perch_capture::Pacing::Realtime, fps, clock);
            for _ in 0..3 {
                pacer.wait_next();
            }
            let _ = std::time::Duration::from_secs_f64(1.0 / fps);
        }
        let _ = cfg.track.params(cfg.source.fps).expect("validated track config");
        let _ = cfg.detect.effective_threads();
    }
}

fn mot(data: &[u8]) {
    let Ok(rows) = perch_track::mot::parse_mot(&text(data), "fuzz.txt") else { return };
    let again = perch_track::mot::parse_mot(&perch_track::mot::format_mot(&rows), "formatted")
        .expect("what format_mot writes parses back");
    assert_eq!(again.len(), rows.len());
    for (a, b) in rows.iter().zip(&again) {
        assert_eq!((a.frame, a.id), (b.frame, b.id));
    }
    if rows.len() <= 300 {
        let _ = perch_track::mot::evaluate(&rows, &rows, &perch_track::mot::MotOptions::default());
    }
}

fn onnx(data: &[u8]) {
    let _ = perch_detect::import::read_onnx_bytes(data, Path::new("fuzz.onnx"));
}

/// `model.json` text, a NUL byte, then `model.safetensors` bytes. Quantized models: when their
/// format lands, dispatch here on `meta` (e.g. a `quantization` field) to their loader, so this
/// target covers them with the same corpus.
fn model(data: &[u8]) {
    let (json, weights) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(meta) = perch_detect::ModelMeta::parse(&text(json), Path::new("fuzz/model.json")) else { return };
    let _ = perch_detect::model::YoloModel::load_from_bytes(
        weights.to_vec(),
        meta.architecture,
        meta.scale,
        meta.num_classes,
        &candle_core::Device::Cpu,
    );
}

/// Run `target` on `data`, turning a panic into `Err(message)` (drivers that must keep going).
pub fn run_caught(target: &Target, data: &[u8]) -> Result<(), String> {
    catch_unwind(AssertUnwindSafe(|| (target.run)(data))).map_err(|p| {
        p.downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())
    })
}

/// Cap the address space (as `afl-fuzz -m` does), so an unbounded allocation aborts the run
/// instead of swapping the machine.
pub fn limit_memory(bytes: u64) {
    let lim = libc::rlimit { rlim_cur: bytes as libc::rlim_t, rlim_max: bytes as libc::rlim_t };
    // SAFETY: setrlimit reads the struct we pass; lowering our own limit is always permitted.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &lim);
    }
}

//! The detector benchmark behind `perch bench detect`: model load time, warm-up, per-frame
//! latency percentiles and peak memory.

use std::path::PathBuf;
use std::time::Instant;

use perch_pipeline::{ImageBuf, PixelFormat, TensorBuf};
use serde::Serialize;

use crate::config::{DetectConfig, DeviceKind};
use crate::detector::Detector;
use crate::predict::load_image;

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub model: PathBuf,
    pub imgsz: u32,
    pub device: DeviceKind,
    /// CPU threads (0: all cores).
    pub threads: usize,
    /// Timed frames.
    pub runs: usize,
    /// Untimed frames first.
    pub warmup: usize,
    /// Input image (default: the first vtest frame when present, else a mid-grey frame).
    pub image: Option<PathBuf>,
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

pub fn bench(opts: &BenchOptions) -> anyhow::Result<BenchReport> {
    anyhow::ensure!(opts.runs >= 1, "--runs must be at least 1");
    let config = DetectConfig {
        model: opts.model.clone(),
        imgsz: opts.imgsz,
        device: opts.device,
        threads: opts.threads,
        ..Default::default()
    };
    let t = Instant::now();
    let mut detector = Detector::load(&config)?;
    let load_ms = t.elapsed().as_secs_f64() * 1e3;

    let default_image = PathBuf::from("datasets/vtest/img1/000001.jpg");
    let image_path = opts.image.clone().or_else(|| default_image.exists().then_some(default_image));
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
    for i in 0..opts.warmup {
        let t = detector.detect(&tensor, &lb, &mut dets)?;
        if i == 0 {
            first_frame_ms = Some((t.forward + t.postprocess).as_secs_f64() * 1e3);
        }
    }
    let (mut fwd, mut post, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..opts.runs {
        let t = detector.detect(&tensor, &lb, &mut dets)?;
        fwd.push(t.forward.as_secs_f64() * 1e3);
        post.push(t.postprocess.as_secs_f64() * 1e3);
        total.push((t.forward + t.postprocess).as_secs_f64() * 1e3);
    }
    Ok(BenchReport {
        model: opts.model.display().to_string(),
        architecture: format!("{:?}{:?}", detector.meta().architecture, detector.meta().scale).to_lowercase(),
        imgsz: s,
        device: format!("{:?}", opts.device).to_lowercase(),
        threads: detector.threads(),
        image: image_path.map_or_else(|| "(grey 768x576)".to_string(), |p| p.display().to_string()),
        load_ms,
        warmup: opts.warmup,
        first_frame_ms,
        forward_ms: Stats::from_ms(fwd),
        postprocess_ms: Stats::from_ms(post),
        latency_ms: Stats::from_ms(total),
        detections: dets.len(),
        peak_rss_mib: peak_rss_mib(),
    })
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

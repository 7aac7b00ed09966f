//! The accuracy–latency trade-off table of `perch eval quant`: its JSON schema (`perch.eval_quant/1`),
//! latency statistics, and the Markdown rendering.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::frames::FrameSetInfo;

pub const SCHEMA: &str = "perch.eval_quant/1";

/// Latency statistics in milliseconds (nearest-rank percentiles over the sorted samples).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyStats {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub p99: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

impl LatencyStats {
    /// None for no samples.
    pub fn from_ms(mut v: Vec<f64>) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let rank = |p: f64| v[((p / 100.0 * n as f64).ceil() as usize).clamp(1, n) - 1];
        let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(Self { n, median, p95: rank(95.0), p99: rank(99.0), min: v[0], max: v[n - 1], mean: v.iter().sum::<f64>() / n as f64 })
    }
}

/// Who ran a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    /// perch's own detector (`Detector`), network + decode + NMS timed.
    Perch,
    /// The peer process (ONNX Runtime): the network alone timed.
    Peer,
}

/// Agreement of a variant's detections with the reference's (COCO mAP, reference as ground truth).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agreement {
    /// None when the reference found nothing on any frame.
    pub map50_95: Option<f64>,
    pub map50: Option<f64>,
    pub map75: Option<f64>,
    pub frames: usize,
    /// Reference boxes (ground truth) over all frames.
    pub gt_boxes: usize,
    /// Variant boxes (at the low `conf`) over all frames.
    pub dt_boxes: usize,
}

/// One variant at one input size.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub variant: String,
    pub runtime: Runtime,
    /// "f32", "f16", "int8", ... (as the model says).
    pub precision: String,
    /// Model directory (perch) or ONNX file (peer).
    pub path: String,
    pub imgsz: u32,
    /// Bytes on disk: the model directory's files, or the ONNX file.
    pub size_bytes: u64,
    /// Cold start: reading the model and building the network / session.
    pub load_ms: f64,
    /// Per frame: network + decode + NMS for perch; the network alone for the peer.
    pub latency_ms: Option<LatencyStats>,
    /// perch only: the network alone (upload, forward, download).
    pub forward_ms: Option<LatencyStats>,
    pub agreement: Option<Agreement>,
    /// Derived: the reference's median latency / this row's, at the same size (>1: faster).
    pub speedup_vs_reference: Option<f64>,
    /// How the variant was made (recipe), or why a value is missing.
    #[serde(default)]
    pub note: String,
}

/// How detections were produced and scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Variant whose detections are the ground truth.
    pub reference: String,
    /// The reference's detections at this score threshold are the ground truth.
    pub reference_conf: f32,
    /// Every variant's detections at this threshold are scored.
    pub conf: f32,
    pub iou: f32,
    pub max_det: usize,
    /// pycocotools' maxDets used for the mAP (= max_det).
    pub map_max_dets: usize,
    pub threads: usize,
    pub runs: usize,
    pub rounds: usize,
    pub warmup: usize,
    /// The frame every latency sample is taken on.
    pub latency_frame: String,
    /// The waits for idle CPUs before every variant's round (absent in tables from before them).
    #[serde(default)]
    pub settle: Option<crate::eval::settle::SettleStats>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    pub cpu: String,
    pub logical_cpus: usize,
    /// /proc/loadavg (1, 5, 15 min) when the run started and ended: other work on the machine.
    pub loadavg_start: Option<[f64; 3]>,
    pub loadavg_end: Option<[f64; 3]>,
}

impl Machine {
    pub fn probe() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).map(|s| s.trim().to_string()))
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        Self { cpu, logical_cpus: std::thread::available_parallelism().map_or(1, |n| n.get()), loadavg_start: loadavg(), loadavg_end: None }
    }
}

pub fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|x| x.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// A variant (or size) that produced no row, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Skipped {
    pub variant: String,
    pub imgsz: Option<u32>,
    pub reason: String,
}

/// The whole report (`--out DIR/eval_quant.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuantTable {
    pub schema: String,
    pub perch_version: String,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    pub model: String,
    pub calibration: Option<FrameSetInfo>,
    pub heldout: FrameSetInfo,
    /// Held-out frames that could not be decoded (skipped, not scored).
    pub heldout_unreadable: Vec<String>,
    pub protocol: Protocol,
    pub machine: Machine,
    /// The peer process, if any (its command and runtime version).
    pub peer: Option<serde_json::Value>,
    pub rows: Vec<Row>,
    pub skipped: Vec<Skipped>,
}

impl QuantTable {
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let t: QuantTable = serde_json::from_str(&text).with_context(|| format!("{}: not a {SCHEMA} report", path.display()))?;
        anyhow::ensure!(t.schema == SCHEMA, "{}: schema {:?}, this build reads {SCHEMA}", path.display(), t.schema);
        Ok(t)
    }

    /// The reference row at a size.
    pub fn reference(&self, imgsz: u32) -> Option<&Row> {
        self.rows.iter().find(|r| r.variant == self.protocol.reference && r.imgsz == imgsz)
    }

    /// Fill `speedup_vs_reference` from the medians (derived).
    pub fn derive_speedups(&mut self) {
        let refs: Vec<(u32, f64)> = self
            .rows
            .iter()
            .filter(|r| r.variant == self.protocol.reference)
            .filter_map(|r| Some((r.imgsz, r.latency_ms.as_ref()?.median)))
            .collect();
        for r in &mut self.rows {
            let base = refs.iter().find(|(s, _)| *s == r.imgsz).map(|x| x.1);
            r.speedup_vs_reference = match (base, &r.latency_ms) {
                (Some(b), Some(l)) if l.median > 0.0 => Some(b / l.median),
                _ => None,
            };
        }
    }

    /// The Markdown table (and the lines that say what it measured).
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let p = &self.protocol;
        s.push_str(&format!(
            "Agreement mAP: each variant's detections (conf {}, max_det {}) scored with COCO mAP (maxDets {}) against `{}`'s detections (conf {}) as ground truth, at the same input size.\n",
            p.conf, p.max_det, p.map_max_dets, p.reference, p.reference_conf
        ));
        s.push_str(&format!(
            "Held-out frames: {} ({} frames, {} .. {}, every {}, skip {}).",
            self.heldout.dir, self.heldout.count, self.heldout.first, self.heldout.last, self.heldout.every, self.heldout.skip
        ));
        match &self.calibration {
            Some(c) => s.push_str(&format!(" Calibration frames: {} ({} frames, {} .. {}); disjoint by content.\n", c.dir, c.count, c.first, c.last)),
            None => s.push_str(" No calibration frames (no variant needed them).\n"),
        }
        let la = |l: &Option<[f64; 3]>| l.map_or("?".to_string(), |l| format!("{:.2}", l[0]));
        s.push_str(&format!(
            "Latency: {} threads, {} timed frames per variant in {} interleaved rounds after {} warm-up, on {}; {} ({} logical CPUs), load average {} at the start, {} at the end.\n\n",
            p.threads, p.runs, p.rounds, p.warmup, p.latency_frame, self.machine.cpu, self.machine.logical_cpus,
            la(&self.machine.loadavg_start), la(&self.machine.loadavg_end)
        ));
        if let Some(w) = &p.settle {
            s.pop();
            s.push_str(&format!(
                "Before every variant's round perch waited for both runtimes' threads to go idle (ONNX Runtime's threads spin ~40 ms after a run): {} waits, median {:.0} ms, max {:.0} ms, {} cut off at 2 s.\n\n",
                w.waits, w.median_wait_ms, w.max_wait_ms, w.timed_out
            ));
        }
        s.push_str("| variant | runtime | imgsz | size (MiB) | load (ms) | median (ms) | p95 | p99 | n | speed-up vs ref (derived) | mAP50-95 | mAP50 |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        let f = |v: Option<f64>, d: usize| v.map_or("–".to_string(), |v| format!("{v:.d$}"));
        for r in &self.rows {
            let l = r.latency_ms.as_ref();
            let a = r.agreement.as_ref();
            s.push_str(&format!(
                "| {} | {} | {} | {:.2} | {:.0} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.variant,
                match r.runtime {
                    Runtime::Perch => "perch",
                    Runtime::Peer => "peer",
                },
                r.imgsz,
                r.size_bytes as f64 / (1024.0 * 1024.0),
                r.load_ms,
                f(l.map(|l| l.median), 1),
                f(l.map(|l| l.p95), 1),
                f(l.map(|l| l.p99), 1),
                l.map_or("–".into(), |l| l.n.to_string()),
                f(r.speedup_vs_reference, 2),
                f(a.and_then(|a| a.map50_95), 4),
                f(a.and_then(|a| a.map50), 4),
            ));
        }
        for r in self.rows.iter().filter(|r| !r.note.is_empty()) {
            s.push_str(&format!("\n- `{}` @{}: {}", r.variant, r.imgsz, r.note));
        }
        for k in &self.skipped {
            s.push_str(&format!(
                "\n- skipped `{}`{}: {}",
                k.variant,
                k.imgsz.map_or(String::new(), |z| format!(" @{z}")),
                k.reason
            ));
        }
        if !self.heldout_unreadable.is_empty() {
            s.push_str(&format!("\n- {} held-out frames could not be decoded and were skipped: {}", self.heldout_unreadable.len(), self.heldout_unreadable.join(", ")));
        }
        s.push('\n');
        s
    }

    /// Writes `eval_quant.json` and `eval_quant.md` into `dir` (each through a temporary name).
    pub fn write(&self, dir: &Path) -> anyhow::Result<(std::path::PathBuf, std::path::PathBuf)> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = dir.join("eval_quant.json");
        let md = dir.join("eval_quant.md");
        write_atomic(&json, (serde_json::to_string_pretty(self)? + "\n").as_bytes())?;
        write_atomic(&md, self.markdown().as_bytes())?;
        Ok((json, md))
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_nearest_rank() {
        let s = LatencyStats::from_ms((1..=100).map(f64::from).collect()).unwrap();
        assert_eq!((s.n, s.median, s.p95, s.p99, s.min, s.max, s.mean), (100, 50.5, 95.0, 99.0, 1.0, 100.0, 50.5));
        let s = LatencyStats::from_ms(vec![3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.p99), (2.0, 3.0));
        assert!(LatencyStats::from_ms(Vec::new()).is_none());
    }
}

//! `perch bench compare`: perch (f32 and the shipped int8 model) against ONNX Runtime (f32 and
//! its static INT8) on the same export, the same input tensors and the same threads. It is
//! `perch eval quant` with a peer: every round runs every variant in turn, so the ratios come
//! from interleaved rounds in one invocation; agreement mAP on a few held-out frames comes along.
//! The ratio is perch's median per-frame latency over ONNX Runtime's at the same precision and
//! size (network + decode + NMS for perch, the network alone for ONNX Runtime: it favours ONNX
//! Runtime by perch's ~1 ms of postprocessing).

use std::fmt::Write;

use perch_detect::eval::table::{QuantTable, Row, Runtime};
use serde::Serialize;

pub const SCHEMA: &str = "perch.bench_compare/1";

#[derive(Debug, Serialize)]
pub struct Ratio {
    pub precision: String,
    pub imgsz: u32,
    pub perch_variant: String,
    pub peer_variant: String,
    pub perch_median_ms: f64,
    pub peer_median_ms: f64,
    pub perch_p99_ms: f64,
    pub peer_p99_ms: f64,
    pub n_perch: usize,
    pub n_peer: usize,
    /// perch / ONNX Runtime (< 1: perch faster).
    pub ratio: f64,
}

#[derive(Serialize)]
pub struct CompareBench {
    pub schema: &'static str,
    pub command: String,
    pub ratios: Vec<Ratio>,
    /// The whole table it was derived from (schema perch.eval_quant/1).
    pub table: QuantTable,
}

/// The row pairs: perch's f32 with the peer's f32, perch's int8 with the peer's first INT8.
pub fn ratios(t: &QuantTable) -> Vec<Ratio> {
    let mut out = Vec::new();
    let mut sizes: Vec<u32> = t.rows.iter().map(|r| r.imgsz).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes.into_iter().rev() {
        for precision in ["f32", "int8"] {
            let pick = |rt: Runtime| t.rows.iter().find(|r: &&Row| r.runtime == rt && r.imgsz == size && r.precision == precision && r.latency_ms.is_some());
            let (Some(p), Some(o)) = (pick(Runtime::Perch), pick(Runtime::Peer)) else { continue };
            let (Some(pl), Some(ol)) = (&p.latency_ms, &o.latency_ms) else { continue };
            out.push(Ratio {
                precision: precision.into(),
                imgsz: size,
                perch_variant: p.variant.clone(),
                peer_variant: o.variant.clone(),
                perch_median_ms: pl.median,
                peer_median_ms: ol.median,
                perch_p99_ms: pl.p99,
                peer_p99_ms: ol.p99,
                n_perch: pl.n,
                n_peer: ol.n,
                ratio: pl.median / ol.median,
            });
        }
    }
    out
}

pub fn markdown(b: &CompareBench) -> String {
    let t = &b.table;
    let mut s = String::from("# perch bench compare\n\n");
    let _ = writeln!(s, "- command: `{}`", b.command);
    let load = |l: Option<[f64; 3]>| l.map_or("not available".to_string(), |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]));
    let _ = writeln!(
        s,
        "- machine: {} ({} logical CPUs), load average at start {} / end {}",
        t.machine.cpu,
        t.machine.logical_cpus,
        load(t.machine.loadavg_start),
        load(t.machine.loadavg_end)
    );
    let peer = t.peer.as_ref().and_then(|p| p.get("onnxruntime")).and_then(|v| v.as_str()).unwrap_or("?");
    let _ = writeln!(
        s,
        "- perch {} (int8 kernel {}) vs onnxruntime {peer}; {} threads each; {} timed frames per variant and size in {} interleaved rounds after {} warm-up; every latency on {}\n",
        t.perch_version,
        perch_int8::active_kernel(),
        t.protocol.threads,
        t.protocol.runs,
        t.protocol.rounds,
        t.protocol.warmup,
        t.protocol.latency_frame
    );
    let _ = writeln!(s, "| precision | imgsz | perch median / p99 (ms) | ONNX Runtime median / p99 (ms) | n | perch / ORT |\n|---|---:|---|---|---:|---:|");
    for r in &b.ratios {
        let _ = writeln!(
            s,
            "| {} ({} vs {}) | {} | {:.1} / {:.1} | {:.1} / {:.1} | {} / {} | **{:.2}** |",
            r.precision, r.perch_variant, r.peer_variant, r.imgsz, r.perch_median_ms, r.perch_p99_ms, r.peer_median_ms, r.peer_p99_ms, r.n_perch, r.n_peer, r.ratio
        );
    }
    if b.ratios.is_empty() {
        s += "\nNo pair of rows to compare (did the peer run? see the table below).\n";
    }
    s += "\n## The table it comes from (`perch eval quant`)\n\n";
    s += &t.markdown();
    s
}

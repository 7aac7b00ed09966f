//! Per-frame latency distribution of one tracker update (median, p99, max over n frames), for the
//! README and reports; criterion (`tracker_update`) gives the confidence intervals.

use std::time::Instant;

/// CPU time this thread has run, in ns (Linux `/proc/thread-self/schedstat`): unlike wall time it
/// excludes time the thread was preempted by other processes.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

use perch_track::{Tracker, TrackerKind, TrackerParams};

mod common;
use common as scene;

fn main() {
    let n_frames = 5 * scene::PERIOD;
    println!("| tracker | objects | median ms | p90 ms | p99 ms | max ms | mean CPU ms | n |");
    println!("|---|---|---|---|---|---|---|---|");
    for kind in [TrackerKind::Bytetrack, TrackerKind::Sort] {
        for n in [10usize, 100, 300] {
            let frames = scene::scene(n);
            let mut t = Tracker::new(TrackerParams {
                kind,
                ..TrackerParams::default()
            });
            let mut out = Vec::new();
            for f in &frames {
                t.update(f, &mut out);
            }
            let cpu0 = thread_cpu_ns();
            let mut times: Vec<f64> = (0..n_frames)
                .map(|k| {
                    let t0 = Instant::now();
                    t.update(&frames[k % frames.len()], &mut out);
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            let cpu = match (cpu0, thread_cpu_ns()) {
                (Some(a), Some(b)) => format!("{:.4}", (b - a) as f64 / 1e6 / n_frames as f64),
                _ => "n/a".into(),
            };
            times.sort_by(f64::total_cmp);
            let q = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
            println!(
                "| {kind:?} | {n} | {:.4} | {:.4} | {:.4} | {:.4} | {cpu} | {} |",
                q(0.5),
                q(0.9),
                q(0.99),
                times[times.len() - 1],
                times.len()
            );
        }
    }
}

//! The status line of `perch run` on stderr: frames/s in and out, drops by reason, the p50 of the
//! slow stage (the detector) and the end-to-end p99, from the live statistics the stages refresh.
//!
//! * stderr is a terminal: one line redrawn in place every second (log lines clear it first, see
//!   [`crate::logging`]), left on screen with the final figures at the end;
//! * otherwise (a file, a pipe, journald): a plain line every `--status-every` seconds, no escape
//!   codes, and the final line.
//!
//! The final line is computed like the report (the same histograms and counters), so the two agree.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender};
use hdrhistogram::Histogram;
use perch_pipeline::metrics::{new_histogram, record};
use perch_pipeline::{DropReason, Frame, LatencySummary, LiveStats, StartContext, Tap};

/// How the line is shown.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Redrawn in place every `every`.
    Terminal { every: Duration },
    /// A new plain line every `every`.
    Plain { every: Duration },
}

impl Mode {
    /// Terminal when stderr is one (1 s), else plain lines every `plain_every`.
    pub fn detect(plain_every: Duration) -> Self {
        if std::io::stderr().is_terminal() {
            Mode::Terminal { every: Duration::from_secs(1) }
        } else {
            Mode::Plain { every: plain_every }
        }
    }
    fn every(self) -> Duration {
        match self {
            Mode::Terminal { every } | Mode::Plain { every } => every,
        }
    }
}

/// Figures of one status line.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    pub elapsed_s: f64,
    pub fps_in: f64,
    pub fps_out: f64,
    pub captured: u64,
    pub published: u64,
    /// Non-zero drop counts, in `DropReason::ALL` order.
    pub drops: Vec<(DropReason, u64)>,
    /// The stage shown (`detect` when present, else the slowest) and its p50.
    pub stage: Option<(String, f64)>,
    pub e2e_p99_ms: f64,
}

impl Figures {
    /// `12.0s | in 10.0 fps | out 9.9 fps | published 118/120 | dropped stale 2 | detect p50 82.41 ms | e2e p99 219.26 ms`
    pub fn line(&self, done: bool) -> String {
        let drops = if self.drops.is_empty() {
            "dropped 0".to_string()
        } else {
            let d: Vec<String> = self.drops.iter().map(|(r, n)| format!("{r} {n}")).collect();
            format!("dropped {}", d.join(" "))
        };
        let stage = self.stage.as_ref().map(|(n, p50)| format!(" | {n} p50 {p50:.2} ms")).unwrap_or_default();
        format!(
            "perch{} {:.1}s | in {:.1} fps | out {:.1} fps | published {}/{} | {drops}{stage} | e2e p99 {:.2} ms",
            if done { " done" } else { ":" },
            self.elapsed_s,
            self.fps_in,
            self.fps_out,
            self.published,
            self.captured,
            self.e2e_p99_ms
        )
    }
}

/// The tap: records end-to-end latency of published frames (as the runtime does for the report) and
/// runs the printing thread.
pub struct StatusTap {
    mode: Mode,
    /// This thread's histogram, copied to `shared` a few times per second.
    e2e: Histogram<u64>,
    shared: Arc<Mutex<Histogram<u64>>>,
    last_share: Instant,
    /// Index of the last stage in `Frame::stamps` (its `leave` is the publish instant).
    last_stamp: usize,
    live: Option<Arc<LiveStats>>,
    started: Instant,
    stop_tx: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl StatusTap {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            e2e: new_histogram(),
            shared: Arc::new(Mutex::new(new_histogram())),
            last_share: Instant::now(),
            last_stamp: 0,
            live: None,
            started: Instant::now(),
            stop_tx: None,
            thread: None,
        }
    }
}

/// Figures from the live statistics; `since` is the start of the run, `prev` the previous tick's
/// (instant, captured, published) for the rates (none: rates since the start).
fn figures(live: &LiveStats, e2e: &Histogram<u64>, since: Instant, prev: Option<(Instant, u64, u64)>) -> Figures {
    let snap = live.snapshot();
    let now = Instant::now();
    let (t0, c0, p0) = prev.unwrap_or((since, 0, 0));
    let dt = now.saturating_duration_since(t0).as_secs_f64().max(1e-9);
    let ledger = &snap.ledger;
    let drops = DropReason::ALL.iter().map(|r| (*r, ledger.dropped(*r))).filter(|(_, n)| *n > 0).collect();
    // The detector when there is one, else the slowest stage after capture.
    let stages: Vec<&(String, LatencySummary)> = snap.stages.iter().skip(1).collect();
    let stage = stages
        .iter()
        .find(|(n, _)| n == "detect")
        .or_else(|| stages.iter().max_by(|a, b| a.1.p50_ms.total_cmp(&b.1.p50_ms)))
        .map(|(n, s)| (n.clone(), s.p50_ms));
    Figures {
        elapsed_s: now.saturating_duration_since(since).as_secs_f64(),
        fps_in: ledger.captured.saturating_sub(c0) as f64 / dt,
        fps_out: ledger.published.saturating_sub(p0) as f64 / dt,
        captured: ledger.captured,
        published: ledger.published,
        drops,
        stage,
        e2e_p99_ms: LatencySummary::from_histogram(e2e).p99_ms,
    }
}

fn show(mode: Mode, line: &str, done: bool) {
    let mut err = std::io::stderr().lock();
    match mode {
        Mode::Terminal { .. } => {
            let _ = write!(err, "\r\x1b[2K{line}{}", if done { "\n" } else { "" });
            crate::logging::set_status_drawn(!done);
        }
        Mode::Plain { .. } => {
            let _ = writeln!(err, "{line}");
        }
    }
    let _ = err.flush();
}

impl Tap for StatusTap {
    fn name(&self) -> &'static str {
        "status"
    }

    fn start(&mut self, ctx: &StartContext) -> anyhow::Result<()> {
        let live = ctx.live.clone();
        self.last_stamp = live.stage_names().len().saturating_sub(1);
        self.started = Instant::now();
        self.live = Some(live.clone());
        let (stop_tx, stop_rx): (Sender<()>, Receiver<()>) = crossbeam_channel::bounded(0);
        let (mode, shared, started) = (self.mode, self.shared.clone(), self.started);
        let thread = std::thread::Builder::new()
            .name("perch-status".into())
            .spawn(move || {
                let mut prev = None;
                // Returns on stop (the sender is dropped); each timeout is a tick.
                while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop_rx.recv_timeout(mode.every()) {
                    let e2e = shared.lock().map(|h| h.clone()).unwrap_or_else(|_| new_histogram());
                    let f = figures(&live, &e2e, started, prev);
                    prev = Some((Instant::now(), f.captured, f.published));
                    show(mode, &f.line(false), false);
                }
            })
            .context("spawning the status line thread")?;
        self.stop_tx = Some(stop_tx);
        self.thread = Some(thread);
        Ok(())
    }

    fn observe(&mut self, frame: &Frame) {
        if let Some(published) = frame.stamps.get(self.last_stamp).and_then(|s| s.leave) {
            record(&mut self.e2e, published.saturating_duration_since(frame.captured_at));
        }
        if self.last_share.elapsed() >= Duration::from_millis(250) {
            if let Ok(mut h) = self.shared.lock() {
                h.reset();
                let _ = h.add(&self.e2e);
            }
            self.last_share = Instant::now();
        }
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        drop(self.stop_tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(live) = &self.live {
            // Rates over the whole run, like the report's `fps`.
            let f = figures(live, &self.e2e, self.started, None);
            show(self.mode, &f.line(true), true);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_rates_drops_the_slow_stage_and_e2e() {
        let f = Figures {
            elapsed_s: 12.04,
            fps_in: 10.0,
            fps_out: 9.94,
            captured: 120,
            published: 118,
            drops: vec![(DropReason::Stale, 2)],
            stage: Some(("detect".into(), 82.414)),
            e2e_p99_ms: 219.26,
        };
        assert_eq!(
            f.line(false),
            "perch: 12.0s | in 10.0 fps | out 9.9 fps | published 118/120 | dropped stale 2 | detect p50 82.41 ms | e2e p99 219.26 ms"
        );
        let none = Figures { drops: vec![], stage: None, ..f };
        assert!(none.line(true).starts_with("perch done 12.0s") && none.line(true).contains("| dropped 0 | e2e p99"));
        assert!(!none.line(true).contains('\x1b'));
    }
}

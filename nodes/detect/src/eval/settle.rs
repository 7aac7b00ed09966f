//! Quiet CPUs between the timed rounds of two runtimes. ONNX Runtime's pool threads keep spinning
//! for ~30–40 ms after a `run` returns (measured: one full core for the first 10 ms, 80 % over
//! 50 ms; `session.intra_op.allow_spinning = 0` stops it but makes ORT itself slower), so on a
//! 2-core machine the variant timed right after ORT would run its first frames on one core. Before
//! each variant's round we wait until every other thread of perch and of the peer process has used
//! almost no CPU for a short window: each runtime is timed on an otherwise idle machine, with its
//! own settings (ORT keeps its default spinning between its own back-to-back runs).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Window over which the other threads must stay (nearly) idle.
const WINDOW: Duration = Duration::from_millis(20);
/// "Idle": under 2.5 % of one core over the window (page-cache and logging noise pass).
const IDLE_CPU: Duration = Duration::from_micros(500);
/// Give up waiting after this long (a busy machine): the wait is counted as timed out.
const MAX_WAIT: Duration = Duration::from_secs(2);

/// What the waits cost, reported with the table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SettleStats {
    /// Waits, one before each variant's round.
    pub waits: usize,
    /// Waits that hit the 2 s cap with the other threads still busy.
    pub timed_out: usize,
    pub median_wait_ms: f64,
    pub max_wait_ms: f64,
}

/// The waits of one run.
#[derive(Debug, Default)]
pub struct Settle {
    waits_ms: Vec<f64>,
    timed_out: usize,
}

impl Settle {
    /// Waits until the threads of this process (all but the caller; when `own`) and of `peer` (a
    /// pid) are idle. Without /proc (not Linux) it returns at once and records nothing.
    pub fn wait(&mut self, own: bool, peer: Option<u32>) {
        let me = thread_id();
        let busy = || -> Option<u64> {
            let own = if own { cpu_ns("/proc/self/task", me.clone())? } else { 0 };
            let peer = peer.map_or(Some(0), |p| cpu_ns(&format!("/proc/{p}/task"), None))?;
            Some(own + peer)
        };
        let Some(mut last) = busy() else { return };
        let t0 = Instant::now();
        let timed_out = loop {
            std::thread::sleep(WINDOW);
            let Some(now) = busy() else { return };
            if now.saturating_sub(last) < IDLE_CPU.as_nanos() as u64 {
                break false;
            }
            if t0.elapsed() >= MAX_WAIT {
                break true;
            }
            last = now;
        };
        self.timed_out += usize::from(timed_out);
        self.waits_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }

    pub fn stats(&self) -> SettleStats {
        let mut v = self.waits_ms.clone();
        v.sort_by(f64::total_cmp);
        SettleStats {
            waits: v.len(),
            timed_out: self.timed_out,
            median_wait_ms: v.get(v.len() / 2).copied().unwrap_or(0.0),
            max_wait_ms: v.last().copied().unwrap_or(0.0),
        }
    }
}

/// The calling thread's kernel id (Linux), to leave our own polling out of the sum.
fn thread_id() -> Option<String> {
    std::fs::read_link("/proc/thread-self").ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
}

/// Sum of the on-CPU nanoseconds (`schedstat`'s first field) of every thread in `task_dir` but `skip`.
fn cpu_ns(task_dir: &str, skip: Option<String>) -> Option<u64> {
    let mut sum = 0u64;
    for e in std::fs::read_dir(task_dir).ok().into_iter().flatten().flatten() {
        if skip.as_deref().is_some_and(|s| e.file_name().to_string_lossy() == s) {
            continue;
        }
        // A thread that ended between the listing and the read simply no longer counts.
        if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
            sum += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    // A separate busy process (not a thread: the test harness runs other tests in this one).
    #[test]
    fn waits_for_a_busy_peer_to_stop() {
        if std::fs::metadata("/proc/self/task").is_err() {
            return; // no /proc: nothing to wait on, by design
        }
        let mut busy = Command::new("yes").stdout(Stdio::null()).spawn().expect("spawn yes");
        let pid = busy.id();
        let killer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let _ = busy.kill();
            busy.wait().map(|_| Instant::now())
        });
        let mut settle = Settle::default();
        settle.wait(false, Some(pid));
        let st = settle.stats();
        let returned = Instant::now();
        let killed = killer.join().unwrap().expect("reap yes");
        assert_eq!(st.waits, 1);
        // Idle can only be seen once the busy process has ended (or the cap hit, on a starved machine).
        assert!(returned >= killed || st.timed_out == 1, "settled while the peer was busy: {st:?}");
        // A sleeping peer settles in one window.
        let mut sleeper = Command::new("sleep").arg("10").spawn().expect("spawn sleep");
        let mut settle = Settle::default();
        settle.wait(false, Some(sleeper.id()));
        let idle = settle.stats();
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        assert_eq!((idle.waits, idle.timed_out), (1, 0), "{idle:?}");
        assert!(idle.max_wait_ms < 1000.0, "{idle:?}");
    }
}

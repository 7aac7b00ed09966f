//! The machine while a bench step runs, read by one background thread every `interval`: CPU time
//! of each thread of this process (by name), resident memory, energy counters, temperatures and
//! CPU clocks. Threads of a step end with it, so their CPU time is the last reading before they
//! ended, and utilisation is taken over the sampled window, not the whole step.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use perch_platform::energy::EnergyMeter;
use perch_platform::process;
use perch_platform::SysRoot;
use serde::Serialize;

/// One reading of the slow-moving state (temperatures, clocks, power), for per-minute tables.
#[derive(Clone, Debug, Serialize)]
pub struct Reading {
    /// Seconds since the step started.
    pub t_s: f64,
    /// Thermal zone name -> °C.
    pub temps_c: BTreeMap<String, f64>,
    /// Current CPU clock per online CPU, MHz.
    pub cpu_mhz: Vec<Option<f64>>,
    /// Cumulative energy of the meter's total, J (None: not available).
    pub energy_j: Option<f64>,
    pub rss_mib: Option<f64>,
}

/// CPU time of a group of threads (same name up to a trailing number: `perch-detect-0`, `-1`).
#[derive(Clone, Debug, Serialize)]
pub struct ThreadCpu {
    pub thread: String,
    /// How many threads of that name were seen.
    pub threads: usize,
    pub cpu_s: f64,
    /// cpu_s / the sampled window (1.0 = one core busy).
    pub utilisation: f64,
}

#[derive(Debug, Serialize)]
pub struct Sampled {
    pub interval_ms: u64,
    /// Seconds between the first and the last reading (what `utilisation` divides by).
    pub window_s: f64,
    pub threads: Vec<ThreadCpu>,
    /// Peak resident set of the process during the step (VmHWM, reset at the start when the kernel
    /// allows: `peak_rss_reset`), MiB.
    pub peak_rss_mib: Option<f64>,
    pub peak_rss_reset: bool,
    /// "rapl", "ina3221", or None: energy not available on this machine (never estimated).
    pub energy_method: Option<&'static str>,
    /// (source name, J) of the meter's total over the step.
    pub energy_total: Option<(String, f64)>,
    pub energy_per_source: Vec<perch_platform::energy::EnergyReading>,
    pub readings: Vec<Reading>,
}

pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Sampled>,
}

impl Sampler {
    /// Start sampling now; `slow_every` readings of threads, one of temperatures/clocks/energy.
    pub fn start(started: Instant, interval: Duration, slow_every: u32) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let peak_rss_reset = process::reset_peak_rss();
        let handle = std::thread::Builder::new().name("bench-sampler".into()).spawn(move || {
            let root = SysRoot::host();
            let mut meter = EnergyMeter::open(&root);
            // tid -> (name, CPU seconds at the first reading, at the last): threads alive before
            // the step (the main thread) count only what they spent inside it.
            let mut seen: BTreeMap<u32, (String, f64, f64)> = BTreeMap::new();
            let mut first = None::<Instant>;
            let mut last;
            let mut readings = Vec::new();
            let mut k = 0u32;
            loop {
                let now = Instant::now();
                for t in process::thread_times(&root, "self") {
                    let base = if k == 0 { t.cpu_s } else { 0.0 };
                    seen.entry(t.tid).or_insert((t.name, base, 0.0)).2 = t.cpu_s;
                }
                meter.sample(now);
                first.get_or_insert(now);
                last = now;
                if k.is_multiple_of(slow_every.max(1)) {
                    readings.push(read_slow(&root, &meter, now.saturating_duration_since(started).as_secs_f64()));
                }
                k += 1;
                if flag.load(Ordering::Relaxed) {
                    break;
                }
                std::thread::sleep(interval);
            }
            let window_s = first.map_or(0.0, |f| last.saturating_duration_since(f).as_secs_f64());
            Sampled {
                interval_ms: interval.as_millis() as u64,
                window_s,
                threads: group(&seen, window_s),
                peak_rss_mib: process::peak_rss_kib(&root, "self").map(|k| k as f64 / 1024.0),
                peak_rss_reset,
                energy_method: meter.method(),
                energy_total: meter.total(),
                energy_per_source: meter.readings(),
                readings,
            }
        })?;
        Ok(Self { stop, handle })
    }

    pub fn finish(self) -> anyhow::Result<Sampled> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| anyhow::anyhow!("the bench sampler thread panicked"))
    }
}

fn read_slow(root: &SysRoot, meter: &EnergyMeter, t_s: f64) -> Reading {
    let temps_c = perch_platform::thermal::read_zones(root)
        .into_iter()
        .filter_map(|z| Some((z.kind.unwrap_or_else(|| format!("zone{}", z.zone)), z.temp_mc? as f64 / 1000.0)))
        .collect();
    let cpu_mhz = perch_platform::clocks::read_clocks(root).iter().map(|c| c.cur_khz.map(|k| k as f64 / 1000.0)).collect();
    Reading {
        t_s,
        temps_c,
        cpu_mhz,
        energy_j: meter.total().map(|(_, j)| j),
        rss_mib: process::rss_kib(root, "self").map(|k| k as f64 / 1024.0),
    }
}

/// `perch-detect-0`, `perch-detect-1` -> `perch-detect` (x2); the main and sampler threads are
/// listed too, so the sum is the whole process.
fn group(seen: &BTreeMap<u32, (String, f64, f64)>, window_s: f64) -> Vec<ThreadCpu> {
    let mut by: BTreeMap<String, (usize, f64)> = BTreeMap::new();
    for (name, base, last) in seen.values() {
        let cpu = last - base;
        let base = name.trim_end_matches(|c: char| c.is_ascii_digit()).trim_end_matches('-');
        let base = if base.is_empty() { name.as_str() } else { base };
        let e = by.entry(base.to_string()).or_default();
        e.0 += 1;
        e.1 += cpu.max(0.0);
    }
    let mut v: Vec<ThreadCpu> = by
        .into_iter()
        .map(|(thread, (threads, cpu_s))| ThreadCpu {
            thread,
            threads,
            cpu_s,
            utilisation: if window_s > 0.0 { cpu_s / window_s } else { 0.0 },
        })
        .collect();
    v.sort_by(|a, b| b.cpu_s.total_cmp(&a.cpu_s));
    v
}

//! Energy counters, for energy per frame: Intel/AMD RAPL through powercap, or a Jetson's INA3221 rails.
//!
//! - RAPL: `/sys/class/powercap/intel-rapl:<N>` (a package, or `psys`, the whole platform) and its
//!   sub-zones `intel-rapl:<N>:<M>` (`core`, `uncore`, `dram`), each with `name`, `energy_uj` (a µJ
//!   counter) and `max_energy_range_uj` (where the counter wraps to 0). Since Linux 5.10 `energy_uj` is
//!   usually readable by root only (CVE-2020-8694, "Platypus"), so a normal user sees no source.
//! - INA3221 (JetPack 4): instantaneous mW per rail from [`read_power_rails`], integrated with the
//!   trapezoid rule between samples, so the energy is only as fine as the sampling interval.
//!
//! [`EnergyMeter::open`] is the first reading; every [`EnergyMeter::sample`] adds the energy since the
//! previous one.

use std::time::Instant;

use serde::Serialize;

use crate::board::read_power_rails;
use crate::root::SysRoot;

/// Energy (or, from [`EnergyMeter::mean_watts`], mean power in watts) of one source.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EnergyReading {
    pub name: String,
    pub joules: f64,
}

/// The board's input rail on JetPack 4: `POM_5V_IN` (Nano), `VDD_IN` (TX2, Xavier NX). The other rails
/// are parts of it, so the total never sums rails.
const INPUT_RAILS: [&str; 2] = ["POM_5V_IN", "VDD_IN"];

const POWERCAP: &str = "/sys/class/powercap";

#[derive(Debug)]
enum Probe {
    Rapl { energy_uj: String, max_range_uj: Option<u64>, top_level: bool, last_uj: u64 },
    Rail { last_mw: u64 },
}

#[derive(Debug)]
struct Source {
    name: String,
    probe: Probe,
    joules: f64,
}

/// Energy counters opened once; [`sample`](Self::sample) them from one thread every ~0.25-1 s.
#[derive(Debug)]
pub struct EnergyMeter {
    root: SysRoot,
    method: Option<&'static str>,
    sources: Vec<Source>,
    opened: Instant,
    last_at: Instant,
}

impl EnergyMeter {
    /// Opens whatever this machine exposes: RAPL zones, else INA3221 rails, else no source (energy
    /// counters not readable by this user, a container, a VM). Counting starts now.
    pub fn open(root: &SysRoot) -> EnergyMeter {
        Self::open_at(root, Instant::now())
    }

    /// [`open`](Self::open) with the caller's time of this first reading, so the INA3221 integral can be
    /// tested (and driven) on the caller's own clock.
    pub fn open_at(root: &SysRoot, at: Instant) -> EnergyMeter {
        let (method, sources) = match rapl_sources(root) {
            s if !s.is_empty() => (Some("rapl"), s),
            _ => match rail_sources(root) {
                s if !s.is_empty() => (Some("ina3221"), s),
                _ => (None, Vec::new()),
            },
        };
        EnergyMeter { root: root.clone(), method, sources, opened: at, last_at: at }
    }

    /// `"rapl"`, `"ina3221"`, or `None` when nothing is readable.
    pub fn method(&self) -> Option<&'static str> {
        self.method
    }

    /// Reads every source now; `at` is the caller's monotonic time of the reading. RAPL must be sampled
    /// more often than its counter wraps (minutes at full load), INA3221 as often as the integral needs.
    /// A source that cannot be read this time keeps its last value and is caught up at the next sample.
    pub fn sample(&mut self, at: Instant) {
        let dt_s = at.saturating_duration_since(self.last_at).as_secs_f64();
        let rails = match self.method {
            Some("ina3221") => read_power_rails(&self.root),
            _ => Vec::new(),
        };
        for s in &mut self.sources {
            match &mut s.probe {
                Probe::Rapl { energy_uj, max_range_uj, last_uj, .. } => {
                    let Some(now) = self.root.read_u64(energy_uj) else { continue };
                    let delta = match (now.checked_sub(*last_uj), *max_range_uj) {
                        (Some(d), _) => d,
                        // The counter wrapped past max_energy_range_uj back to 0.
                        (None, Some(max)) => max.saturating_sub(*last_uj).saturating_add(now),
                        // Without the range a wrap cannot be measured: count nothing for this interval.
                        (None, None) => 0,
                    };
                    s.joules += delta as f64 * 1e-6;
                    *last_uj = now;
                }
                Probe::Rail { last_mw } => {
                    let Some(now) = rails.iter().find(|r| r.name == s.name).and_then(|r| r.power_mw) else {
                        continue;
                    };
                    s.joules += (*last_mw + now) as f64 / 2.0 * 1e-3 * dt_s;
                    *last_mw = now;
                }
            }
        }
        self.last_at = self.last_at.max(at);
    }

    /// Joules per source since [`open`](Self::open), in discovery order (RAPL `package-0`,
    /// `package-0/core`, ..., `psys`; INA3221 `POM_5V_IN`, ...). Empty when there is no source.
    pub fn readings(&self) -> Vec<EnergyReading> {
        self.sources.iter().map(|s| EnergyReading { name: s.name.clone(), joules: s.joules }).collect()
    }

    /// The whole-board or whole-package energy for "energy per frame", with the name(s) it is:
    /// - INA3221: the input rail (`POM_5V_IN`, else `VDD_IN`), matched by name; `None` without one.
    /// - RAPL: `psys` (the platform, which already contains the packages) when present and counting;
    ///   else the sum of the other top-level zones, the packages (`package-0+package-1`). Sub-zones
    ///   (`core`, `dram`, ...) are parts of their package and never added.
    pub fn total(&self) -> Option<(String, f64)> {
        match self.method? {
            "ina3221" => INPUT_RAILS
                .iter()
                .find_map(|rail| self.sources.iter().find(|s| s.name == *rail))
                .map(|s| (s.name.clone(), s.joules)),
            _ => {
                let top = |s: &&Source| matches!(s.probe, Probe::Rapl { top_level: true, .. });
                let psys = self.sources.iter().filter(top).find(|s| s.name == "psys");
                let packages: Vec<&Source> = self.sources.iter().filter(top).filter(|s| s.name != "psys").collect();
                let package_j: f64 = packages.iter().map(|s| s.joules).sum();
                // Some boards list psys but never count it: when it stays at 0 while the packages count,
                // the packages are the best total there is.
                match psys {
                    Some(p) if p.joules > 0.0 || package_j == 0.0 => Some((p.name.clone(), p.joules)),
                    _ if packages.is_empty() => None,
                    _ => {
                        let names: Vec<&str> = packages.iter().map(|s| s.name.as_str()).collect();
                        Some((names.join("+"), package_j))
                    }
                }
            }
        }
    }

    /// Mean power in watts (in the `joules` field) per source between `open` and the last sample; empty
    /// when there is no source or no time has passed yet.
    pub fn mean_watts(&self) -> Vec<EnergyReading> {
        let elapsed = self.last_at.saturating_duration_since(self.opened).as_secs_f64();
        if elapsed <= 0.0 {
            return Vec::new();
        }
        self.sources.iter().map(|s| EnergyReading { name: s.name.clone(), joules: s.joules / elapsed }).collect()
    }
}

/// `intel-rapl:0` -> [0], `intel-rapl:0:1` -> [0, 1]; `None` for the control type `intel-rapl` itself and
/// for `intel-rapl-mmio:*` (a second view of the package counter: counting it would count twice).
fn zone_index(dir: &str) -> Option<Vec<u32>> {
    let rest = dir.strip_prefix("intel-rapl:")?;
    let idx: Option<Vec<u32>> = rest.split(':').map(|p| p.parse().ok()).collect();
    idx.filter(|i| i.len() <= 2)
}

fn rapl_sources(root: &SysRoot) -> Vec<Source> {
    let mut zones: Vec<(Vec<u32>, String)> =
        root.names(POWERCAP).into_iter().filter_map(|d| Some((zone_index(&d)?, d))).collect();
    // Each package followed by its sub-zones: [0], [0, 0], [0, 1], [1].
    zones.sort();
    let mut out = Vec::new();
    for (idx, dir) in zones {
        let base = format!("{POWERCAP}/{dir}");
        let energy_uj = format!("{base}/energy_uj");
        let (Some(name), Some(last_uj)) = (root.read(&format!("{base}/name")), root.read_u64(&energy_uj)) else {
            continue;
        };
        let top_level = idx.len() == 1;
        let name = if top_level {
            name
        } else {
            let parent = root.read(&format!("{POWERCAP}/intel-rapl:{}/name", idx[0]));
            format!("{}/{name}", parent.unwrap_or_else(|| format!("intel-rapl:{}", idx[0])))
        };
        let max_range_uj = root.read_u64(&format!("{base}/max_energy_range_uj")).filter(|&m| m > 0);
        out.push(Source { name, probe: Probe::Rapl { energy_uj, max_range_uj, top_level, last_uj }, joules: 0.0 });
    }
    out
}

fn rail_sources(root: &SysRoot) -> Vec<Source> {
    read_power_rails(root)
        .into_iter()
        .filter_map(|r| Some(Source { probe: Probe::Rail { last_mw: r.power_mw? }, name: r.name, joules: 0.0 }))
        .collect()
}

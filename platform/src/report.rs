//! Everything this crate reads, in one value, and the warnings that matter for a real-time run.

use serde::Serialize;

use crate::board::{read_power_rails, Board, NvpModel, PowerRail};
use crate::clocks::{read_clocks, CpuClock};
use crate::cpu::{parse_cpuinfo, Cores, CpuInfo, IsaFeatures};
use crate::root::SysRoot;
use crate::thermal::{read_cooling, read_zones, CoolingDevice, ThermalZone};

/// A snapshot of the machine. Every field that could not be read is `None` or empty.
#[derive(Clone, Debug, Serialize)]
pub struct Platform {
    /// The root the files were read from (`/` on the machine itself).
    pub root: String,
    pub cpu: Option<CpuInfo>,
    /// ISA features `/proc/cpuinfo` lists.
    pub isa: Option<IsaFeatures>,
    pub cores: Cores,
    pub clocks: Vec<CpuClock>,
    pub thermal: Vec<ThermalZone>,
    pub cooling: Vec<CoolingDevice>,
    pub board: Board,
    pub nvpmodel: Option<NvpModel>,
    pub power: Vec<PowerRail>,
    /// `/proc/meminfo` `MemTotal` and `MemAvailable`, in KiB.
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
}

/// A condition that makes perch slower or less predictable than it could be, with what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Stable identifier: `governor_powersave`, `thermal_throttling`, `cores_offline`,
    /// `clock_capped`, `power_mode`, `threads_exceed_cores`.
    pub code: &'static str,
    pub message: String,
}

impl Platform {
    pub fn read(root: &SysRoot) -> Self {
        let cpu = root.read("/proc/cpuinfo").map(|t| parse_cpuinfo(&t));
        let meminfo = root.read("/proc/meminfo");
        let mem = |key: &str| {
            meminfo.as_deref()?.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(':')?.split_whitespace().next()?.parse().ok())
        };
        Self {
            root: root.base().display().to_string(),
            isa: cpu.as_ref().map(|c| IsaFeatures::from_flags(&c.flags)),
            cpu,
            cores: Cores::read(root),
            clocks: read_clocks(root),
            thermal: read_zones(root),
            cooling: read_cooling(root),
            board: Board::read(root),
            nvpmodel: NvpModel::read(root),
            power: read_power_rails(root),
            mem_total_kib: mem("MemTotal"),
            mem_available_kib: mem("MemAvailable"),
        }
    }

    /// The clocks of CPUs that are online (all of them when the online list is unknown).
    pub fn online_clocks(&self) -> impl Iterator<Item = &CpuClock> {
        self.clocks.iter().filter(|c| self.cores.online.as_ref().is_none_or(|on| on.contains(&c.cpu)))
    }

    /// Warnings for a run that uses `threads` detector threads (`None`: not known).
    pub fn warnings(&self, threads: Option<usize>) -> Vec<Warning> {
        let mut out = Vec::new();
        let cpus = |list: &[u32]| list.iter().map(|c| format!("cpu{c}")).collect::<Vec<_>>().join(", ");

        let powersave: Vec<u32> = self.online_clocks().filter(|c| c.governor.as_deref() == Some("powersave")).map(|c| c.cpu).collect();
        if !powersave.is_empty() {
            out.push(Warning {
                code: "governor_powersave",
                message: format!(
                    "CPU governor is `powersave` on {}: clocks stay at their minimum. Use `schedutil` or `performance` \
                     (on a Jetson: `sudo jetson_clocks`)",
                    cpus(&powersave)
                ),
            });
        }

        // PMIC-Die on the Jetson Nano reads a constant 100 °C (it is a die-temperature threshold
        // flag, not a sensor), so it never counts as throttling.
        let hot: Vec<String> = self
            .thermal
            .iter()
            .filter(|z| z.kind.as_deref() != Some("PMIC-Die"))
            .filter_map(|z| {
                let trip = z.reached_trip()?;
                Some(format!(
                    "{} at {:.1} °C reached its {} trip point ({:.1} °C)",
                    z.kind.as_deref().unwrap_or("zone"),
                    z.temp_mc? as f64 / 1000.0,
                    trip.kind,
                    trip.temp_mc as f64 / 1000.0
                ))
            })
            .chain(self.cooling.iter().filter(|d| d.throttles_cpu() && d.active()).map(|d| {
                format!(
                    "cooling device {} is limiting the CPU (state {} of {})",
                    d.kind.as_deref().unwrap_or("?"),
                    d.cur_state.unwrap_or(0),
                    d.max_state.map_or("?".to_string(), |m| m.to_string())
                )
            }))
            .collect();
        if !hot.is_empty() {
            out.push(Warning {
                code: "thermal_throttling",
                message: format!("thermal throttling active: {}. Improve cooling (fan, heatsink) before measuring", hot.join("; ")),
            });
        }

        let offline = self.cores.offline();
        if !offline.is_empty() {
            let present = self.cores.present.as_ref().map_or(0, Vec::len);
            let hint = if self.board.is_jetson() { " (nvpmodel's 5W mode turns cores off: `sudo nvpmodel -m 0`)" } else { "" };
            out.push(Warning {
                code: "cores_offline",
                message: format!("only {} of {present} cores online; offline: {}{hint}", present - offline.len(), cpus(&offline)),
            });
        }

        let capped: Vec<&CpuClock> = self.online_clocks().filter(|c| c.capped()).collect();
        if let Some(c) = capped.first() {
            out.push(Warning {
                code: "clock_capped",
                message: format!(
                    "CPU clock ceiling {} MHz is below the hardware's {} MHz on {} (a power mode or thermal cap)",
                    c.max_khz.unwrap_or(0) / 1000,
                    c.hw_max_khz.unwrap_or(0) / 1000,
                    cpus(&capped.iter().map(|c| c.cpu).collect::<Vec<_>>())
                ),
            });
        }

        if let Some(mode) = &self.nvpmodel {
            if mode.is_max() == Some(false) {
                out.push(Warning {
                    code: "power_mode",
                    message: format!(
                        "nvpmodel mode {} ({}) limits cores and clocks; the Nano profile assumes MAXN: `sudo nvpmodel -m 0`",
                        mode.id.map_or("?".to_string(), |i| i.to_string()),
                        mode.name.as_deref().unwrap_or("?")
                    ),
                });
            }
        }

        if let (Some(threads), Some(online)) = (threads, self.cores.online.as_ref().map(Vec::len)) {
            if threads > online {
                out.push(Warning {
                    code: "threads_exceed_cores",
                    message: format!("detect.threads = {threads} but only {online} cores are online: threads will share cores"),
                });
            }
        }
        out
    }
}

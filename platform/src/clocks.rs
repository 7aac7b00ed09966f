//! CPU clocks and governors from cpufreq: `/sys/devices/system/cpu/cpu<N>/cpufreq/*` (kHz).

use serde::Serialize;

use crate::root::SysRoot;

/// One CPU's frequency policy. Every value is `None` when the kernel does not expose it (no
/// cpufreq driver, as in most VMs, or an offline core).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CpuClock {
    pub cpu: u32,
    pub governor: Option<String>,
    pub cur_khz: Option<u64>,
    /// The policy's limits (`scaling_min_freq`/`scaling_max_freq`): nvpmodel and thermal caps land here.
    pub min_khz: Option<u64>,
    pub max_khz: Option<u64>,
    /// The hardware's range (`cpuinfo_min_freq`/`cpuinfo_max_freq`).
    pub hw_min_khz: Option<u64>,
    pub hw_max_khz: Option<u64>,
}

impl CpuClock {
    /// The policy's ceiling is below what the hardware can do.
    pub fn capped(&self) -> bool {
        matches!((self.max_khz, self.hw_max_khz), (Some(max), Some(hw)) if max < hw)
    }
}

/// Every `cpu<N>` directory's cpufreq files, in CPU order.
pub fn read_clocks(root: &SysRoot) -> Vec<CpuClock> {
    root.numbered("/sys/devices/system/cpu", "cpu")
        .into_iter()
        .map(|cpu| {
            let f = |name: &str| format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/{name}");
            CpuClock {
                cpu,
                governor: root.read(&f("scaling_governor")).filter(|g| !g.is_empty()),
                cur_khz: root.read_u64(&f("scaling_cur_freq")),
                min_khz: root.read_u64(&f("scaling_min_freq")),
                max_khz: root.read_u64(&f("scaling_max_freq")),
                hw_min_khz: root.read_u64(&f("cpuinfo_min_freq")),
                hw_max_khz: root.read_u64(&f("cpuinfo_max_freq")),
            }
        })
        .collect()
}

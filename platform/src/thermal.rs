//! Temperatures, trip points and cooling devices from the Linux thermal framework:
//! `/sys/class/thermal/thermal_zone<N>/{type,temp,trip_point_<K>_{type,temp}}` (milli-°C) and
//! `/sys/class/thermal/cooling_device<N>/{type,cur_state,max_state}`.

use serde::Serialize;

use crate::root::SysRoot;

/// A trip point: at `temp_mc` the kernel acts (`passive`: throttle clocks; `active`: fan;
/// `hot`/`critical`: emergency).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Trip {
    pub kind: String,
    pub temp_mc: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ThermalZone {
    pub zone: u32,
    /// The sensor's name (`CPU-therm` on a Jetson Nano, `x86_pkg_temp` on Intel).
    pub kind: Option<String>,
    pub temp_mc: Option<i64>,
    pub trips: Vec<Trip>,
}

impl ThermalZone {
    /// The lowest throttling (`passive`) or emergency trip point the temperature has reached.
    pub fn reached_trip(&self) -> Option<&Trip> {
        let t = self.temp_mc?;
        self.trips
            .iter()
            .filter(|p| matches!(p.kind.as_str(), "passive" | "hot" | "critical") && p.temp_mc > 0 && t >= p.temp_mc)
            .min_by_key(|p| p.temp_mc)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CoolingDevice {
    pub device: u32,
    pub kind: Option<String>,
    pub cur_state: Option<u64>,
    pub max_state: Option<u64>,
}

impl CoolingDevice {
    /// A device that slows the CPU (cpufreq cooling: `cpufreq-cpu0`, `thermal-cpufreq-0`,
    /// Tegra's `cpu-balanced`), as opposed to a fan.
    pub fn throttles_cpu(&self) -> bool {
        self.kind.as_deref().is_some_and(|k| {
            let k = k.to_ascii_lowercase();
            k.contains("cpufreq") || k.starts_with("cpu")
        })
    }

    /// Currently limiting (state above 0).
    pub fn active(&self) -> bool {
        self.cur_state.is_some_and(|s| s > 0)
    }
}

pub fn read_zones(root: &SysRoot) -> Vec<ThermalZone> {
    const DIR: &str = "/sys/class/thermal";
    root.numbered(DIR, "thermal_zone")
        .into_iter()
        .map(|zone| {
            let base = format!("{DIR}/thermal_zone{zone}");
            let mut trips = Vec::new();
            for k in 0..32 {
                let (Some(kind), Some(temp_mc)) =
                    (root.read(&format!("{base}/trip_point_{k}_type")), root.read_i64(&format!("{base}/trip_point_{k}_temp")))
                else {
                    break;
                };
                trips.push(Trip { kind, temp_mc });
            }
            ThermalZone { zone, kind: root.read(&format!("{base}/type")), temp_mc: root.read_i64(&format!("{base}/temp")), trips }
        })
        .collect()
}

pub fn read_cooling(root: &SysRoot) -> Vec<CoolingDevice> {
    const DIR: &str = "/sys/class/thermal";
    root.numbered(DIR, "cooling_device")
        .into_iter()
        .map(|device| {
            let f = |name: &str| format!("{DIR}/cooling_device{device}/{name}");
            CoolingDevice {
                device,
                kind: root.read(&f("type")),
                cur_state: root.read_u64(&f("cur_state")),
                max_state: root.read_u64(&f("max_state")),
            }
        })
        .collect()
}

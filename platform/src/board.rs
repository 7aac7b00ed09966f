//! The board and, on an NVIDIA Jetson, its L4T release, nvpmodel power mode and INA3221 power rails.
//!
//! Layouts (JetPack 4 / L4T R32 on a Jetson Nano):
//! - `/proc/device-tree/model`: `NVIDIA Jetson Nano Developer Kit` + NUL; `compatible`: NUL-separated
//!   strings such as `nvidia,p3449-0000-b00+p3448-0000-b00`, `nvidia,jetson-nano`, `nvidia,tegra210`.
//! - `/etc/nv_tegra_release`: `# R32 (release), REVISION: 7.1, GCID: ..., BOARD: t210ref, EABI: aarch64, DATE: ...`.
//! - `/var/lib/nvpmodel/status`: `pmode:0000`, written by `nvpmodel -m`; without it the mode is the
//!   config's `< PM_CONFIG DEFAULT=0 >`. `/etc/nvpmodel.conf` names the modes:
//!   `< POWER_MODEL ID=0 NAME=MAXN >` (Nano: all 4 cores, 1479 MHz) and `< POWER_MODEL ID=1 NAME=5W >`
//!   (2 cores, 918 MHz).
//! - Power: `/sys/bus/i2c/drivers/ina3221x/<bus>-<addr>/iio:device<N>/rail_name_<K>` (`POM_5V_IN`,
//!   `POM_5V_GPU`, `POM_5V_CPU`) with `in_power<K>_input` (mW), `in_current<K>_input` (mA),
//!   `in_voltage<K>_input` (mV); rails are matched by name, the index differs between sources.
//!   The 2 GB Nano has no INA3221.

use serde::Serialize;

use crate::root::SysRoot;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Board {
    /// Device-tree `model` (ARM boards), else DMI vendor + product name (PCs, VMs).
    pub model: Option<String>,
    /// Device-tree `compatible` strings.
    pub compatible: Vec<String>,
    /// `/etc/nv_tegra_release`, parsed.
    pub l4t: Option<L4tRelease>,
}

impl Board {
    pub fn read(root: &SysRoot) -> Self {
        let dmi = || {
            let vendor = root.read("/sys/class/dmi/id/sys_vendor").filter(|s| !s.is_empty());
            let product = root.read("/sys/class/dmi/id/product_name").filter(|s| !s.is_empty());
            match (vendor, product) {
                (Some(v), Some(p)) => Some(format!("{v} {p}")),
                (v, p) => v.or(p),
            }
        };
        let compatible = std::fs::read(root.path("/proc/device-tree/compatible"))
            .map(|bytes| {
                bytes
                    .split(|&b| b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect()
            })
            .unwrap_or_default();
        Self {
            model: root.read("/proc/device-tree/model").filter(|s| !s.is_empty()).or_else(dmi),
            compatible,
            l4t: root.read("/etc/nv_tegra_release").and_then(|t| L4tRelease::parse(&t)),
        }
    }

    /// An NVIDIA Jetson (device tree says so, or L4T is installed).
    pub fn is_jetson(&self) -> bool {
        self.l4t.is_some()
            || self.model.as_deref().is_some_and(|m| m.contains("Jetson"))
            || self.compatible.iter().any(|c| c.starts_with("nvidia,"))
    }
}

/// NVIDIA's Linux for Tegra release (`R32.7.1` is JetPack 4.6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct L4tRelease {
    /// `R32`.
    pub release: String,
    /// `7.1`.
    pub revision: String,
    /// `t210ref` on a Nano.
    pub board: Option<String>,
}

impl L4tRelease {
    pub fn parse(text: &str) -> Option<Self> {
        let line = text.lines().next()?.trim_start_matches('#').trim();
        let release = line.split_whitespace().next()?.to_string();
        let field = |name: &str| {
            line.split(',').find_map(|part| part.trim().strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string()))
        };
        Some(Self { release, revision: field("REVISION")?, board: field("BOARD") })
    }
}

/// The nvpmodel power mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NvpModel {
    /// The active mode's id: `/var/lib/nvpmodel/status`, else the config's default.
    pub id: Option<u32>,
    /// Its name from the config (`MAXN`, `5W`).
    pub name: Option<String>,
    /// Where `id` came from: `status` or `default`.
    pub source: Option<&'static str>,
    /// Every mode the config defines: (id, name).
    pub modes: Vec<(u32, String)>,
}

impl NvpModel {
    /// `None` when neither the status file nor a config exists (not a Jetson).
    pub fn read(root: &SysRoot) -> Option<Self> {
        let status = root.read("/var/lib/nvpmodel/status").and_then(|s| parse_status(&s));
        let conf = root.read("/etc/nvpmodel.conf").map(|t| parse_conf(&t));
        if status.is_none() && conf.is_none() {
            return None;
        }
        let (modes, default) = conf.unwrap_or_default();
        let (id, source) = match (status, default) {
            (Some(id), _) => (Some(id), Some("status")),
            (None, Some(id)) => (Some(id), Some("default")),
            (None, None) => (None, None),
        };
        let name = id.and_then(|id| modes.iter().find(|(m, _)| *m == id).map(|(_, n)| n.clone()));
        Some(Self { id, name, source, modes })
    }

    /// The unconstrained mode (`MAXN`, `MAXN_SUPER`) is active.
    pub fn is_max(&self) -> Option<bool> {
        self.name.as_deref().map(|n| n.starts_with("MAXN"))
    }
}

/// `pmode:0001` -> 1.
fn parse_status(text: &str) -> Option<u32> {
    text.lines().find_map(|l| l.trim().strip_prefix("pmode:")?.trim().parse().ok())
}

/// The `< POWER_MODEL ID=.. NAME=.. >` lines and `< PM_CONFIG DEFAULT=.. >`.
fn parse_conf(text: &str) -> (Vec<(u32, String)>, Option<u32>) {
    let mut modes = Vec::new();
    let mut default = None;
    for line in text.lines() {
        let line = line.trim();
        let Some(inner) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) else {
            continue;
        };
        let mut words = inner.split_whitespace();
        let kind = words.next();
        let attr = |name: &str| inner.split_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('='));
        match kind {
            Some("POWER_MODEL") => {
                if let (Some(id), Some(name)) = (attr("ID").and_then(|i| i.parse().ok()), attr("NAME")) {
                    modes.push((id, name.to_string()));
                }
            }
            Some("PM_CONFIG") => default = attr("DEFAULT").and_then(|d| d.parse().ok()),
            _ => {}
        }
    }
    (modes, default)
}

/// One INA3221 channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PowerRail {
    pub name: String,
    pub power_mw: Option<u64>,
    pub current_ma: Option<u64>,
    pub voltage_mv: Option<u64>,
}

/// Every named rail of every INA3221 (`ina3221x` driver, JetPack 4). Empty elsewhere.
pub fn read_power_rails(root: &SysRoot) -> Vec<PowerRail> {
    const DRIVER: &str = "/sys/bus/i2c/drivers/ina3221x";
    let mut rails = Vec::new();
    for dev in root.names(DRIVER).into_iter().filter(|d| d.contains('-')) {
        for iio in root.names(&format!("{DRIVER}/{dev}")).into_iter().filter(|n| n.starts_with("iio:device")) {
            let base = format!("{DRIVER}/{dev}/{iio}");
            for k in 0..8 {
                let Some(name) = root.read(&format!("{base}/rail_name_{k}")) else {
                    continue;
                };
                rails.push(PowerRail {
                    name,
                    power_mw: root.read_u64(&format!("{base}/in_power{k}_input")),
                    current_ma: root.read_u64(&format!("{base}/in_current{k}_input")),
                    voltage_mv: root.read_u64(&format!("{base}/in_voltage{k}_input")),
                });
            }
        }
    }
    rails
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn l4t_release_line() {
        let r = L4tRelease::parse("# R32 (release), REVISION: 7.1, GCID: 29818004, BOARD: t210ref, EABI: aarch64, DATE: Sat Feb 19 17:05:08 UTC 2022\n").unwrap();
        assert_eq!((r.release.as_str(), r.revision.as_str(), r.board.as_deref()), ("R32", "7.1", Some("t210ref")));
        assert_eq!(L4tRelease::parse(""), None);
        assert_eq!(L4tRelease::parse("garbage"), None);
    }

    #[test]
    fn nvpmodel_conf_and_status() {
        let conf = "# comment\n< POWER_MODEL ID=0 NAME=MAXN >\nCPU_ONLINE CORE_0 1\n< POWER_MODEL ID=1 NAME=5W >\nCPU_A57 MAX_FREQ 918000\n< PM_CONFIG DEFAULT=0 >\n";
        assert_eq!(parse_conf(conf), (vec![(0, "MAXN".into()), (1, "5W".into())], Some(0)));
        assert_eq!(parse_status("pmode:0001\n"), Some(1));
        assert_eq!(parse_status("pmode:xyz"), None);
    }
}

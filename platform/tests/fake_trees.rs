//! `Platform::read` on a fake Jetson Nano tree (tests/fixtures/jetson-nano) and on states derived
//! from it in a temporary copy (5W mode, `powersave`, a hot CPU, missing files), and on this machine.

use std::path::{Path, PathBuf};

use perch_platform::{Platform, SysRoot};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jetson-nano")
}

mod common;
use common::Copy;

fn codes(p: &Platform, threads: Option<usize>) -> Vec<&'static str> {
    p.warnings(threads).into_iter().map(|w| w.code).collect()
}

#[test]
fn jetson_nano_maxn() {
    let p = Platform::read(&SysRoot::new(fixture()));
    let cpu = p.cpu.as_ref().expect("cpuinfo");
    assert_eq!(cpu.model.as_deref(), Some("ARM Cortex-A57 r1p1"));
    assert_eq!(cpu.vendor.as_deref(), Some("ARM"));
    assert_eq!(cpu.logical_cpus, 4);
    let isa = p.isa.unwrap();
    assert_eq!(isa.names(), ["neon"], "A57: NEON only, no dotprod/fp16/i8mm");
    assert_eq!(p.cores.online.as_deref(), Some(&[0, 1, 2, 3][..]));
    assert_eq!(p.cores.present.as_deref(), Some(&[0, 1, 2, 3][..]));
    assert_eq!(p.cores.available_parallelism, None, "a fake tree says nothing about this process");
    assert_eq!(p.cores.usable(), Some(4));

    assert_eq!(p.board.model.as_deref(), Some("NVIDIA Jetson Nano Developer Kit"));
    assert_eq!(p.board.compatible, ["nvidia,p3449-0000-b00+p3448-0000-b00", "nvidia,jetson-nano", "nvidia,tegra210"]);
    assert!(p.board.is_jetson());
    let l4t = p.board.l4t.as_ref().unwrap();
    assert_eq!((l4t.release.as_str(), l4t.revision.as_str(), l4t.board.as_deref()), ("R32", "7.1", Some("t210ref")));

    let mode = p.nvpmodel.as_ref().unwrap();
    assert_eq!((mode.id, mode.name.as_deref(), mode.source), (Some(0), Some("MAXN"), Some("status")));
    assert_eq!(mode.modes, [(0, "MAXN".to_string()), (1, "5W".to_string())]);

    assert_eq!(p.clocks.len(), 4);
    let c0 = &p.clocks[0];
    assert_eq!(c0.governor.as_deref(), Some("schedutil"));
    assert_eq!((c0.cur_khz, c0.max_khz, c0.hw_max_khz, c0.hw_min_khz), (Some(1479000), Some(1479000), Some(1479000), Some(102000)));
    assert_eq!(p.clocks[3].cur_khz, Some(921600));

    let kinds: Vec<_> = p.thermal.iter().map(|z| z.kind.as_deref().unwrap()).collect();
    assert_eq!(kinds, ["AO-therm", "CPU-therm", "GPU-therm", "PLL-therm", "PMIC-Die", "thermal-fan-est"]);
    assert_eq!(p.thermal[1].temp_mc, Some(34000));
    assert_eq!(p.thermal[1].trips.len(), 2);

    let rails: Vec<_> = p.power.iter().map(|r| (r.name.as_str(), r.power_mw)).collect();
    assert_eq!(rails, [("POM_5V_IN", Some(3291)), ("POM_5V_GPU", Some(79)), ("POM_5V_CPU", Some(1025))]);
    assert_eq!(p.mem_total_kib, Some(4059712));
    assert_eq!(p.mem_available_kib, Some(2712116));

    // MAXN, schedutil, cool, 4 cores: nothing to warn about (PMIC-Die's constant 100 °C included).
    assert!(p.warnings(Some(4)).is_empty(), "{:?}", p.warnings(Some(4)));
    assert_eq!(codes(&p, Some(6)), ["threads_exceed_cores"]);

    // The JSON form has every section.
    let json = serde_json::to_value(&p).unwrap();
    for key in ["cpu", "isa", "cores", "clocks", "thermal", "cooling", "board", "nvpmodel", "power"] {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
}

#[test]
fn nano_in_5w_mode() {
    let t = Copy::new("jetson-nano", "5w");
    t.write("var/lib/nvpmodel/status", "pmode:0001\n");
    t.write("sys/devices/system/cpu/online", "0-1\n");
    t.write("sys/devices/system/cpu/offline", "2-3\n");
    for cpu in 0..2 {
        t.write(&format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_max_freq"), "918000\n");
        t.write(&format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"), "918000\n");
    }
    for cpu in 2..4 {
        t.remove(&format!("sys/devices/system/cpu/cpu{cpu}/cpufreq"));
        t.write(&format!("sys/devices/system/cpu/cpu{cpu}/online"), "0\n");
    }
    let p = Platform::read(&t.root());
    let mode = p.nvpmodel.as_ref().unwrap();
    assert_eq!((mode.id, mode.name.as_deref()), (Some(1), Some("5W")));
    assert_eq!(p.cores.offline(), [2, 3]);
    assert_eq!(p.cores.usable(), Some(2));
    assert_eq!(p.clocks[2].governor, None, "an offline core's cpufreq is gone: not available, no error");
    assert_eq!(codes(&p, Some(4)), ["cores_offline", "clock_capped", "power_mode", "threads_exceed_cores"]);
    let w = p.warnings(Some(4));
    assert!(w[0].message.contains("only 2 of 4 cores online") && w[0].message.contains("nvpmodel -m 0"), "{}", w[0].message);
    assert!(w[1].message.contains("918 MHz") && w[1].message.contains("1479 MHz"), "{}", w[1].message);
    assert!(w[2].message.contains("5W"), "{}", w[2].message);
}

#[test]
fn powersave_and_throttling() {
    let t = Copy::new("jetson-nano", "hot");
    t.write("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor", "powersave\n");
    t.write("sys/class/thermal/thermal_zone1/temp", "97500\n");
    t.write("sys/class/thermal/cooling_device0/type", "cpufreq-cpu0\n");
    t.write("sys/class/thermal/cooling_device0/cur_state", "3\n");
    t.write("sys/class/thermal/cooling_device0/max_state", "14\n");
    t.write("sys/class/thermal/cooling_device1/type", "pwm-fan\n");
    t.write("sys/class/thermal/cooling_device1/cur_state", "255\n");
    let p = Platform::read(&t.root());
    assert_eq!(codes(&p, None), ["governor_powersave", "thermal_throttling"]);
    let w = p.warnings(None);
    assert!(w[0].message.contains("cpu1"), "{}", w[0].message);
    assert!(w[1].message.contains("CPU-therm at 97.5 °C reached its passive trip point (97.0 °C)"), "{}", w[1].message);
    assert!(w[1].message.contains("cpufreq-cpu0") && !w[1].message.contains("pwm-fan"), "a running fan is not throttling: {}", w[1].message);
}

#[test]
fn missing_and_garbled_files_are_not_available() {
    let t = Copy::new("jetson-nano", "broken");
    t.remove("proc/cpuinfo");
    t.remove("var/lib/nvpmodel");
    t.write("sys/devices/system/cpu/online", "garbage\n");
    t.write("sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq", "fast\n");
    t.write("sys/class/thermal/thermal_zone1/temp", "\n");
    std::fs::write(t.0.join("etc/nvpmodel.conf"), [0xff, 0xfe, 0x00]).unwrap();
    let p = Platform::read(&t.root());
    assert!(p.cpu.is_none() && p.isa.is_none());
    assert_eq!(p.cores.online, None);
    assert_eq!(p.clocks[0].cur_khz, None);
    assert_eq!(p.clocks[0].governor.as_deref(), Some("schedutil"));
    assert_eq!(p.thermal[1].temp_mc, None);
    assert!(p.nvpmodel.is_none(), "unreadable config and no status: no power mode");
    assert!(p.warnings(Some(4)).is_empty());

    // Nothing at all.
    let empty = Platform::read(&SysRoot::new(t.0.join("does-not-exist")));
    assert!(empty.cpu.is_none() && empty.clocks.is_empty() && empty.thermal.is_empty() && empty.power.is_empty());
    assert!(empty.board.model.is_none() && empty.nvpmodel.is_none() && !empty.board.is_jetson());
    assert!(empty.warnings(Some(4)).is_empty());
}

#[test]
fn nvpmodel_default_when_no_status() {
    let t = Copy::new("jetson-nano", "default");
    t.remove("var/lib/nvpmodel/status");
    let mode = Platform::read(&t.root()).nvpmodel.unwrap();
    assert_eq!((mode.id, mode.name.as_deref(), mode.source), (Some(0), Some("MAXN"), Some("default")));
}

/// This machine (x86 in CI): the real files parse, and cpuinfo's flags agree with what the CPU
/// itself reports for the features the AVX2 kernels dispatch on.
#[test]
fn this_machine() {
    let p = Platform::read(&SysRoot::host());
    if !cfg!(target_os = "linux") {
        return;
    }
    let cpu = p.cpu.as_ref().expect("/proc/cpuinfo on Linux");
    assert!(cpu.logical_cpus >= 1);
    assert!(cpu.model.is_some(), "{cpu:?}");
    let online = p.cores.online.as_ref().expect("/sys/devices/system/cpu/online");
    assert!(!online.is_empty());
    assert!(p.cores.available_parallelism.unwrap() >= 1);
    let (listed, detected) = (p.isa.unwrap(), perch_platform::IsaFeatures::detected());
    #[cfg(target_arch = "x86_64")]
    assert_eq!((listed.avx2, listed.fma), (detected.avx2, detected.fma));
    #[cfg(target_arch = "aarch64")]
    assert_eq!(listed.neon, detected.neon);
    let _ = (listed, detected);
    let _ = p.warnings(None);
}

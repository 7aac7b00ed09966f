//! `EnergyMeter` on fake RAPL (tests/fixtures/x86-rapl) and INA3221 (tests/fixtures/jetson-nano) trees whose
//! counters are rewritten between samples in a temporary copy, with sample times made up on the caller's
//! clock (no sleeps); `process` on a fake /proc/self (tests/fixtures/proc-self) and on this process.

use std::time::{Duration, Instant};

use perch_platform::process::{peak_rss_kib, process_cpu_s, reset_peak_rss, rss_kib, thread_times};
use perch_platform::{EnergyMeter, EnergyReading, SysRoot};

mod common;
use common::Copy;

const RAPL: &str = "sys/class/powercap";
const MAX_UJ: u64 = 262143328850;
const INA: &str = "sys/bus/i2c/drivers/ina3221x/6-0040/iio:device0";

/// Sets zone `zone`'s counter (e.g. `intel-rapl:0:0`) to `uj`.
fn set_uj(t: &Copy, zone: &str, uj: u64) {
    t.write(&format!("{RAPL}/{zone}/energy_uj"), &format!("{uj}\n"));
}

fn set_mw(t: &Copy, k: u32, mw: u64) {
    t.write(&format!("{INA}/in_power{k}_input"), &format!("{mw}\n"));
}

fn joules(m: &EnergyMeter) -> Vec<(String, f64)> {
    m.readings().into_iter().map(|r| (r.name, (r.joules * 1e6).round() / 1e6)).collect()
}

fn named(v: &[(&str, f64)]) -> Vec<(String, f64)> {
    v.iter().map(|(n, j)| (n.to_string(), *j)).collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn rapl_zones_deltas_and_psys_total() {
    let t = Copy::new("x86-rapl", "rapl");
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    assert_eq!(m.method(), Some("rapl"));
    let names: Vec<String> = m.readings().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["package-0", "package-0/core", "package-0/uncore", "psys"], "control type `intel-rapl` is no zone");
    assert_eq!(m.total(), Some(("psys".to_string(), 0.0)));
    assert!(m.mean_watts().is_empty(), "no time has passed");

    set_uj(&t, "intel-rapl:0", 81234567890 + 10_000_000);
    set_uj(&t, "intel-rapl:0:0", 40123456789 + 6_000_000);
    set_uj(&t, "intel-rapl:0:1", 1234567890 + 500_000);
    set_uj(&t, "intel-rapl:1", 150987654321 + 15_000_000);
    m.sample(t0 + Duration::from_secs(2));
    assert_eq!(joules(&m), named(&[("package-0", 10.0), ("package-0/core", 6.0), ("package-0/uncore", 0.5), ("psys", 15.0)]));
    // psys is the platform: it contains the package, so it is the total on its own.
    assert_eq!(m.total(), Some(("psys".to_string(), 15.0)));
    let w = m.mean_watts();
    assert_eq!(w[0], EnergyReading { name: "package-0".into(), joules: 5.0 });
    assert!(close(w[3].joules, 7.5), "{w:?}");
}

#[test]
fn rapl_counter_wraps() {
    let t = Copy::new("x86-rapl", "wrap");
    set_uj(&t, "intel-rapl:0", MAX_UJ - 1_000_000);
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    set_uj(&t, "intel-rapl:0", 2_000_000);
    m.sample(t0 + Duration::from_secs(1));
    assert!(close(m.readings()[0].joules, 3.0), "1 J to the wrap + 2 J after: {:?}", m.readings());
    set_uj(&t, "intel-rapl:0", 4_000_000);
    m.sample(t0 + Duration::from_secs(2));
    assert!(close(m.readings()[0].joules, 5.0), "{:?}", m.readings());
}

#[test]
fn rapl_total_without_psys_sums_packages_only() {
    let t = Copy::new("x86-rapl", "pkgs");
    t.remove(&format!("{RAPL}/intel-rapl:1"));
    for (zone, name) in [("intel-rapl:1", "package-1"), ("intel-rapl:1:0", "core")] {
        t.write(&format!("{RAPL}/{zone}/name"), &format!("{name}\n"));
        t.write(&format!("{RAPL}/{zone}/max_energy_range_uj"), &format!("{MAX_UJ}\n"));
        set_uj(&t, zone, 1000);
    }
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    set_uj(&t, "intel-rapl:0", 81234567890 + 4_000_000);
    set_uj(&t, "intel-rapl:0:0", 40123456789 + 3_000_000);
    set_uj(&t, "intel-rapl:1", 1000 + 2_000_000);
    set_uj(&t, "intel-rapl:1:0", 1000 + 1_000_000);
    m.sample(t0 + Duration::from_secs(1));
    let names: Vec<String> = m.readings().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["package-0", "package-0/core", "package-0/uncore", "package-1", "package-1/core"]);
    assert_eq!(m.total(), Some(("package-0+package-1".to_string(), 6.0)), "sub-zones are parts of their package");
}

#[test]
fn rapl_psys_that_never_counts_falls_back_to_packages() {
    let t = Copy::new("x86-rapl", "deadpsys");
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    set_uj(&t, "intel-rapl:0", 81234567890 + 4_000_000);
    m.sample(t0 + Duration::from_secs(1));
    assert_eq!(m.total(), Some(("package-0".to_string(), 4.0)));
}

#[test]
fn rapl_unreadable_counters_are_no_source() {
    // Root-only energy_uj looks like a missing file to a reader (tests may run as root, where chmod
    // would not stop the read, so the file is removed or garbled instead).
    let t = Copy::new("x86-rapl", "noperm");
    t.remove(&format!("{RAPL}/intel-rapl:0/energy_uj"));
    t.write(&format!("{RAPL}/intel-rapl:0:0/energy_uj"), "");
    t.write(&format!("{RAPL}/intel-rapl:0:1/energy_uj"), "x\n");
    let m = EnergyMeter::open(&t.root());
    let names: Vec<String> = m.readings().into_iter().map(|r| r.name).collect();
    assert_eq!(names, ["psys"], "only the readable zone is a source");

    t.remove(&format!("{RAPL}/intel-rapl:1/energy_uj"));
    let mut m = EnergyMeter::open(&t.root());
    m.sample(Instant::now());
    assert_eq!((m.method(), m.total()), (None, None));
    assert!(m.readings().is_empty() && m.mean_watts().is_empty());

    let mut none = EnergyMeter::open(&SysRoot::new(t.0.join("does-not-exist")));
    none.sample(Instant::now());
    assert_eq!((none.method(), none.total(), none.readings()), (None, None, vec![]));
}

#[test]
fn rapl_counter_lost_mid_run_is_caught_up() {
    let t = Copy::new("x86-rapl", "lost");
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    t.remove(&format!("{RAPL}/intel-rapl:0/energy_uj"));
    m.sample(t0 + Duration::from_secs(1));
    assert_eq!(m.readings()[0].joules, 0.0);
    set_uj(&t, "intel-rapl:0", 81234567890 + 2_000_000);
    m.sample(t0 + Duration::from_secs(2));
    assert!(close(m.readings()[0].joules, 2.0));
}

#[test]
fn ina3221_constant_power() {
    let t = Copy::new("jetson-nano", "ina-const");
    for k in 0..3 {
        set_mw(&t, k, [5000, 1000, 2000][k as usize]);
    }
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    assert_eq!(m.method(), Some("ina3221"));
    for s in 1..=10 {
        m.sample(t0 + Duration::from_secs(s));
    }
    assert_eq!(joules(&m), named(&[("POM_5V_IN", 50.0), ("POM_5V_GPU", 10.0), ("POM_5V_CPU", 20.0)]));
    assert_eq!(m.total(), Some(("POM_5V_IN".to_string(), 50.0)), "the input rail, not a sum of rails");
    assert!(close(m.mean_watts()[0].joules, 5.0));
}

#[test]
fn ina3221_ramp_is_integrated_by_trapezoids() {
    let t = Copy::new("jetson-nano", "ina-ramp");
    set_mw(&t, 0, 0);
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    // 0 -> 4000 mW linearly over 4 s, sampled unevenly: exactly 8 J for any spacing.
    for ms in [500u64, 1500, 2000, 3500, 4000] {
        set_mw(&t, 0, ms);
        m.sample(t0 + Duration::from_millis(ms));
    }
    assert!(close(m.readings()[0].joules, 8.0), "{:?}", m.readings());
    assert!(close(m.mean_watts()[0].joules, 2.0));
    // A sample that goes back in time adds nothing (and does not panic).
    m.sample(t0);
    assert!(close(m.readings()[0].joules, 8.0));
}

#[test]
fn ina3221_total_is_matched_by_rail_name() {
    let t = Copy::new("jetson-nano", "ina-order");
    for (k, name, mw) in [(0, "POM_5V_CPU", 1000), (1, "POM_5V_GPU", 500), (2, "POM_5V_IN", 4000)] {
        t.write(&format!("{INA}/rail_name_{k}"), &format!("{name}\n"));
        set_mw(&t, k, mw);
    }
    let t0 = Instant::now();
    let mut m = EnergyMeter::open_at(&t.root(), t0);
    m.sample(t0 + Duration::from_secs(2));
    assert_eq!(joules(&m), named(&[("POM_5V_CPU", 2.0), ("POM_5V_GPU", 1.0), ("POM_5V_IN", 8.0)]));
    assert_eq!(m.total(), Some(("POM_5V_IN".to_string(), 8.0)));

    // No input rail: rails overlap, so there is no total to be had from them.
    t.write(&format!("{INA}/rail_name_2"), "POM_5V_SYS\n");
    assert_eq!(EnergyMeter::open(&t.root()).total(), None);
}

#[test]
fn energy_on_this_machine_does_not_fail() {
    let mut m = EnergyMeter::open(&SysRoot::host());
    m.sample(Instant::now());
    assert_eq!(m.method().is_some(), !m.readings().is_empty());
    assert!(m.readings().iter().all(|r| r.joules >= 0.0));
}

#[test]
fn fake_proc_threads_and_memory() {
    let t = Copy::new("proc-self", "proc");
    let root = t.root();
    let threads: Vec<(u32, String, u64)> =
        thread_times(&root, "self").into_iter().map(|th| (th.tid, th.name, (th.cpu_s * 100.0).round() as u64)).collect();
    // USER_HZ is 100 on Linux (x86, arm64): utime + stime ticks / 100.
    assert_eq!(
        threads,
        [(4242, "perch".to_string(), 140), (4243, "det (0) x) y".to_string(), 260), (4244, "capture".to_string(), 55)]
    );
    assert_eq!((process_cpu_s(&root, "self").map(|s| (s * 100.0).round() as u64)), Some(475));
    assert_eq!((peak_rss_kib(&root, "self"), rss_kib(&root, "self")), (Some(48212), Some(20480)));

    // Without comm the name comes from stat; a thread whose stat is gone has exited.
    t.remove("proc/self/task/4243/comm");
    t.remove("proc/self/task/4244/stat");
    let names: Vec<String> = thread_times(&root, "self").into_iter().map(|th| th.name).collect();
    assert_eq!(names, ["perch", "det (0) x) y"]);

    assert!(thread_times(&root, "4242").is_empty());
    assert_eq!((process_cpu_s(&root, "4242"), peak_rss_kib(&root, "4242"), rss_kib(&root, "4242")), (None, None, None));
}

#[test]
fn this_process_threads() {
    if !cfg!(target_os = "linux") {
        return;
    }
    let host = SysRoot::host();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let spinner = std::thread::Builder::new()
        .name("perch-spin".into())
        .spawn(move || {
            // Spin ~50 ms, longer if the (shared) machine kept this thread off the CPU.
            let start = Instant::now();
            let mut x = 0u64;
            while start.elapsed() < Duration::from_millis(50)
                || (start.elapsed() < Duration::from_secs(5) && !spun(&SysRoot::host()))
            {
                x = std::hint::black_box(x.wrapping_add(1));
            }
            ready_tx.send(()).unwrap();
            let _ = done_rx.recv();
        })
        .unwrap();
    ready_rx.recv().unwrap();
    let threads = thread_times(&host, "self");
    done_tx.send(()).unwrap();
    spinner.join().unwrap();
    let spin = threads.iter().find(|t| t.name == "perch-spin").unwrap_or_else(|| panic!("{threads:?}"));
    assert!(spin.cpu_s > 0.0, "{spin:?}");
    assert!(process_cpu_s(&host, "self").unwrap() >= spin.cpu_s);

    // RSS first: the peak read afterwards is at least every RSS before it.
    let rss = rss_kib(&host, "self").unwrap();
    let peak = peak_rss_kib(&host, "self").unwrap();
    assert!(rss > 0 && peak >= rss, "peak {peak} rss {rss}");
    // Permitted for the process's own owner on Linux >= 4.0; some sandboxes refuse it.
    if reset_peak_rss() {
        let rss = rss_kib(&host, "self").unwrap();
        assert!(peak_rss_kib(&host, "self").unwrap() >= rss);
    }
}

fn spun(host: &SysRoot) -> bool {
    thread_times(host, "self").iter().any(|t| t.name == "perch-spin" && t.cpu_s > 0.0)
}

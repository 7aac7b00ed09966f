//! Deployment pieces: `perch info` on a fake Jetson Nano tree and on this machine, and the systemd
//! unit `launch/perch.service` (structure always; `systemd-analyze verify` where it is installed).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn perch() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_perch"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

fn info_json(args: &[&str]) -> serde_json::Value {
    let out = perch().arg("info").arg("--json").args(args).output().expect("perch runs");
    assert!(out.status.success(), "perch info failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("perch info --json prints JSON")
}

const NANO: &str = "platform/tests/fixtures/jetson-nano";

#[test]
fn info_on_a_fake_jetson_nano() {
    let j = info_json(&["--root", NANO, "--config", "configs/nano.toml"]);
    assert_eq!(j["schema"], "perch.info/1");
    let p = &j["platform"];
    assert_eq!(p["cpu"]["model"], "ARM Cortex-A57 r1p1");
    assert_eq!(p["isa"]["neon"], true);
    assert_eq!(p["isa"]["dotprod"], false);
    assert_eq!(p["board"]["model"], "NVIDIA Jetson Nano Developer Kit");
    assert_eq!(p["nvpmodel"]["name"], "MAXN");
    assert_eq!(p["clocks"].as_array().unwrap().len(), 4);
    assert_eq!(j["threads"]["configured"], 4, "configs/nano.toml sets detect.threads = 4");
    assert_eq!(j["warnings"], serde_json::json!([]));
    assert!(j["kernels"]["detect_f32"]["fused"].is_string());
    assert!(j["kernels"]["preprocess"].is_string());

    // More threads than the Nano's cores: a warning that names the key.
    let j = info_json(&["--root", NANO, "--config", "configs/nano.toml", "--set", "detect.threads=8"]);
    assert_eq!(j["warnings"][0]["code"], "threads_exceed_cores");
    assert!(j["warnings"][0]["message"].as_str().unwrap().contains("detect.threads = 8"));

    // Text form.
    let out = perch().args(["info", "--root", NANO]).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    for needle in ["ARM Cortex-A57", "nvpmodel mode 0 MAXN", "cpu0 schedutil 1479 MHz", "CPU-therm 34.0 °C", "POM_5V_IN 3291 mW", "warnings   none"] {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

#[test]
fn info_on_this_machine_and_on_nothing() {
    let j = info_json(&[]);
    assert_eq!(j["arch"], std::env::consts::ARCH);
    if cfg!(target_os = "linux") {
        assert!(j["platform"]["cpu"]["logical_cpus"].as_u64().unwrap() >= 1);
        assert!(j["threads"]["effective"].as_u64().unwrap() >= 1);
    }
    // An empty root: everything "not available", no crash.
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("empty-root");
    std::fs::create_dir_all(&empty).unwrap();
    let out = perch().args(["info", "--root"]).arg(&empty).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("cpu        not available") && text.contains("clocks     not available"), "{text}");
}

#[test]
fn info_bad_config_names_the_key() {
    let out = perch().args(["info", "--config", "configs/nano.toml", "--set", "detect.thread=4"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("detect.thread"), "{err}");
}

/// `[Section]` -> key -> values (a key may repeat).
fn parse_unit(text: &str) -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    let mut section = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_string());
            out.entry(name.to_string()).or_default();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("line {}: not key=value: {line}", n + 1));
        let section = section.clone().unwrap_or_else(|| panic!("line {}: key outside a section", n + 1));
        out.entry(section).or_default().entry(key.trim().to_string()).or_default().push(value.trim().to_string());
    }
    out
}

const UNIT: &str = "launch/perch.service";

#[test]
fn service_unit_structure() {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(UNIT)).unwrap();
    let unit = parse_unit(&text);
    let known: [(&str, &[&str]); 3] = [
        ("Unit", &["Description", "After", "Wants", "StartLimitIntervalSec", "StartLimitBurst"]),
        (
            "Service",
            &[
                "Type", "User", "Group", "SupplementaryGroups", "WorkingDirectory", "Environment", "EnvironmentFile",
                "ExecStart", "Restart", "RestartSec", "KillSignal", "TimeoutStopSec", "StandardOutput", "StandardError",
                "SyslogIdentifier", "StateDirectory", "NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                "ProtectKernelTunables", "ProtectKernelModules", "ProtectControlGroups",
            ],
        ),
        ("Install", &["WantedBy"]),
    ];
    assert_eq!(unit.keys().collect::<Vec<_>>(), ["Install", "Service", "Unit"]);
    for (section, keys) in known {
        for key in unit[section].keys() {
            assert!(keys.contains(&key.as_str()), "[{section}] {key}: not a key this unit is meant to use (typo?)");
        }
    }
    let one = |s: &str, k: &str| unit[s].get(k).and_then(|v| v.last()).map(String::as_str);
    let exec = one("Service", "ExecStart").unwrap();
    let argv: Vec<&str> = exec.split_whitespace().collect();
    assert!(argv[0].starts_with('/') && argv[0].ends_with("/perch"), "absolute path to the binary: {exec}");
    assert_eq!(&argv[1..4], ["run", "--config", "${PERCH_CONFIG}"], "config path is an argument: {exec}");
    assert!(unit["Service"]["Environment"].iter().any(|e| e.starts_with("PERCH_CONFIG=/")), "a default config path");
    assert_eq!(one("Service", "Restart"), Some("on-failure"));
    let user = one("Service", "User").unwrap();
    assert!(user != "root" && user != "0", "runs unprivileged");
    assert!(one("Service", "SupplementaryGroups").unwrap().split_whitespace().any(|g| g == "video"));
    assert_eq!(one("Service", "StandardOutput"), Some("journal"));
    assert_eq!(one("Service", "StandardError"), Some("journal"));
    assert_eq!(one("Service", "KillSignal"), Some("SIGTERM"), "perch reports and exits cleanly on SIGTERM");
    assert_eq!(one("Install", "WantedBy"), Some("multi-user.target"));
    // The report path is inside the StateDirectory, the only writable place under ProtectSystem=strict.
    let state = one("Service", "StateDirectory").unwrap();
    assert!(exec.contains(&format!("/var/lib/{state}/")), "{exec}");
}

/// systemd's own parser, with the binary path pointed at this build (verify checks it exists).
/// Required in CI (`PERCH_REQUIRE_FIXTURES=1`; `.ci/apt.sh` installs `systemd`).
#[test]
fn service_unit_systemd_analyze_verify() {
    let ok = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        perch_pipeline::fixtures::missing("systemd-analyze not installed (apt install systemd)");
        return;
    }
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(UNIT)).unwrap();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("unit");
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("perch.service");
    let text = text.replace("/opt/perch/perch ", &format!("{} ", env!("CARGO_BIN_EXE_perch")));
    std::fs::write(&unit, text).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&unit).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Unknown keys and bad values are only logged (exit 0): any line about our unit is a failure.
    let ours: Vec<&str> = stderr.lines().filter(|l| l.contains("perch.service")).collect();
    assert!(out.status.success() && ours.is_empty(), "systemd-analyze verify: {stderr}");
}

//! `perch info`: the machine as perch sees it (CPU, ISA features, the kernels that will run,
//! threads, board, Jetson power mode, clocks, thermals) and the warnings that matter for a run.

use std::path::PathBuf;

use clap::Args;
use perch_platform::{IsaFeatures, Platform, SysRoot, Warning};
use serde::Serialize;

#[derive(Args)]
pub struct InfoArgs {
    /// Read /proc, /sys and /etc below this directory instead of / (a copy of another machine's
    /// files). The ISA features "this process detects" and the kernels still describe this CPU.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// The config whose `detect.threads` to check against the cores (else the built-in default).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Override one config key (repeatable), as for `perch run`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// One JSON object (schema `perch.info/1`) instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Info {
    schema: &'static str,
    /// The architecture this binary was built for.
    arch: &'static str,
    /// What this process's CPU reports (the test the kernels' dispatch makes).
    isa_detected: IsaFeatures,
    kernels: Kernels,
    threads: Threads,
    platform: Platform,
    warnings: Vec<Warning>,
}

#[derive(Serialize)]
struct Kernels {
    detect_f32: perch_detect::model::kernels::KernelPaths,
    preprocess: &'static str,
    /// The int8 GEMM/conv variant; `None` while this build has no int8 path.
    int8: Option<&'static str>,
}

#[derive(Serialize)]
struct Threads {
    /// `detect.threads` of the config (0: one per core).
    configured: usize,
    /// What the detector's pool gets.
    effective: Option<usize>,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    let cfg: crate::config::Config = perch_pipeline::config::load(args.config.as_deref(), &args.sets)?;
    let root = SysRoot::new(&args.root);
    let platform = Platform::read(&root);
    let configured = cfg.detect.threads;
    let effective = if configured > 0 { Some(configured) } else { platform.cores.usable() };
    let info = Info {
        schema: "perch.info/1",
        arch: std::env::consts::ARCH,
        isa_detected: IsaFeatures::detected(),
        kernels: Kernels {
            detect_f32: perch_detect::model::kernels::kernel_paths(),
            preprocess: perch_preprocess::simd_path(),
            int8: Some(perch_int8::active_kernel()),
        },
        threads: Threads { configured, effective },
        warnings: platform.warnings(effective),
        platform,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", text(&info));
    }
    Ok(())
}

const NA: &str = "not available";

fn text(i: &Info) -> String {
    use std::fmt::Write;
    let p = &i.platform;
    let mut s = String::new();
    let mut line = |k: &str, v: String| {
        let _ = writeln!(s, "{k:<11}{v}");
    };
    line("root", p.root.clone());
    line(
        "cpu",
        match &p.cpu {
            Some(c) => format!(
                "{} ({}), {} logical CPUs; binary built for {}",
                c.model.as_deref().unwrap_or("unknown model"),
                c.vendor.as_deref().unwrap_or("unknown vendor"),
                c.logical_cpus,
                i.arch
            ),
            None => NA.into(),
        },
    );
    line("isa", p.isa.map_or(NA.into(), |f| format!("{} (/proc/cpuinfo)", names(&f))));
    line("", format!("{} (this process's CPU)", names(&i.isa_detected)));
    let k = &i.kernels;
    line("kernels", format!("detect f32: fused {}, gemm {}", k.detect_f32.fused, k.detect_f32.gemm));
    line("", format!("detect int8: {}", k.int8.unwrap_or("not in this build")));
    line("", format!("preprocess: {}", k.preprocess));
    let cores = &p.cores;
    line(
        "cores",
        format!(
            "online {} of present {}{}",
            cores.online.as_ref().map_or(NA.into(), |c| list(c)),
            cores.present.as_ref().map_or(NA.into(), |c| list(c)),
            cores.available_parallelism.map_or(String::new(), |n| format!("; this process may use {n}"))
        ),
    );
    line(
        "threads",
        format!(
            "detect.threads = {}{}",
            i.threads.configured,
            match (i.threads.configured, i.threads.effective) {
                (0, Some(n)) => format!(" (one per core: {n})"),
                (0, None) => " (one per core)".into(),
                _ => String::new(),
            }
        ),
    );
    line("board", p.board.model.clone().unwrap_or_else(|| NA.into()));
    if p.board.is_jetson() || p.nvpmodel.is_some() {
        let l4t = p.board.l4t.as_ref().map_or(format!("L4T {NA}"), |l| {
            format!("L4T {}.{}{}", l.release, l.revision, l.board.as_ref().map_or(String::new(), |b| format!(" ({b})")))
        });
        let mode = p.nvpmodel.as_ref().map_or(format!("nvpmodel {NA}"), |m| {
            format!(
                "nvpmodel mode {} {} ({})",
                m.id.map_or("?".into(), |i| i.to_string()),
                m.name.as_deref().unwrap_or("?"),
                m.source.unwrap_or("?")
            )
        });
        line("jetson", format!("{l4t}, {mode}"));
    }
    if p.clocks.iter().all(|c| c.governor.is_none() && c.cur_khz.is_none()) {
        line("clocks", format!("{NA} (no cpufreq)"));
    } else {
        for (n, c) in p.clocks.iter().enumerate() {
            let mhz = |k: Option<u64>| k.map_or("?".into(), |k| (k / 1000).to_string());
            line(
                if n == 0 { "clocks" } else { "" },
                format!(
                    "cpu{} {} {} MHz (ceiling {}, hardware {}-{})",
                    c.cpu,
                    c.governor.as_deref().unwrap_or("-"),
                    mhz(c.cur_khz),
                    mhz(c.max_khz),
                    mhz(c.hw_min_khz),
                    mhz(c.hw_max_khz)
                ),
            );
        }
    }
    let temps: Vec<String> = p
        .thermal
        .iter()
        .filter_map(|z| Some(format!("{} {:.1} °C", z.kind.as_deref().unwrap_or("?"), z.temp_mc? as f64 / 1000.0)))
        .collect();
    line("thermal", if temps.is_empty() { NA.into() } else { temps.join(", ") });
    if !p.power.is_empty() {
        let rails: Vec<String> =
            p.power.iter().map(|r| format!("{} {}", r.name, r.power_mw.map_or("?".into(), |m| format!("{m} mW")))).collect();
        line("power", rails.join(", "));
    }
    line(
        "memory",
        match (p.mem_total_kib, p.mem_available_kib) {
            (Some(t), Some(a)) => format!("{} MiB total, {} MiB available", t / 1024, a / 1024),
            (Some(t), None) => format!("{} MiB total", t / 1024),
            _ => NA.into(),
        },
    );
    if i.warnings.is_empty() {
        line("warnings", "none".into());
    }
    for w in &i.warnings {
        line("warning", format!("[{}] {}", w.code, w.message));
    }
    s
}

fn names(f: &IsaFeatures) -> String {
    let n = f.names();
    if n.is_empty() {
        "none of neon/dotprod/i8mm/fp16/sve/avx2/fma/f16c/avx512f/avx512_vnni/avx_vnni".into()
    } else {
        n.join(" ")
    }
}

/// `0-3`, `0-1,3`.
fn list(cpus: &[u32]) -> String {
    if cpus.is_empty() {
        return "none".into();
    }
    let mut parts = Vec::new();
    let mut start = cpus[0];
    let mut prev = cpus[0];
    for &c in &cpus[1..] {
        if c != prev + 1 {
            parts.push(if start == prev { start.to_string() } else { format!("{start}-{prev}") });
            start = c;
        }
        prev = c;
    }
    parts.push(if start == prev { start.to_string() } else { format!("{start}-{prev}") });
    parts.join(",")
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_list_ranges() {
        assert_eq!(super::list(&[0, 1, 2, 3]), "0-3");
        assert_eq!(super::list(&[0, 1, 3]), "0-1,3");
        assert_eq!(super::list(&[2]), "2");
        assert_eq!(super::list(&[]), "none");
    }
}

//! `perch bench pipeline | sustained | cold-start`: the whole pipeline measured (the detector alone
//! is `perch bench detect`, the framework comparison `perch bench compare`). Every report says
//! what ran where: the machine and its load, the build, the command, and a hash of the input.
//! Reports are JSON (schemas in the README) plus Markdown; `--plots DIR` draws PNGs.

pub mod cold;
pub mod compare;
pub mod markdown;
pub mod plots;
pub mod record;
pub mod sampler;
pub mod step;
pub mod sustained;
pub mod sweep;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use perch_detect::eval::table::{loadavg, Machine};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::Config;

/// Where, what and on which input a bench ran.
#[derive(Clone, Debug, Serialize)]
pub struct Header {
    pub schema: &'static str,
    pub perch_version: &'static str,
    pub started_unix: u64,
    /// The command line as typed.
    pub command: String,
    pub machine: Machine,
    /// The kernels this CPU runs (as `perch info` shows them).
    pub kernels: Kernels,
    pub build: Build,
    pub input: Input,
    /// detect.model, detect.imgsz, detect.threads (0 = all cores), detect.schedule, pipeline.budget_ms.
    pub detector: Detector,
}

#[derive(Clone, Debug, Serialize)]
pub struct Kernels {
    pub detect_f32_gemm: String,
    pub int8: &'static str,
    pub preprocess: &'static str,
}

#[derive(Clone, Debug, Serialize)]
pub struct Build {
    pub target_arch: &'static str,
    pub profile: &'static str,
    pub features: Vec<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Input {
    pub path: String,
    /// SHA-256 over the folder's files in name order (relative name, NUL, contents): two reports
    /// with the same hash replayed the same frames.
    pub sha256: Option<String>,
    pub files: usize,
    pub bytes: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Detector {
    pub model: String,
    pub imgsz: u32,
    pub threads: usize,
    pub schedule: String,
    pub budget_ms: f64,
}

impl Header {
    pub fn new(schema: &'static str, cfg: &Config) -> anyhow::Result<Self> {
        let mut features = Vec::new();
        if cfg!(feature = "rerun") {
            features.push("rerun");
        }
        if cfg!(feature = "camera") {
            features.push("camera");
        }
        if cfg!(feature = "ros2") {
            features.push("ros2");
        }
        let paths = perch_detect::model::kernels::kernel_paths();
        Ok(Self {
            schema,
            perch_version: env!("CARGO_PKG_VERSION"),
            started_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            machine: Machine::probe(),
            kernels: Kernels { detect_f32_gemm: paths.gemm.to_string(), int8: perch_int8::active_kernel(), preprocess: perch_preprocess::simd_path() },
            build: Build { target_arch: std::env::consts::ARCH, profile: if cfg!(debug_assertions) { "debug" } else { "release" }, features },
            input: if cfg.source.kind == perch_capture::SourceKind::Replay {
                hash_input(&cfg.source.path)?
            } else {
                Input { path: format!("{:?} source (live: no input hash)", cfg.source.kind), sha256: None, files: 0, bytes: 0 }
            },
            detector: Detector {
                model: cfg.detect.model.display().to_string(),
                imgsz: cfg.detect.imgsz,
                threads: cfg.detect.threads,
                schedule: cfg.detect.schedule.as_str().to_string(),
                budget_ms: cfg.pipeline.budget().as_secs_f64() * 1e3,
            },
        })
    }

    /// Note the load average at the end (other work on the machine during the bench).
    pub fn finish(&mut self) {
        self.machine.loadavg_end = loadavg();
    }
}

/// Hash every file under `dir` (recursively, sorted by relative path).
pub fn hash_input(dir: &Path) -> anyhow::Result<Input> {
    let mut files: Vec<PathBuf> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    for f in &files {
        h.update(f.strip_prefix(dir).unwrap_or(f).to_string_lossy().as_bytes());
        h.update([0u8]);
        let mut file = std::fs::File::open(f).with_context(|| format!("reading {}", f.display()))?;
        loop {
            let k = file.read(&mut buf).with_context(|| format!("reading {}", f.display()))?;
            if k == 0 {
                break;
            }
            bytes += k as u64;
            h.update(&buf[..k]);
        }
    }
    Ok(Input {
        path: dir.display().to_string(),
        sha256: Some(h.finalize().iter().map(|b| format!("{b:02x}")).collect()),
        files: files.len(),
        bytes,
    })
}

/// Write `name.json` and `name.md` into `out` (created), through a temporary name so a failed
/// write never leaves a half report under the final name.
pub fn write_report<T: Serialize>(out: &Path, name: &str, report: &T, md: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = out.join(format!("{name}.json"));
    let mdp = out.join(format!("{name}.md"));
    for (path, text) in [(&json, serde_json::to_string_pretty(report)? + "\n"), (&mdp, md.to_string())] {
        let tmp = path.with_extension("partial");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    }
    Ok((json, mdp))
}

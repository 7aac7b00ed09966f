//! The *perch home*: where an installed or checked-out perch finds its shipped files (`models/`,
//! `configs/`, `datasets/`) when a path is not given, so `perch run` and `perch detect` work from any
//! directory. Searched in order:
//!
//! 1. `$PERCH_HOME`, when set (and then only it: an explicit choice is never second-guessed);
//! 2. the current directory (a checkout: `cargo run -- ...` from the repository root);
//! 3. `<executable's folder>/../share/perch` (an installed layout: `/usr/local/bin/perch` with
//!    `/usr/local/share/perch/{models,configs,datasets}`);
//! 4. the source checkout the binary was built from (what `cargo install --path .` leaves behind).

use std::path::{Path, PathBuf};

/// The places searched, in order, each with how the user would recognise it.
pub fn candidates() -> Vec<(PathBuf, String)> {
    if let Some(home) = std::env::var_os("PERCH_HOME").filter(|h| !h.is_empty()) {
        return vec![(PathBuf::from(home), "$PERCH_HOME".into())];
    }
    let mut out = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        out.push((cwd, "the current directory".into()));
    }
    if let Some(bin_dir) = std::env::current_exe().ok().and_then(|e| e.parent().map(Path::to_path_buf)) {
        out.push((bin_dir.join("../share/perch"), "next to the executable".into()));
    }
    out.push((PathBuf::from(env!("CARGO_MANIFEST_DIR")), "the source checkout perch was built from".into()));
    out
}

/// `rel` (e.g. `models/yolov12n`) in the first home that has it.
pub fn find(rel: &Path) -> Result<PathBuf, String> {
    let homes = candidates();
    for (dir, _) in &homes {
        let p = dir.join(rel);
        if p.exists() {
            return Ok(p);
        }
    }
    let tried: Vec<String> = homes.iter().map(|(d, why)| format!("{} ({why})", d.join(rel).display())).collect();
    Err(format!(
        "`{}` is not in any perch home; looked in: {}. Set PERCH_HOME to the folder that holds models/, configs/ and datasets/",
        rel.display(),
        tried.join(", ")
    ))
}

/// A `--config` argument: the file if it exists (relative to the current directory), else the same
/// relative path in a perch home, else `configs/NAME` or `configs/NAME.toml` there
/// (`perch run --config nano`).
pub fn find_config(arg: &Path) -> Result<PathBuf, String> {
    if arg.is_file() || arg.is_absolute() {
        return Ok(arg.to_path_buf());
    }
    let mut names = vec![arg.to_path_buf()];
    if arg.components().count() == 1 {
        names.push(Path::new("configs").join(arg));
        if arg.extension().is_none() {
            names.push(Path::new("configs").join(arg).with_extension("toml"));
        }
    }
    for name in &names {
        if let Ok(p) = find(name) {
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let homes: Vec<String> = candidates().iter().map(|(d, why)| format!("{} ({why})", d.display())).collect();
    Err(format!(
        "cannot read config file {}: no such file in the current directory or a perch home ({})",
        arg.display(),
        homes.join(", ")
    ))
}

//! Loading a job: the config file, its paths, `--set` overrides and the built-in defaults.
//!
//! Where a relative path in a config points, by where it was written:
//! * in a config file: relative to **the file's folder** (`configs/replay.toml` says
//!   `path = "../datasets/vtest"`), so a config works whatever the current directory is;
//! * in `--set` (or a shorthand flag such as `--model`): relative to the current directory, like any
//!   path typed on a command line;
//! * not given at all: the built-in default (`models/yolov12n`, `datasets/vtest`) in the perch home
//!   ([`crate::home`]).
//!
//! An input path that does not exist is an error naming the key, the value as written, where it
//! came from and the folder it was resolved against.

use std::path::{Path, PathBuf};

use anyhow::bail;
use perch_pipeline::config::{apply_set, from_table, read_table};

use crate::config::Config;
use crate::home;

/// A config key that holds a path.
struct PathKey {
    section: &'static str,
    key: &'static str,
    /// The built-in default, looked up in the perch home when the key is not given.
    home_default: Option<&'static str>,
    /// An input that must exist before the run starts (outputs are created).
    input: bool,
}

/// Every path-valued key. A new one (a video file, a calibration file) is one line here.
const PATH_KEYS: &[PathKey] = &[
    PathKey { section: "source", key: "path", home_default: Some("datasets/vtest"), input: true },
    PathKey { section: "detect", key: "model", home_default: Some("models/yolov12n"), input: true },
    PathKey { section: "rerun", key: "path", home_default: None, input: false },
];

/// Where a path value came from.
#[derive(Clone, Debug, PartialEq)]
enum Origin {
    File { file: PathBuf, dir: PathBuf },
    CommandLine { cwd: PathBuf },
    Home,
}

/// The loaded job.
pub struct Job {
    pub config: Config,
}

/// Read `config` (or start from the defaults), resolve its paths, apply `sets`, deserialize, and
/// check that the input paths exist.
pub fn load_job(config: Option<&Path>, sets: &[String]) -> anyhow::Result<Job> {
    let file = match config {
        Some(arg) => Some(home::find_config(arg).map_err(anyhow::Error::msg)?),
        None => None,
    };
    let cwd = std::env::current_dir().unwrap_or_default();
    let mut table = match &file {
        Some(f) => read_table(f)?,
        None => toml::Table::new(),
    };
    let mut origins: Vec<(&PathKey, String, Origin)> = Vec::new();
    if let Some(f) = &file {
        let dir = f.parent().map(Path::to_path_buf).unwrap_or_default();
        let dir = if dir.as_os_str().is_empty() { cwd.clone() } else { dir };
        for pk in PATH_KEYS {
            if let Some(written) = get_str(&table, pk) {
                let resolved = dir.join(&written);
                set_str(&mut table, pk, &resolved);
                origins.push((pk, written, Origin::File { file: f.clone(), dir: dir.clone() }));
            }
        }
    }
    let before: Vec<Option<String>> = PATH_KEYS.iter().map(|pk| get_str(&table, pk)).collect();
    for arg in sets {
        apply_set(&mut table, arg)?;
    }
    for (pk, old) in PATH_KEYS.iter().zip(before) {
        let now = get_str(&table, pk);
        if now.is_some() && now != old {
            origins.retain(|(k, _, _)| !std::ptr::eq(*k, pk));
            origins.push((pk, now.unwrap_or_default(), Origin::CommandLine { cwd: cwd.clone() }));
        }
    }
    let mut home_errors: Vec<(&PathKey, String)> = Vec::new();
    for pk in PATH_KEYS {
        let Some(default) = pk.home_default else { continue };
        if get_str(&table, pk).is_some() || !takes_home_default(&table, pk) {
            continue;
        }
        match home::find(Path::new(default)) {
            Ok(p) => {
                set_str(&mut table, pk, &p);
                origins.push((pk, default.to_string(), Origin::Home));
            }
            Err(e) => home_errors.push((pk, e)),
        }
    }
    let origin_name = match &file {
        Some(f) => f.display().to_string(),
        None => "built-in defaults".to_string(),
    };
    let origin_name = if sets.is_empty() { origin_name } else { format!("{origin_name} (with --set overrides)") };
    let cfg: Config = from_table(toml::Value::Table(table), &origin_name)?;
    check_inputs(&cfg, &origins, &home_errors)?;
    Ok(Job { config: cfg })
}

/// Whether an unset key gets its default from the perch home. `source.path` only for a replay: the
/// other kinds do not read a folder (a video names its own file), and a filled-in path would count
/// as set, which the source key check refuses (`source.path is a replay/video-file key`).
fn takes_home_default(table: &toml::Table, pk: &PathKey) -> bool {
    if (pk.section, pk.key) != ("source", "path") {
        return true;
    }
    let kind = table.get("source").and_then(|s| s.as_table()).and_then(|s| s.get("kind")).and_then(|k| k.as_str());
    matches!(kind, None | Some("replay"))
}

fn get_str(table: &toml::Table, pk: &PathKey) -> Option<String> {
    table.get(pk.section)?.as_table()?.get(pk.key)?.as_str().map(str::to_string)
}

fn set_str(table: &mut toml::Table, pk: &PathKey, p: &Path) {
    let section = table.entry(pk.section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let Some(t) = section.as_table_mut() {
        t.insert(pk.key.to_string(), toml::Value::String(p.display().to_string()));
    }
}

/// Whether the job reads this input at all.
fn used(cfg: &Config, pk: &PathKey) -> bool {
    match (pk.section, pk.key) {
        ("source", "path") => cfg.source.kind == perch_capture::SourceKind::Replay,
        ("detect", "model") => crate::assemble::stage_settings(cfg)
            .map(|s| s.iter().any(|(name, rt)| *name == "detect" && rt.enabled))
            .unwrap_or(true),
        _ => true,
    }
}

fn check_inputs(cfg: &Config, origins: &[(&PathKey, String, Origin)], home_errors: &[(&PathKey, String)]) -> anyhow::Result<()> {
    for (pk, e) in home_errors {
        if pk.input && used(cfg, pk) {
            bail!("key `{}.{}` is not set and its default {e}", pk.section, pk.key);
        }
    }
    for (pk, written, origin) in origins {
        if !pk.input || !used(cfg, pk) {
            continue;
        }
        let resolved = match origin {
            Origin::File { dir, .. } => dir.join(written),
            Origin::CommandLine { cwd } => cwd.join(written),
            Origin::Home => continue,
        };
        if resolved.exists() {
            continue;
        }
        let key = format!("{}.{}", pk.section, pk.key);
        match origin {
            Origin::File { file, dir } if Path::new(written).is_relative() => bail!(
                "key `{key}` = {written:?} in {}: {} does not exist (a relative path in a config file is relative to \
                 the file's folder, {})",
                file.display(),
                resolved.display(),
                dir.display()
            ),
            Origin::File { file, .. } => bail!("key `{key}` = {written:?} in {}: {written} does not exist", file.display()),
            Origin::CommandLine { cwd } if Path::new(written).is_relative() => bail!(
                "key `{key}` = {written:?} (command line): {} does not exist (a relative path on the command line is \
                 relative to the current directory, {})",
                resolved.display(),
                cwd.display()
            ),
            _ => bail!("key `{key}` = {written:?} (command line): {written} does not exist"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }

    fn canon(p: &Path) -> PathBuf {
        p.canonicalize().unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    /// A shipped config's relative paths point next to the config file, not the current directory.
    #[test]
    fn config_paths_resolve_against_the_config_files_folder() {
        let job = load_job(Some(&repo().join("configs/replay.toml")), &[]).unwrap();
        assert_eq!(canon(&job.config.source.path), canon(&repo().join("datasets/vtest")));
        assert_eq!(canon(&job.config.detect.model), canon(&repo().join("models/yolov12n")));
    }

    /// Only a replay reads a folder: the other kinds keep `source.path` unset, so the source key
    /// check does not take the home's vtest folder for a path the config set.
    #[test]
    fn the_home_folder_is_a_replay_default_only() {
        let job = load_job(Some(&repo().join("configs/ros2-node.toml")), &[]).unwrap();
        assert_eq!(job.config.source.path, perch_capture::SourceConfig::default().path);
        perch_capture::keys::check(&job.config.source).unwrap();
        let job = load_job(None, &["source.kind=\"camera\"".into()]).unwrap();
        perch_capture::keys::check(&job.config.source).unwrap();
        let job = load_job(None, &[]).unwrap();
        assert_eq!(canon(&job.config.source.path), canon(&repo().join("datasets/vtest")));
    }

    #[test]
    fn a_missing_path_names_the_folder_it_was_resolved_against() {
        let dir = std::env::temp_dir().join(format!("perch-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("job.toml");
        std::fs::write(&cfg, "[source]\npath = \"frames\"\n").unwrap();
        let e = load_job(Some(&cfg), &[]).err().unwrap().to_string();
        assert!(e.contains("key `source.path` = \"frames\""), "{e}");
        assert!(e.contains(&dir.join("frames").display().to_string()) && e.contains("relative to the file's folder"), "{e}");
        assert!(e.contains(&format!("folder, {}", dir.display())), "{e}");
        // --set paths are the command line's: relative to the current directory.
        let e = load_job(Some(&cfg), &["source.path=\"nowhere/seq\"".into()]).err().unwrap().to_string();
        assert!(e.contains("(command line)") && e.contains("current directory"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// With no config, the defaults are the default job's (`configs/replay.toml`), paths included,
    /// except the two keys its header names: the schedule and the budget.
    #[test]
    fn no_config_is_the_default_job() {
        let builtin = load_job(None, &[]).unwrap().config;
        let file = load_job(Some(&repo().join("configs/replay.toml")), &[]).unwrap().config;
        assert_eq!(canon(&builtin.source.path), canon(&file.source.path));
        assert_eq!(canon(&builtin.detect.model), canon(&file.detect.model));
        let strip = |mut c: Config| {
            c.source.path = PathBuf::new();
            c.detect.model = PathBuf::new();
            serde_json::to_value(&c).unwrap()
        };
        assert_eq!((file.detect.schedule, file.pipeline.budget_ms), (perch_pipeline::Schedule::Auto, 200.0));
        assert_eq!((builtin.detect.schedule, builtin.pipeline.budget_ms), (perch_pipeline::Schedule::EveryFrame, 1500.0));
        let file = Config {
            detect: perch_detect::DetectConfig { schedule: builtin.detect.schedule, ..file.detect.clone() },
            pipeline: builtin.pipeline.clone(),
            ..file
        };
        assert_eq!(strip(builtin), strip(file), "configs/replay.toml and the built-in defaults differ");
    }

    #[test]
    fn a_config_is_found_by_name_in_the_perch_home() {
        let p = home::find_config(Path::new("nano")).unwrap();
        assert_eq!(canon(&p), canon(&repo().join("configs/nano.toml")));
        let e = home::find_config(Path::new("configs/none.toml")).unwrap_err();
        assert!(e.contains("configs/none.toml"), "{e}");
    }
}

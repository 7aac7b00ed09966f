//! TOML configuration: strict parsing (unknown keys are errors naming their full path),
//! `--set a.b.c=value` overrides, and the runtime's own settings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::queue::QueuePolicy;

/// A configuration problem, worded for the person who wrote the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{origin}: key `{key}`: {message}")]
    Key { origin: String, key: String, message: String },
    #[error("--set {arg}: expected KEY.PATH=VALUE (e.g. --set pipeline.budget_ms=50)")]
    SetSyntax { arg: String },
    #[error("--set {arg}: `{key}` is not a table, cannot set `{rest}` inside it")]
    SetNotTable { arg: String, key: String, rest: String },
}

/// End-to-end runtime settings (`[pipeline]`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Every frame's end-to-end budget: a stage receiving a frame older than this drops it (`deadline`).
    pub budget_ms: f64,
    /// Frame buffers to pre-allocate (default: enough for every queue and stage at once).
    pub pool_size: Option<usize>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self { budget_ms: 100.0, pool_size: None }
    }
}

impl RuntimeConfig {
    pub fn budget(&self) -> Duration {
        Duration::from_secs_f64(self.budget_ms.max(0.0) / 1000.0)
    }
}

/// How one stage is connected (`[stages.<name>]`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct StageRuntimeConfig {
    /// Whether the stage is part of the pipeline (where the stage is optional).
    pub enabled: bool,
    /// Policy of the stage's input queue.
    pub queue: QueuePolicy,
    /// The stage's own budget: `process` taking longer is counted as an overrun.
    pub budget_ms: Option<f64>,
}

impl Default for StageRuntimeConfig {
    fn default() -> Self {
        Self { enabled: true, queue: QueuePolicy::Fifo { capacity: 2 }, budget_ms: None }
    }
}

impl StageRuntimeConfig {
    pub fn keep_latest() -> Self {
        Self { enabled: true, queue: QueuePolicy::KeepLatest, budget_ms: None }
    }
    pub fn fifo(capacity: usize) -> Self {
        Self { enabled: true, queue: QueuePolicy::Fifo { capacity }, budget_ms: None }
    }
    /// These settings with the keys `overrides` sets replaced: every key keeps its own default,
    /// so setting one key of a `[stages.<name>]` table never changes another.
    pub fn with(mut self, overrides: &StageOverrides) -> Self {
        if let Some(enabled) = overrides.enabled {
            self.enabled = enabled;
        }
        if let Some(queue) = overrides.queue {
            self.queue = queue;
        }
        if overrides.budget_ms.is_some() {
            self.budget_ms = overrides.budget_ms;
        }
        self
    }
    pub fn budget(&self) -> Option<Duration> {
        self.budget_ms.map(|ms| Duration::from_secs_f64(ms.max(0.0) / 1000.0))
    }
}

/// `[stages.<name>]` as written: only the keys present. Merged onto the stage's own defaults with
/// [`StageRuntimeConfig::with`].
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageOverrides {
    pub enabled: Option<bool>,
    pub queue: Option<QueuePolicy>,
    pub budget_ms: Option<f64>,
}

/// Read a TOML file (or start from an empty table), apply `--set` overrides, and deserialize
/// strictly. Errors name the file or `--set`, the full key path, and what is accepted.
pub fn load<T: DeserializeOwned>(path: Option<&Path>, sets: &[String]) -> Result<T, ConfigError> {
    let (mut table, origin) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read { path: p.into(), source: e })?;
            let table: toml::Table = text
                .parse()
                .map_err(|e: toml::de::Error| ConfigError::Syntax { path: p.display().to_string(), message: e.to_string() })?;
            (table, p.display().to_string())
        }
        None => (toml::Table::new(), "built-in defaults".to_string()),
    };
    for arg in sets {
        apply_set(&mut table, arg)?;
    }
    let origin = if sets.is_empty() { origin } else { format!("{origin} (with --set overrides)") };
    from_table(toml::Value::Table(table), &origin)
}

/// Deserialize with the full path of the offending key in the error.
pub fn from_table<T: DeserializeOwned>(value: toml::Value, origin: &str) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let key = e.path().to_string();
        // toml appends its own "in `table`" location; the full key path says it better.
        let inner = e.into_inner().to_string();
        let inner = inner.split("\nin `").next().unwrap_or(&inner).trim().to_string();
        // Some deserializers report an unknown field at its parent's path: put the field in the key.
        let key = match unknown_field_name(&inner) {
            Some(field) if key == "." => field.to_string(),
            Some(field) if !key.ends_with(&format!(".{field}")) && key != field => format!("{key}.{field}"),
            _ => key,
        };
        ConfigError::Key { origin: origin.to_string(), key, message: inner }
    })
}

fn unknown_field_name(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

/// `a.b.c=value`: value parsed as TOML (number, bool, string, array, inline table), else as a bare string.
pub fn apply_set(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let (key, raw) = arg.split_once('=').ok_or_else(|| ConfigError::SetSyntax { arg: arg.into() })?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
        return Err(ConfigError::SetSyntax { arg: arg.into() });
    }
    let value = parse_value(raw.trim());
    let parts: Vec<&str> = key.split('.').collect();
    let mut cur = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = cur.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(ConfigError::SetNotTable {
                    arg: arg.into(),
                    key: parts[..=i].join("."),
                    rest: parts[i + 1..].join("."),
                })
            }
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Top {
        pipeline: RuntimeConfig,
        stages: Stages,
    }
    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields, default)]
    struct Stages {
        detect: StageRuntimeConfig,
    }

    fn err(sets: &[&str]) -> String {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        load::<Top>(None, &sets).unwrap_err().to_string()
    }

    #[test]
    fn unknown_key_names_full_path() {
        let e = err(&["pipeline.budget_mss=5"]);
        assert!(e.contains("key `pipeline.budget_mss`"), "{e}");
        assert!(e.contains("expected `budget_ms` or `pool_size`"), "{e}");
        let e = err(&["stages.detect.queue.policy=fifo", "stages.detect.queue.capacty=3"]);
        assert!(e.contains("stages.detect.queue") && e.contains("capacty"), "{e}");
    }

    #[test]
    fn bad_value_names_key_and_type() {
        let e = err(&["pipeline.budget_ms=fast"]);
        assert!(e.contains("key `pipeline.budget_ms`") && e.contains("invalid type"), "{e}");
        let e = err(&["stages.detect.queue.policy=newest"]);
        assert!(e.contains("stages.detect.queue") && e.contains("keep_latest") && e.contains("fifo"), "{e}");
    }

    #[test]
    fn set_overrides_and_parses_types() {
        let sets = vec!["pipeline.budget_ms=50".to_string(), "stages.detect.queue={policy=\"fifo\",capacity=3}".to_string()];
        let top: Top = load(None, &sets).unwrap();
        assert_eq!(top.pipeline.budget_ms, 50.0);
        assert_eq!(top.stages.detect.queue, QueuePolicy::Fifo { capacity: 3 });
        assert!(matches!(load::<Top>(None, &["nonsense".into()]), Err(ConfigError::SetSyntax { .. })));
        let e = err(&["pipeline.budget_ms=5", "pipeline.budget_ms.x=1"]);
        assert!(e.contains("not a table"), "{e}");
    }

    #[test]
    fn syntax_error_names_file() {
        let dir = std::env::temp_dir().join(format!("perch-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.toml");
        std::fs::write(&p, "[pipeline\nbudget_ms = 1").unwrap();
        let e = load::<Top>(Some(&p), &[]).unwrap_err().to_string();
        assert!(e.contains("bad.toml") && e.contains("not valid TOML"), "{e}");
        let e = load::<Top>(Some(&dir.join("missing.toml")), &[]).unwrap_err().to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }
}

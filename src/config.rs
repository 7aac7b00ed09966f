//! The whole `perch run` configuration: one TOML file, each section owned by one crate.

use std::collections::BTreeMap;

use perch_capture::SourceConfig;
use perch_detect::DetectConfig;
use perch_pipeline::delay::DelayConfig;
use perch_pipeline::{RuntimeConfig, StageOverrides};
use perch_track::TrackConfig;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// End-to-end budget and buffer pool.
    pub pipeline: RuntimeConfig,
    /// Where frames come from.
    pub source: SourceConfig,
    /// The detector (its `imgsz` also sizes the preprocessing).
    pub detect: DetectConfig,
    /// The tracker.
    pub track: TrackConfig,
    /// ROS 2 publishing (off unless `ros2.enabled = true`).
    #[cfg(feature = "ros2")]
    pub ros2: perch_ros2::Ros2Config,
    #[cfg(not(feature = "ros2"))]
    pub ros2: Option<toml::Table>,
    /// Rerun logging (off unless `rerun.sink` is set).
    #[cfg(feature = "rerun")]
    pub rerun: perch_rerun::RerunConfig,
    #[cfg(not(feature = "rerun"))]
    pub rerun: Option<toml::Table>,
    /// `[stages.<name>]`: per-stage switch, input queue policy and budget, only the keys given; the
    /// stages, their order and their defaults are the table in `assemble.rs` (`STAGES`).
    pub stages: BTreeMap<String, StageOverrides>,
    /// Test-only: an extra stage that sleeps this long per frame (exercises deadlines without a model).
    pub test_delay: Option<DelayConfig>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped config parses under the strict rules (unknown keys would fail here).
    #[test]
    fn every_shipped_config_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("toml") {
                continue;
            }
            let cfg: Config = perch_pipeline::config::load(Some(&path), &[])
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(cfg.test_delay.is_none(), "{}: test_delay is for tests only", path.display());
            cfg.detect.validate().unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            crate::assemble::stage_settings(&cfg).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
        assert!(n >= 2, "found {n} configs");
    }

    /// The built-in defaults are the default job's config.
    #[test]
    fn defaults_match_replay_toml_where_it_matters() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/replay.toml");
        let file: Config = perch_pipeline::config::load(Some(&path), &[]).unwrap();
        let builtin = Config::default();
        assert_eq!(file.source, builtin.source);
        assert_eq!(file.detect, builtin.detect);
        assert_eq!(file.track, builtin.track);
    }
}

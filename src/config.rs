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

impl Config {
    /// Check every value serde cannot (ranges, durations, rates), section by section, before
    /// anything is built; errors name the full key (`key `pipeline.budget_ms` = inf: ...`).
    pub fn validate(&self) -> anyhow::Result<()> {
        self.pipeline.validate()?;
        self.source.validate()?;
        for (name, overrides) in &self.stages {
            overrides.validate(name)?;
        }
        if let Some(delay) = &self.test_delay {
            delay.validate()?;
        }
        self.detect.validate()?;
        self.track.params(None)?;
        #[cfg(feature = "ros2")]
        self.ros2.validate()?;
        #[cfg(feature = "rerun")]
        self.rerun.validate()?;
        Ok(())
    }
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
            // Through the job loader: the config's relative paths must point at files that exist.
            let cfg: Config = crate::paths::load_job(Some(&path), &[])
                .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
                .config;
            assert!(cfg.test_delay.is_none(), "{}: test_delay is for tests only", path.display());
            crate::assemble::validate(&cfg).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
            n += 1;
        }
        assert!(n >= 2, "found {n} configs");
    }
    // The built-in defaults equal configs/replay.toml: `paths::tests::no_config_is_the_default_job`.

    /// Every duration and rate key refuses nan, inf, 0, negatives and overflowing values by name.
    #[test]
    fn every_duration_and_rate_key_is_validated() {
        let keys = [
            ("pipeline.budget_ms", "pipeline.budget_ms"),
            ("stages.detect.budget_ms", "stages.detect.budget_ms"),
            ("stages.track.budget_ms", "stages.track.budget_ms"),
            ("source.fps", "source.fps"),
            ("test_delay.ms", "test_delay.ms"),
            ("track.frame_rate", "track.frame_rate"),
        ];
        for (key, named) in keys {
            for bad in ["inf", "nan", "-1", "1e22", "1e-300"] {
                let cfg: Config = perch_pipeline::config::load(None, &[format!("{key}={bad}")]).unwrap();
                let e = format!("{:#}", cfg.validate().unwrap_err());
                assert!(e.contains(named), "{key}={bad}: {e}");
            }
            if key != "test_delay.ms" {
                let cfg: Config = perch_pipeline::config::load(None, &[format!("{key}=0")]).unwrap();
                assert!(cfg.validate().is_err(), "{key}=0 accepted");
            }
        }
        #[cfg(feature = "ros2")]
        for (key, bad) in [("ros2.diagnostics.period_s", "1e22"), ("ros2.image.rate_hz", "1e-300"), ("ros2.image.rate_hz", "nan")] {
            let cfg: Config = perch_pipeline::config::load(None, &[format!("{key}={bad}")]).unwrap();
            assert!(format!("{:#}", cfg.validate().unwrap_err()).contains(key), "{key}={bad}");
        }
        Config::default().validate().unwrap();
    }

    /// `classes = [-1]` names the key and what is accepted (it once said "untagged enum ClassSel").
    #[test]
    fn a_negative_class_names_the_key() {
        let e = perch_pipeline::config::load::<Config>(None, &["detect.classes=[-1]".into()]).unwrap_err().to_string();
        assert!(e.contains("detect.classes") && e.contains("class id -1") && !e.contains("untagged"), "{e}");
    }

    /// The built-in defaults are the default job's config, except its schedule: the default job
    /// is a live replay (`auto`), the built-in default is today's `every_frame`, which runs with
    /// any stage switched off.
    #[test]
    fn defaults_match_replay_toml_where_it_matters() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/replay.toml");
        let file: Config = perch_pipeline::config::load(Some(&path), &[]).unwrap();
        let builtin = Config::default();
        let path = |s: &perch_capture::SourceConfig| perch_capture::SourceConfig { path: Default::default(), ..s.clone() };
        assert_eq!(path(&file.source), path(&builtin.source));
        assert_eq!(file.detect.schedule, perch_pipeline::Schedule::Auto);
        assert_eq!(builtin.detect.schedule, perch_pipeline::Schedule::EveryFrame);
        let file_detect = perch_detect::DetectConfig { schedule: builtin.detect.schedule, model: builtin.detect.model.clone(), ..file.detect.clone() };
        assert_eq!(file_detect, builtin.detect);
        assert_eq!(file.track, builtin.track);
    }
}

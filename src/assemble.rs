//! Turn a [`Config`] into a runnable [`Pipeline`].
//!
//! [`STAGES`] is the one place that knows the pipeline's stages: their names (the `<name>` of
//! `[stages.<name>]`), the order frames pass through them, their default input queues and how each
//! is built from its config section. **The order is fixed by this table**: the order of
//! `[stages.*]` tables in a config file does not matter, and a config can only switch a stage off
//! (`enabled = false`) or change its queue and budget. Adding a stage is one entry here (plus its
//! config section in `config.rs` if it has one).

use std::sync::Arc;

use anyhow::bail;
use perch_pipeline::delay::DelayStage;
use perch_pipeline::{LiveParams, Pipeline, Stage, StageRuntimeConfig, StageSlot, Tap};

use crate::config::Config;

/// What a stage's constructor gets besides the config.
struct Shared {
    /// The thresholds the detector reads every frame; ROS 2 parameter services write them.
    params: Arc<LiveParams>,
}

/// One stage of the pipeline.
struct StageEntry {
    /// The stage's name in configs and reports (`[stages.<name>]`); equals `Stage::name()`.
    name: &'static str,
    /// Its settings when the config sets no key of `[stages.<name>]` (each key defaults on its own).
    defaults: fn() -> StageRuntimeConfig,
    /// Stages that must be enabled for this one to run, and why.
    needs: Option<(&'static str, &'static str)>,
    /// Builds the stage, or `None` when its own section leaves it out (e.g. `ros2.enabled = false`).
    build: fn(&Config, &Shared) -> anyhow::Result<Option<Box<dyn Stage>>>,
}

/// The stages in pipeline order: capture → [test_delay] → preprocess → detect → track → [ros2].
const STAGES: &[StageEntry] = &[
    StageEntry {
        name: "test_delay",
        defaults: StageRuntimeConfig::keep_latest,
        needs: None,
        build: |cfg, _| Ok(cfg.test_delay.as_ref().map(|d| Box::new(DelayStage::new(d)) as Box<dyn Stage>)),
    },
    StageEntry {
        name: "preprocess",
        // Capture → preprocess keeps only the newest frame: a slow detector works on fresh frames.
        defaults: StageRuntimeConfig::keep_latest,
        needs: None,
        build: |cfg, _| {
            // detect.imgsz also sizes preprocessing (`assemble` checks it under its own key first).
            let pre = perch_preprocess::PreprocessConfig { imgsz: cfg.detect.imgsz };
            Ok(Some(Box::new(perch_preprocess::PreprocessStage::new(&pre)?)))
        },
    },
    StageEntry {
        name: "detect",
        // The detector is the slow stage: it too takes the newest frame rather than a queue of old ones.
        defaults: StageRuntimeConfig::keep_latest,
        needs: Some(("preprocess", "it makes the model input")),
        build: |cfg, shared| {
            let detect = perch_detect::DetectStage::new(&cfg.detect)?.with_live_params(shared.params.clone());
            Ok(Some(Box::new(detect)))
        },
    },
    StageEntry {
        name: "track",
        defaults: || StageRuntimeConfig::fifo(2),
        needs: Some(("detect", "the tracker follows detections")),
        build: |cfg, _| Ok(Some(Box::new(perch_track::TrackStage::new(&cfg.track)?))),
    },
    StageEntry {
        name: "ros2",
        // Publishing never holds the pipeline back: it gets the newest result.
        defaults: StageRuntimeConfig::keep_latest,
        needs: None,
        build: build_ros2,
    },
];

/// Every stage's settings: its defaults with the config's `[stages.<name>]` keys applied.
/// Unknown stage names are errors that list the known ones.
pub fn stage_settings(cfg: &Config) -> anyhow::Result<Vec<(&'static str, StageRuntimeConfig)>> {
    for name in cfg.stages.keys() {
        if !STAGES.iter().any(|e| e.name == name) {
            let known: Vec<&str> = STAGES.iter().map(|e| e.name).collect();
            bail!("key `stages.{name}`: unknown stage `{name}`; the stages are {}", known.join(", "));
        }
    }
    Ok(STAGES
        .iter()
        .map(|e| {
            let rt = (e.defaults)();
            (e.name, cfg.stages.get(e.name).map_or(rt, |o| rt.with(o)))
        })
        .collect())
}

pub fn assemble(cfg: &Config) -> anyhow::Result<Pipeline> {
    let settings = stage_settings(cfg)?;
    let enabled = |name: &str| settings.iter().any(|(n, rt)| *n == name && rt.enabled);
    for (entry, (_, rt)) in STAGES.iter().zip(&settings) {
        if let Some((need, why)) = entry.needs {
            if rt.enabled && !enabled(need) {
                bail!("stages.{}.enabled = true needs stages.{need}.enabled = true ({why})", entry.name);
            }
        }
    }
    // detect.imgsz also sizes preprocessing: check it under its own key before anything is built.
    cfg.detect.validate()?;
    let source = perch_capture::open(&cfg.source)?;
    let shared = Shared { params: Arc::new(LiveParams::new(cfg.detect.conf, cfg.detect.iou)) };
    let mut stages: Vec<StageSlot> = Vec::new();
    for (entry, (_, rt)) in STAGES.iter().zip(&settings) {
        if !rt.enabled {
            continue;
        }
        if let Some(stage) = (entry.build)(cfg, &shared)? {
            debug_assert_eq!(stage.name(), entry.name, "STAGES entry and Stage::name() disagree");
            stages.push(StageSlot { stage, input: rt.queue, budget: rt.budget() });
        }
    }
    let mut taps: Vec<Box<dyn Tap>> = Vec::new();
    add_rerun(cfg, &mut taps)?;
    Ok(Pipeline { source, stages, taps, budget: cfg.pipeline.budget(), pool_size: cfg.pipeline.pool_size })
}

/// The input queue the table gives a stage when the config sets none (for tests and docs).
#[cfg(test)]
fn default_queue(name: &str) -> Option<perch_pipeline::QueuePolicy> {
    STAGES.iter().find(|e| e.name == name).map(|e| (e.defaults)().queue)
}

#[cfg(feature = "ros2")]
fn build_ros2(cfg: &Config, shared: &Shared) -> anyhow::Result<Option<Box<dyn Stage>>> {
    if !cfg.ros2.enabled {
        return Ok(None);
    }
    Ok(Some(Box::new(perch_ros2::Ros2PublishStage::with_params(&cfg.ros2, shared.params.clone())?)))
}

#[cfg(not(feature = "ros2"))]
fn build_ros2(cfg: &Config, _: &Shared) -> anyhow::Result<Option<Box<dyn Stage>>> {
    if cfg.ros2.as_ref().and_then(|t| t.get("enabled")).and_then(|v| v.as_bool()) == Some(true) {
        bail!("ros2.enabled = true, but this perch was built without the `ros2` feature (rebuild with `--features ros2`)");
    }
    Ok(None)
}

#[cfg(feature = "rerun")]
fn add_rerun(cfg: &Config, taps: &mut Vec<Box<dyn Tap>>) -> anyhow::Result<()> {
    if let Some(tap) = perch_rerun::RerunTap::new(&cfg.rerun)? {
        taps.push(Box::new(tap));
    }
    Ok(())
}

#[cfg(not(feature = "rerun"))]
fn add_rerun(cfg: &Config, _: &mut Vec<Box<dyn Tap>>) -> anyhow::Result<()> {
    let sink = cfg.rerun.as_ref().and_then(|t| t.get("sink")).and_then(|v| v.as_str());
    if sink.is_some_and(|s| s != "off") {
        bail!(
            "rerun.sink = \"{}\", but this perch was built without the `rerun` feature \
             (rebuild with `cargo build --release --features rerun`)",
            sink.unwrap_or_default()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perch_pipeline::QueuePolicy;

    fn load(sets: &[&str]) -> Config {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        perch_pipeline::config::load(None, &sets).unwrap()
    }

    fn setting(cfg: &Config, name: &str) -> StageRuntimeConfig {
        stage_settings(cfg).unwrap().into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn the_table_fixes_the_default_queues() {
        assert_eq!(default_queue("preprocess"), Some(QueuePolicy::KeepLatest));
        assert_eq!(default_queue("detect"), Some(QueuePolicy::KeepLatest));
        assert_eq!(default_queue("track"), Some(QueuePolicy::Fifo { capacity: 2 }));
        assert_eq!(default_queue("ros2"), Some(QueuePolicy::KeepLatest));
    }

    /// Setting one key of `[stages.<name>]` leaves the stage's other keys at their defaults (a
    /// budget once silently switched the detector's input from keep_latest to fifo(2)).
    #[test]
    fn each_stage_key_defaults_on_its_own() {
        let cfg = load(&["stages.detect.budget_ms=200"]);
        let rt = setting(&cfg, "detect");
        assert_eq!(rt.queue, QueuePolicy::KeepLatest);
        assert_eq!(rt.budget_ms, Some(200.0));
        assert!(rt.enabled);
        let cfg = load(&["stages.preprocess.enabled=true"]);
        assert_eq!(setting(&cfg, "preprocess").queue, QueuePolicy::KeepLatest);
        let cfg = load(&["stages.track.queue={policy=\"keep_latest\"}"]);
        assert_eq!(setting(&cfg, "track").queue, QueuePolicy::KeepLatest);
        assert_eq!(setting(&cfg, "detect").queue, QueuePolicy::KeepLatest);
    }

    #[test]
    fn unknown_stage_names_are_errors_that_list_the_stages() {
        let cfg = load(&["stages.detector.enabled=false"]);
        let e = stage_settings(&cfg).unwrap_err().to_string();
        assert!(e.contains("stages.detector") && e.contains("preprocess, detect, track"), "{e}");
    }
}

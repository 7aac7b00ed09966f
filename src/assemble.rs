//! Turn a [`Config`] into a runnable [`Pipeline`].
//!
//! [`STAGES`] is the one place that knows the pipeline's stages: their names (the `<name>` of
//! `[stages.<name>]`), the order frames pass through them, their default input queues and how each
//! is built from its config section. **The order is fixed by this table**: the order of
//! `[stages.*]` tables in a config file does not matter, and a config can only switch a stage off
//! (`enabled = false`) or change its queue and budget. Adding a stage is one entry here (plus its
//! config section in `config.rs` if it has one).
//!
//! Cross-section rules (checked before anything is built): a `detect.schedule` that leaves frames
//! without a detection of their own needs the tracker (it publishes predictions for them), and
//! `detect.virtual_latency_ms` needs a replay at `pacing = "max"`.

use std::sync::Arc;

use anyhow::bail;
use perch_pipeline::delay::DelayStage;
use perch_pipeline::{LiveParams, Pipeline, Schedule, Stage, StageRuntimeConfig, StageSlot, Tap};

use crate::config::Config;

/// What a stage's constructor gets besides the config.
struct Shared {
    /// The thresholds the detector reads every frame; ROS 2 parameter services write them.
    params: Arc<LiveParams>,
    /// perch's one ROS 2 node, opened by whichever needs it first (a `kind = "ros2"` source, the
    /// `ros2` stage) and shared by both, so perch is a single node in the ROS graph.
    #[cfg(feature = "ros2")]
    ros2_node: std::cell::OnceCell<perch_ros2::Ros2Node>,
}

impl Shared {
    fn new(cfg: &Config) -> Self {
        Self {
            params: Arc::new(LiveParams::new(cfg.detect.conf, cfg.detect.iou)),
            #[cfg(feature = "ros2")]
            ros2_node: std::cell::OnceCell::new(),
        }
    }

    #[cfg(feature = "ros2")]
    fn ros2_node(&self, cfg: &Config) -> anyhow::Result<perch_ros2::Ros2Node> {
        if let Some(node) = self.ros2_node.get() {
            return Ok(node.clone());
        }
        let node = perch_ros2::Ros2Node::open(&cfg.ros2, self.params.clone())?;
        Ok(self.ros2_node.get_or_init(|| node).clone())
    }
}

/// How a stage is built from the config: `None` when its own section leaves it out.
type BuildStage = fn(&Config, &Shared) -> anyhow::Result<Option<Box<dyn Stage>>>;

/// One stage of the pipeline.
struct StageEntry {
    /// The stage's name in configs and reports (`[stages.<name>]`); equals `Stage::name()`.
    name: &'static str,
    /// Its settings when the config sets no key of `[stages.<name>]` (each key defaults on its own).
    defaults: fn(&Config) -> StageRuntimeConfig,
    /// Stages that must be enabled for this one to run, and why.
    needs: Option<(&'static str, &'static str)>,
    /// Builds the stage, or `None` when its own section leaves it out (e.g. `ros2.enabled = false`).
    build: BuildStage,
}

/// The stages in pipeline order: capture → [test_delay] → preprocess → detect → track → [ros2].
const STAGES: &[StageEntry] = &[
    StageEntry {
        name: "test_delay",
        defaults: |_| StageRuntimeConfig::keep_latest(),
        needs: None,
        build: |cfg, _| Ok(cfg.test_delay.as_ref().map(|d| Box::new(DelayStage::new(d)) as Box<dyn Stage>)),
    },
    StageEntry {
        name: "preprocess",
        // Capture → preprocess keeps only the newest frame: a slow detector works on fresh frames.
        defaults: |_| StageRuntimeConfig::keep_latest(),
        needs: None,
        build: |cfg, _| {
            // detect.imgsz also sizes preprocessing (`assemble` checks it under its own key first).
            let pre = perch_preprocess::PreprocessConfig { imgsz: cfg.detect.imgsz };
            Ok(Some(Box::new(perch_preprocess::PreprocessStage::new(&pre)?)))
        },
    },
    StageEntry {
        name: "detect",
        // `every_frame`: the detector is the slow stage, it takes the newest frame rather than a
        // queue of old ones. Under the other schedules the stage is quick (it hands frames to its
        // worker), or, for `interval`, slow on one frame in `interval + 1`: the frames behind wait.
        defaults: |cfg| match cfg.detect.schedule {
            Schedule::EveryFrame => StageRuntimeConfig::keep_latest(),
            Schedule::Interval => StageRuntimeConfig::fifo(cfg.detect.interval.unwrap_or(0) as usize + 1),
            Schedule::Async | Schedule::Auto => StageRuntimeConfig::fifo(2),
        },
        needs: Some(("preprocess", "it makes the model input")),
        build: |cfg, shared| {
            let detect = perch_detect::DetectStage::new(&cfg.detect)?.with_live_params(shared.params.clone());
            Ok(Some(Box::new(detect)))
        },
    },
    StageEntry {
        name: "track",
        defaults: |_| StageRuntimeConfig::fifo(2),
        needs: Some(("detect", "the tracker follows detections")),
        build: |cfg, _| Ok(Some(Box::new(perch_track::TrackStage::new(&cfg.track)?))),
    },
    StageEntry {
        name: "ros2",
        // Publishing never holds the pipeline back: it gets the newest result.
        defaults: |_| StageRuntimeConfig::keep_latest(),
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
            let rt = (e.defaults)(cfg);
            (e.name, cfg.stages.get(e.name).map_or(rt, |o| rt.with(o)))
        })
        .collect())
}

/// Every check that needs no file or model: each key's value (durations, rates, ranges), stage
/// names, what each stage needs and the rules between sections. Returns the stage settings.
pub fn validate(cfg: &Config) -> anyhow::Result<Vec<(&'static str, StageRuntimeConfig)>> {
    cfg.validate()?;
    let settings = stage_settings(cfg)?;
    let enabled = |name: &str| settings.iter().any(|(n, rt)| *n == name && rt.enabled);
    for (entry, (_, rt)) in STAGES.iter().zip(&settings) {
        if let Some((need, why)) = entry.needs {
            if rt.enabled && !enabled(need) {
                bail!("stages.{}.enabled = true needs stages.{need}.enabled = true ({why})", entry.name);
            }
        }
    }
    check_schedule(cfg, enabled("detect"), enabled("track"))?;
    #[cfg(feature = "ros2")]
    if cfg.source.kind == perch_capture::SourceKind::Ros2 {
        perch_capture::keys::check(&cfg.source)?;
        ros2_source_config(&cfg.source).validate()?;
    }
    Ok(settings)
}

pub fn assemble(cfg: &Config) -> anyhow::Result<Pipeline> {
    // Every key is checked before anything is built or opened.
    let settings = validate(cfg)?;
    let shared = Shared::new(cfg);
    let source = open_source(cfg, &shared)?;
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

/// The configured source. `kind = "ros2"` subscribes on perch's ROS 2 node (perch-ros2; perch-capture
/// knows no ROS); every other kind is perch-capture's.
fn open_source(cfg: &Config, shared: &Shared) -> anyhow::Result<Box<dyn perch_pipeline::Source>> {
    match cfg.source.kind {
        #[cfg(feature = "ros2")]
        perch_capture::SourceKind::Ros2 => {
            // `validate` checked the keys; nothing is opened before they are.
            let node = shared.ros2_node(cfg)?;
            perch_ros2::open_image_source(&node, &ros2_source_config(&cfg.source))
        }
        _ => {
            let _ = shared;
            perch_capture::open(&cfg.source)
        }
    }
}

/// `[source]` as perch-ros2 reads it: the message type follows the topic's name unless
/// `source.message` says otherwise; `source.qos` keys override the sensor-data profile one by one.
#[cfg(feature = "ros2")]
fn ros2_source_config(src: &perch_capture::SourceConfig) -> perch_ros2::ImageSourceConfig {
    let topic = src.topic.clone().unwrap_or_default();
    perch_ros2::ImageSourceConfig {
        message: src.message.unwrap_or_else(|| perch_pipeline::ImageMessage::for_topic(&topic)),
        qos: src.qos.clone().unwrap_or_default().over(perch_pipeline::QosConfig::sensor_data()),
        max_pixels: src.max_pixels,
        end_frame: src.end_frame,
        topic,
    }
}

/// The rules between `[detect]`, `[stages.track]` and `[source]` (see the module docs).
fn check_schedule(cfg: &Config, detect: bool, track: bool) -> anyhow::Result<()> {
    let schedule = cfg.detect.schedule;
    if detect && schedule.skips_frames() && !track {
        bail!(
            "detect.schedule = \"{}\" needs stages.track.enabled = true: frames without a detection of their own \
             are published with the tracker's predictions (or use detect.schedule = \"every_frame\")",
            schedule.as_str()
        );
    }
    if cfg.detect.virtual_latency_ms.is_some() && cfg.source.pacing != perch_capture::Pacing::Max {
        bail!(
            "detect.virtual_latency_ms is for evaluating a schedule on a replay: it needs source.pacing = \"max\" \
             (a live source would have to wait for the detector)"
        );
    }
    Ok(())
}

/// The input queue the table gives a stage when the config sets none (for tests and docs).
#[cfg(test)]
fn default_queue(cfg: &Config, name: &str) -> Option<perch_pipeline::QueuePolicy> {
    STAGES.iter().find(|e| e.name == name).map(|e| (e.defaults)(cfg).queue)
}

#[cfg(feature = "ros2")]
fn build_ros2(cfg: &Config, shared: &Shared) -> anyhow::Result<Option<Box<dyn Stage>>> {
    if !cfg.ros2.enabled {
        return Ok(None);
    }
    Ok(Some(Box::new(perch_ros2::Ros2PublishStage::on_node(shared.ros2_node(cfg)?)?)))
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

    #[cfg(feature = "ros2")]
    #[test]
    fn a_ros2_source_reads_topic_message_and_qos_overrides() {
        use perch_pipeline::{ImageMessage, QosConfig, ReliabilityKind};
        let cfg = load(&["source.kind=\"ros2\"", "source.topic=\"/cam/image_raw/compressed\"", "source.end_frame=20"]);
        validate(&cfg).unwrap();
        let src = ros2_source_config(&cfg.source);
        assert_eq!((src.topic.as_str(), src.message, src.end_frame), ("/cam/image_raw/compressed", ImageMessage::Compressed, Some(20)));
        assert_eq!(src.qos, QosConfig::sensor_data());
        let cfg = load(&["source.kind=\"ros2\"", "source.topic=\"/cam/image\"", "source.qos.reliability=\"reliable\"", "source.message=\"image\""]);
        let src = ros2_source_config(&cfg.source);
        assert_eq!((src.message, src.qos.reliability, src.qos.history_depth), (ImageMessage::Image, ReliabilityKind::Reliable, 1));
        // Bad values are refused by `validate`, before any DDS participant exists.
        for (sets, key) in [
            (vec!["source.kind=\"ros2\""], "source.topic"),
            (vec!["source.kind=\"ros2\"", "source.topic=\"/a b\""], "source.topic"),
            (vec!["source.kind=\"ros2\"", "source.topic=\"/cam\"", "source.qos.history_depth=0"], "source.qos.history_depth"),
            (vec!["source.kind=\"ros2\"", "source.topic=\"/cam\"", "source.width=640"], "source.width"),
        ] {
            let e = validate(&load(&sets)).unwrap_err().to_string();
            assert!(e.contains(key), "{sets:?}: {e}");
        }
    }

    #[test]
    fn the_table_fixes_the_default_queues() {
        let cfg = Config::default();
        assert_eq!(default_queue(&cfg, "preprocess"), Some(QueuePolicy::KeepLatest));
        assert_eq!(default_queue(&cfg, "detect"), Some(QueuePolicy::KeepLatest));
        assert_eq!(default_queue(&cfg, "track"), Some(QueuePolicy::Fifo { capacity: 2 }));
        assert_eq!(default_queue(&cfg, "ros2"), Some(QueuePolicy::KeepLatest));
        // A detect stage that hands frames to its worker is quick: its frames queue instead of evicting.
        let cfg = load(&["detect.schedule=\"async\""]);
        assert_eq!(default_queue(&cfg, "detect"), Some(QueuePolicy::Fifo { capacity: 2 }));
        let cfg = load(&["detect.schedule=\"interval\"", "detect.interval=2"]);
        assert_eq!(default_queue(&cfg, "detect"), Some(QueuePolicy::Fifo { capacity: 3 }));
    }

    #[test]
    fn schedules_that_skip_frames_need_the_tracker_and_virtual_latency_needs_max_pacing() {
        let cfg = load(&["detect.schedule=\"auto\"", "stages.track.enabled=false"]);
        let e = check_schedule(&cfg, true, false).unwrap_err().to_string();
        assert!(e.contains("detect.schedule = \"auto\"") && e.contains("stages.track.enabled"), "{e}");
        check_schedule(&load(&["stages.track.enabled=false"]), true, false).unwrap();
        let cfg = load(&["detect.virtual_latency_ms=90"]);
        let e = check_schedule(&cfg, true, true).unwrap_err().to_string();
        assert!(e.contains("detect.virtual_latency_ms") && e.contains("source.pacing"), "{e}");
        check_schedule(&load(&["detect.virtual_latency_ms=90", "source.pacing=\"max\""]), true, true).unwrap();
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

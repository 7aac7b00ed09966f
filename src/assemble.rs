//! Turn a [`Config`] into a runnable [`Pipeline`]: the one place that knows the stage order.

use std::sync::Arc;

use anyhow::bail;
use perch_pipeline::delay::DelayStage;
use perch_pipeline::{LiveParams, Pipeline, Stage, StageRuntimeConfig, StageSlot, Tap};

use crate::config::Config;

/// capture → [test_delay] → preprocess → detect → track → [ros2], plus the [rerun] tap.
pub fn assemble(cfg: &Config) -> anyhow::Result<Pipeline> {
    let st = &cfg.stages;
    if st.track.enabled && !st.detect.enabled {
        bail!("stages.track.enabled = true needs stages.detect.enabled = true (the tracker follows detections)");
    }
    if st.detect.enabled && !st.preprocess.enabled {
        bail!("stages.detect.enabled = true needs stages.preprocess.enabled = true (it makes the model input)");
    }
    // detect.imgsz also sizes preprocessing: check it under its own key before anything is built.
    cfg.detect.validate()?;
    let source = perch_capture::open(&cfg.source)?;
    // The thresholds the detector reads every frame; ROS 2 parameter services write them.
    let params = Arc::new(LiveParams::new(cfg.detect.conf, cfg.detect.iou));
    let mut stages: Vec<StageSlot> = Vec::new();
    if let Some(delay) = &cfg.test_delay {
        stages.push(slot(Box::new(DelayStage::new(delay)), &st.test_delay));
    }
    if st.preprocess.enabled {
        let pre = perch_preprocess::PreprocessConfig { imgsz: cfg.detect.imgsz };
        stages.push(slot(Box::new(perch_preprocess::PreprocessStage::new(&pre)?), &st.preprocess));
    }
    if st.detect.enabled {
        let detect = perch_detect::DetectStage::new(&cfg.detect)?.with_live_params(params.clone());
        stages.push(slot(Box::new(detect), &st.detect));
    }
    if st.track.enabled {
        stages.push(slot(Box::new(perch_track::TrackStage::new(&cfg.track)?), &st.track));
    }
    add_ros2(cfg, &params, &mut stages)?;
    let mut taps: Vec<Box<dyn Tap>> = Vec::new();
    add_rerun(cfg, &mut taps)?;
    Ok(Pipeline { source, stages, taps, budget: cfg.pipeline.budget(), pool_size: cfg.pipeline.pool_size })
}

fn slot(stage: Box<dyn Stage>, rt: &StageRuntimeConfig) -> StageSlot {
    StageSlot { stage, input: rt.queue, budget: rt.budget() }
}

#[cfg(feature = "ros2")]
fn add_ros2(cfg: &Config, params: &Arc<LiveParams>, stages: &mut Vec<StageSlot>) -> anyhow::Result<()> {
    if cfg.ros2.enabled && cfg.stages.ros2.enabled {
        let stage = perch_ros2::Ros2PublishStage::with_params(&cfg.ros2, params.clone())?;
        stages.push(slot(Box::new(stage), &cfg.stages.ros2));
    }
    Ok(())
}

#[cfg(not(feature = "ros2"))]
fn add_ros2(cfg: &Config, _: &Arc<LiveParams>, _: &mut Vec<StageSlot>) -> anyhow::Result<()> {
    if cfg.ros2.as_ref().and_then(|t| t.get("enabled")).and_then(|v| v.as_bool()) == Some(true) {
        bail!("ros2.enabled = true, but this perch was built without the `ros2` feature (rebuild with `--features ros2`)");
    }
    Ok(())
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

//! Turn a [`Config`] into a runnable [`Pipeline`]: the one place that knows the stage order.

use perch_pipeline::delay::DelayStage;
use perch_pipeline::{Pipeline, QueuePolicy, StageRuntimeConfig, StageSlot};

use crate::config::Config;

/// capture → [test_delay] → ... The first queue after capture is `keep_latest` unless configured.
pub fn assemble(cfg: &Config) -> anyhow::Result<Pipeline> {
    let source = perch_capture::open(&cfg.source)?;
    let mut stages = Vec::new();
    if let Some(delay) = &cfg.test_delay {
        stages.push(slot(Box::new(DelayStage::new(delay)), &cfg.stages.test_delay));
    }
    if let Some(first) = stages.first() {
        if first.input != QueuePolicy::KeepLatest {
            tracing::info!("the queue after capture is {:?}: a paced source will wait instead of dropping stale frames", first.input);
        }
    }
    Ok(Pipeline { source, stages, taps: Vec::new(), budget: cfg.pipeline.budget(), pool_size: cfg.pipeline.pool_size })
}

fn slot(stage: Box<dyn perch_pipeline::Stage>, rt: &StageRuntimeConfig) -> StageSlot {
    StageSlot { stage, input: rt.queue, budget: rt.budget() }
}

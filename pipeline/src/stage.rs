//! The contract every pipeline stage implements. One stage = one crate under `nodes/`.

use std::sync::Arc;

use crate::frame::Frame;
use crate::live::LiveStats;
use crate::offload::WorkerBoard;
use crate::source::SourceInfo;

/// Facts a stage may need before the first frame, filled in stage order: a detector sets
/// `class_names`, later stages (tracker, ROS 2, Rerun) read them.
#[derive(Clone, Debug)]
pub struct StartContext {
    pub source: SourceInfo,
    /// The source delivers at its own rate (a camera, a realtime replay): its `fps` is the rate
    /// frames arrive at, whether or not the pipeline keeps up.
    pub live_source: bool,
    pub class_names: Option<Arc<[String]>>,
    /// Live per-stage statistics (refreshed a few times per second), e.g. for ROS 2 diagnostics.
    pub live: Arc<LiveStats>,
    /// The end-to-end budget of every frame (a scheduler sizes its work to it).
    pub budget: std::time::Duration,
    /// Side workers register here (`perch_pipeline::offload`), so the report lists them.
    pub workers: WorkerBoard,
}

/// A pipeline stage. The runtime runs each stage on its own thread and calls
/// `start` once, `process` for every frame that is still within its deadline, and `stop` once.
///
/// `process` must not block on anything but its own work (no unbounded waits), must not allocate
/// per frame in steady state where it can avoid it, and reports failure as an error (the frame is
/// then dropped as `stage_error`; the stage keeps running). A frame `process` returns `Ok` for goes
/// on to the next stage (or is published after the last one).
pub trait Stage: Send {
    /// Short, stable name used in configs, metrics and reports (`preprocess`, `detect`, ...).
    fn name(&self) -> &'static str;

    fn start(&mut self, _ctx: &mut StartContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()>;

    fn stop(&mut self) -> anyhow::Result<()> {
        Ok(())
    }

    /// Stage-specific counters for the final report (e.g. `unsent` for a publisher), read after `stop`.
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Observes every published frame on the last stage's thread, after it is counted as published.
/// Must return quickly: copy what is needed into an own bounded queue and count what it drops.
pub trait Tap: Send {
    fn name(&self) -> &'static str;
    fn start(&mut self, _ctx: &StartContext) -> anyhow::Result<()> {
        Ok(())
    }
    fn observe(&mut self, frame: &Frame);
    fn stop(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
    fn counters(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

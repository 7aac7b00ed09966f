//! The contract every pipeline stage implements. One stage = one crate under `nodes/`.

use std::sync::Arc;

use crate::frame::Frame;
use crate::ledger::DropReason;
use crate::live::LiveStats;
use crate::source::SourceInfo;

/// What a stage wants done with the frame it just processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Pass the frame to the next stage (or publish it, after the last stage).
    Continue,
    /// End the frame here, counted under `reason`.
    Drop(DropReason),
}

/// Facts a stage may need before the first frame, filled in stage order: a detector sets
/// `class_names`, later stages (tracker, ROS 2, Rerun) read them.
#[derive(Clone, Debug)]
pub struct StartContext {
    pub source: SourceInfo,
    pub class_names: Option<Arc<[String]>>,
    /// Live per-stage statistics (refreshed a few times per second), e.g. for ROS 2 diagnostics.
    pub live: Arc<LiveStats>,
    /// The end-to-end budget of every frame.
    pub budget: std::time::Duration,
}

/// A pipeline stage. The runtime runs each stage on its own thread and calls
/// `start` once, `process` for every frame that is still within its deadline, and `stop` once.
///
/// `process` must not block on anything but its own work (no unbounded waits), must not allocate
/// per frame in steady state where it can avoid it, and reports failure as an error (the frame is
/// then dropped as `stage_error`; the stage keeps running).
pub trait Stage: Send {
    /// Short, stable name used in configs, metrics and reports (`preprocess`, `detect`, ...).
    fn name(&self) -> &'static str;

    fn start(&mut self, _ctx: &mut StartContext) -> anyhow::Result<()> {
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<Flow>;

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

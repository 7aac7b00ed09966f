//! Test doubles for runtime tests (never used by a shipped pipeline).
#![allow(dead_code)]

use std::time::Duration;

use perch_pipeline::{Frame, Stage};

/// Sleeps, and fails every `fail_every`-th frame it sees.
pub struct SleepyStage {
    pub name: &'static str,
    pub delay: Duration,
    pub fail_every: u64,
    pub seen: u64,
}

impl SleepyStage {
    pub fn new(name: &'static str, delay: Duration) -> Self {
        Self { name, delay, fail_every: 0, seen: 0 }
    }
}

impl Stage for SleepyStage {
    fn name(&self) -> &'static str {
        self.name
    }
    fn process(&mut self, _frame: &mut Frame) -> anyhow::Result<()> {
        self.seen += 1;
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        if self.fail_every > 0 && self.seen % self.fail_every == 0 {
            anyhow::bail!("synthetic failure");
        }
        Ok(())
    }
}

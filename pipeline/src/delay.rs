//! A test-only stage that sleeps: lets deadline behaviour be exercised on real footage
//! without a detector. Never part of a shipped config.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::frame::Frame;
use crate::stage::Stage;

/// `[test_delay]`: add a stage that sleeps `ms` per frame.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DelayConfig {
    pub ms: f64,
}

pub struct DelayStage {
    delay: Duration,
}

impl DelayConfig {
    pub fn validate(&self) -> Result<(), crate::ConfigError> {
        crate::config::check_duration_ms("test_delay.ms", self.ms, true)
    }
}

impl DelayStage {
    pub fn new(cfg: &DelayConfig) -> Self {
        Self { delay: crate::config::duration_from_ms(cfg.ms) }
    }
}

impl Stage for DelayStage {
    fn name(&self) -> &'static str {
        "test_delay"
    }
    fn process(&mut self, _frame: &mut Frame) -> anyhow::Result<()> {
        std::thread::sleep(self.delay);
        Ok(())
    }
}

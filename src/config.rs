//! The whole `perch run` configuration: one TOML file, each section owned by one crate.

use perch_capture::SourceConfig;
use perch_pipeline::delay::DelayConfig;
use perch_pipeline::{RuntimeConfig, StageRuntimeConfig};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// End-to-end budget and buffer pool.
    pub pipeline: RuntimeConfig,
    /// Where frames come from.
    pub source: SourceConfig,
    /// Per-stage input queue policy and budget.
    pub stages: StagesConfig,
    /// Test-only: an extra stage that sleeps this long per frame (exercises deadlines without a model).
    pub test_delay: Option<DelayConfig>,
}

/// `[stages.<name>]`: one entry per stage the pipeline can have.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StagesConfig {
    pub test_delay: StageRuntimeConfig,
}

impl Default for StagesConfig {
    fn default() -> Self {
        Self { test_delay: StageRuntimeConfig::keep_latest() }
    }
}

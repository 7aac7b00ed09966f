//! The pipeline stage: `frame.image` → `frame.tensor` + `frame.letterbox`.

use anyhow::ensure;
use perch_pipeline::{Frame, Stage};
use serde::{Deserialize, Serialize};

/// `[preprocess]` in the pipeline TOML.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// Side of the square model input in pixels; a multiple of 32 (the detector's stride). Must equal
    /// the detector's `imgsz`. Default 640.
    pub imgsz: u32,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self { imgsz: 640 }
    }
}

impl PreprocessConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.imgsz >= 32 && self.imgsz % 32 == 0 && self.imgsz <= crate::MAX_TARGET,
            "preprocess.imgsz = {}: must be a positive multiple of 32 (the detector's stride), e.g. 320 or 640, at most {}",
            self.imgsz,
            crate::MAX_TARGET
        );
        Ok(())
    }
}

/// Letterboxes each frame's source image into its model tensor.
pub struct PreprocessStage {
    imgsz: u32,
    pre: crate::Preprocessor,
}

impl PreprocessStage {
    pub fn new(config: &PreprocessConfig) -> anyhow::Result<Self> {
        config.validate()?;
        Ok(Self { imgsz: config.imgsz, pre: crate::Preprocessor::new(crate::Path::Auto) })
    }

    pub fn imgsz(&self) -> u32 {
        self.imgsz
    }
}

impl Stage for PreprocessStage {
    fn name(&self) -> &'static str {
        "preprocess"
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let data = &mut *frame.data;
        data.letterbox = self.pre.run(&data.image, self.imgsz, self.imgsz, &mut data.tensor)?;
        Ok(())
    }
}

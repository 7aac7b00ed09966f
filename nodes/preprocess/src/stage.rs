//! The pipeline stage: `frame.image` → `frame.tensor` + `frame.letterbox`.

use perch_pipeline::{Flow, Frame, Stage};
use serde::{Deserialize, Serialize};

/// The stage's settings. Not a section of the pipeline TOML: the binary fills `imgsz` from
/// `detect.imgsz`, so the tensor always has the size the detector expects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreprocessConfig {
    /// Side of the square model input in pixels; a multiple of 32 (the detector's stride). Default 640.
    pub imgsz: u32,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self { imgsz: 640 }
    }
}

impl PreprocessConfig {
    /// The same check as the detector's (`detect.imgsz` sizes both).
    pub fn validate(&self) -> anyhow::Result<()> {
        perch_pipeline::letterbox::validate_imgsz(self.imgsz, "detect.imgsz")
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

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<Flow> {
        let data = &mut *frame.data;
        data.letterbox = self.pre.run(&data.image, self.imgsz, self.imgsz, &mut data.tensor)?;
        Ok(Flow::Continue)
    }
}

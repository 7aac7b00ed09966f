//! The pipeline stage: `frame.tensor` + `frame.letterbox` → `frame.detections` (source pixels).

use std::sync::Arc;

use perch_pipeline::{Flow, Frame, LiveParams, Stage, StartContext, TensorBuf};

use crate::config::DetectConfig;
use crate::detector::Detector;

pub struct DetectStage {
    detector: Detector,
    /// Thresholds that may change at run time (ROS 2 parameters), and the change count last applied.
    live: Option<(Arc<LiveParams>, u64)>,
    frames: u64,
    detections: u64,
    warmed_up: bool,
}

impl DetectStage {
    /// Load the model named by `config.model` (an imported directory) and check every key.
    pub fn new(config: &DetectConfig) -> anyhow::Result<Self> {
        Ok(Self { detector: Detector::load(config)?, live: None, frames: 0, detections: 0, warmed_up: false })
    }

    /// Read `conf` and `iou` from `params` at the start of every frame (changes apply to the next frame).
    pub fn with_live_params(mut self, params: Arc<LiveParams>) -> Self {
        self.live = Some((params, u64::MAX));
        self
    }

    /// Apply a change of the live thresholds; allocates only when they changed.
    fn refresh_params(&mut self) {
        if let Some((live, applied)) = &mut self.live {
            let generation = live.generation();
            if generation != *applied {
                let mut p = self.detector.params().clone();
                p.conf = live.conf();
                p.iou = live.iou();
                self.detector.set_params(p);
                *applied = generation;
            }
        }
    }

    /// The model's class names, index = class id.
    pub fn class_names(&self) -> &[String] {
        self.detector.class_names()
    }

    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    pub fn detector_mut(&mut self) -> &mut Detector {
        &mut self.detector
    }
}

impl Stage for DetectStage {
    fn name(&self) -> &'static str {
        "detect"
    }

    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        ctx.class_names = Some(Arc::from(self.detector.class_names().to_vec()));
        if !self.warmed_up {
            // One pass before the first frame: pays page faults, buffer growth and lazy
            // initialisation up front instead of on a frame with a deadline.
            let s = self.detector.imgsz() as usize;
            let blank = TensorBuf { shape: [3, s, s], data: vec![114.0 / 255.0; 3 * s * s] };
            self.detector.forward_raw(&blank)?;
            self.warmed_up = true;
        }
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<Flow> {
        self.refresh_params();
        let data = &mut *frame.data;
        self.detector.detect(&data.tensor, &data.letterbox, &mut data.detections)?;
        data.detections_fresh = true;
        self.frames += 1;
        self.detections += data.detections.len() as u64;
        Ok(Flow::Continue)
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("frames".into(), self.frames), ("detections".into(), self.detections)]
    }
}

//! The pipeline stage: `frame.tensor` + `frame.letterbox` → `frame.detections` (source pixels).
//!
//! The detector runs on the stage's side worker (`perch_pipeline::offload`) under the configured
//! schedule (`detect.schedule`): inline on every frame (`every_frame`, the frame waits), on every
//! `(interval + 1)`-th frame (`interval`), or asynchronously on the newest frame whenever the
//! worker is free (`async`, and `auto` when the detector is slower than the frames allow). A result
//! rides on the frame that is passing when it lands, marked with the frame it was computed on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use perch_pipeline::{Detection, Frame, FrameJob, Letterbox, LiveParams, Offload, Scheduled, Stage, StartContext, TensorBuf, Timing};

use crate::config::DetectConfig;
use crate::detector::Detector;

/// What travels to the detector's worker and back: the frame's tensor (swapped in, not copied),
/// its letterbox, and the result.
#[derive(Default)]
struct DetectJob {
    tensor: TensorBuf,
    letterbox: Letterbox,
    detections: Vec<Detection>,
}

impl FrameJob for DetectJob {
    fn load(&mut self, frame: &mut Frame) {
        std::mem::swap(&mut self.tensor, &mut frame.data.tensor);
        self.letterbox = frame.letterbox;
    }
    fn store(&self, frame: &mut Frame) {
        frame.detections.clear();
        frame.detections.extend_from_slice(&self.detections);
    }
    fn restore(&mut self, frame: &mut Frame) {
        std::mem::swap(&mut self.tensor, &mut frame.data.tensor);
    }
}

pub struct DetectStage {
    config: DetectConfig,
    /// Owned here until `start` moves it onto the worker thread.
    detector: Option<Detector>,
    class_names: Arc<[String]>,
    /// Thresholds that may change at run time (ROS 2 parameters).
    live: Option<Arc<LiveParams>>,
    work: Option<Scheduled<DetectJob>>,
    /// How long the warm-up pass took (seeds `auto`'s latency estimate).
    warm_up: Option<Duration>,
    /// How long `Detector::load` took (reported as `model_load_us`: part of the cold start).
    load: Duration,
    frames: u64,
    detections: u64,
}

impl DetectStage {
    /// Load the model named by `config.model` (an imported directory) and check every key.
    pub fn new(config: &DetectConfig) -> anyhow::Result<Self> {
        let t0 = Instant::now();
        let detector = Detector::load(config)?;
        let load = t0.elapsed();
        let class_names = Arc::from(detector.class_names().to_vec());
        Ok(Self {
            config: config.clone(),
            detector: Some(detector),
            class_names,
            live: None,
            work: None,
            warm_up: None,
            load,
            frames: 0,
            detections: 0,
        })
    }

    /// Read `conf` and `iou` from `params` at the start of every detection (changes apply to the
    /// next frame the detector starts).
    pub fn with_live_params(mut self, params: Arc<LiveParams>) -> Self {
        self.live = Some(params);
        self
    }

    /// The model's class names, index = class id.
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// The detector, until `start` hands it to the stage's worker thread (then `None`).
    pub fn detector(&self) -> Option<&Detector> {
        self.detector.as_ref()
    }

    pub fn detector_mut(&mut self) -> Option<&mut Detector> {
        self.detector.as_mut()
    }
}

/// Apply a change of the live thresholds; allocates only when they changed.
fn refresh_params(detector: &mut Detector, live: &Option<Arc<LiveParams>>, applied: &mut u64) {
    if let Some(live) = live {
        let generation = live.generation();
        if generation != *applied {
            let mut p = detector.params().clone();
            p.conf = live.conf();
            p.iou = live.iou();
            detector.set_params(p);
            *applied = generation;
        }
    }
}

impl Stage for DetectStage {
    fn name(&self) -> &'static str {
        "detect"
    }

    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        ctx.class_names = Some(self.class_names.clone());
        let mut detector = self.detector.take().context("detect: started twice")?;
        if self.warm_up.is_none() {
            // One pass before the first frame: pays page faults, buffer growth and lazy
            // initialisation up front instead of on a frame with a deadline.
            let s = detector.imgsz() as usize;
            let blank = TensorBuf { shape: [3, s, s], data: vec![114.0 / 255.0; 3 * s * s], padded_for: None };
            let t0 = Instant::now();
            detector.forward_raw(&blank)?;
            self.warm_up = Some(t0.elapsed());
        }
        let timing = match self.config.virtual_latency() {
            Some(d) => Timing::Virtual(d),
            None => Timing::Wall,
        };
        let live = self.live.clone();
        let mut applied = u64::MAX;
        let offload = Offload::spawn("detect", DetectJob::default(), timing, move |job: &mut DetectJob| {
            refresh_params(&mut detector, &live, &mut applied);
            detector.detect(&job.tensor, &job.letterbox, &mut job.detections).map(|_| ())
        })?;
        ctx.workers.register(offload.stats());
        let mut work = Scheduled::new(self.config.schedule_config(), offload, ctx);
        if let Some(d) = self.warm_up {
            work.observe_latency(d);
        }
        self.work = Some(work);
        Ok(())
    }

    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let work = self.work.as_mut().context("detect: a frame before start")?;
        work.process(frame)?;
        if frame.detections_of.is_some() {
            self.frames += 1;
            self.detections += frame.detections.len() as u64;
        }
        Ok(())
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(work) = &mut self.work {
            work.shutdown();
        }
        Ok(())
    }

    /// `frames` (results put on a frame), `detections` (boxes in them), and the schedule's counters.
    fn counters(&self) -> Vec<(String, u64)> {
        let mut c = vec![("frames".into(), self.frames), ("detections".into(), self.detections)];
        // The cold start's parts (`perch bench cold-start`).
        c.push(("model_load_us".into(), self.load.as_micros() as u64));
        if let Some(w) = self.warm_up {
            c.push(("warm_up_us".into(), w.as_micros() as u64));
        }
        if let Some(work) = &self.work {
            c.extend(work.counters());
        }
        c
    }
}

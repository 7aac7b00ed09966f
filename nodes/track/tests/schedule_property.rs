//! The whole late-detection path on the real runtime: a detector of random delays on its side
//! worker (`perch_pipeline::Scheduled`), the real `TrackStage`, a live source at a random rate.
//! Property: every published frame's boxes are exactly what a tracker would publish had each
//! result that reached the tracker by then been applied on time, at the frame it was computed on
//! (and nothing else) — so no result is ever applied to a later frame as if it were fresh.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use perch_pipeline::testing::ScriptedSource;
use perch_pipeline::{
    BBox, Detection, Frame, FrameJob, Offload, Pipeline, QueuePolicy, Schedule, ScheduleConfig, Scheduled, Stage, StageSlot,
    StartContext, Tap, TensorBuf, Timing,
};
use perch_track::late::{Input, LateTracker};
use perch_track::{Det, TrackConfig, TrackOut, TrackStage};
use proptest::prelude::*;

/// Three objects at frame `seq`, moving at different constant velocities.
fn truth(seq: u64) -> Vec<Detection> {
    (0..3)
        .map(|i| {
            let f = seq as f32;
            let x = 30.0 + 200.0 * i as f32 + (2.0 + i as f32) * f;
            let y = 40.0 + 1.5 * f * (i as f32 - 1.0);
            Detection::new(BBox { x1: x, y1: y, x2: x + 50.0, y2: y + 120.0 }, 0.9, 0)
        })
        .collect()
}

fn as_dets(d: &[Detection]) -> Vec<Det> {
    d.iter()
        .map(|d| Det { xyxy: [d.bbox.x1 as f64, d.bbox.y1 as f64, d.bbox.x2 as f64, d.bbox.y2 as f64], score: d.score as f64, class_id: 0 })
        .collect()
}

struct Tensorize;
impl Stage for Tensorize {
    fn name(&self) -> &'static str {
        "preprocess"
    }
    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let seq = frame.seq as f32;
        frame.tensor.reshape([1, 1, 2]);
        frame.tensor.data.fill(seq);
        Ok(())
    }
}

#[derive(Default)]
struct TruthJob {
    tensor: TensorBuf,
    dets: Vec<Detection>,
}

impl FrameJob for TruthJob {
    fn load(&mut self, frame: &mut Frame) {
        std::mem::swap(&mut self.tensor, &mut frame.data.tensor);
    }
    fn store(&self, frame: &mut Frame) {
        frame.detections.clear();
        frame.detections.extend_from_slice(&self.dets);
    }
    fn restore(&mut self, frame: &mut Frame) {
        std::mem::swap(&mut self.tensor, &mut frame.data.tensor);
    }
}

/// A "detector" that returns the truth of the frame its tensor came from, after a delay.
struct TruthDetect {
    cfg: ScheduleConfig,
    delays: Vec<Duration>,
    work: Option<Scheduled<TruthJob>>,
}

impl Stage for TruthDetect {
    fn name(&self) -> &'static str {
        "detect"
    }
    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        let (delays, mut i) = (self.delays.clone(), 0usize);
        let offload = Offload::spawn("detect", TruthJob::default(), Timing::Wall, move |job: &mut TruthJob| {
            std::thread::sleep(delays[i % delays.len()]);
            i += 1;
            job.dets = truth(job.tensor.data[0] as u64);
            Ok(())
        })?;
        self.work = Some(Scheduled::new(self.cfg, offload, ctx));
        Ok(())
    }
    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        self.work.as_mut().expect("started").process(frame)
    }
    fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(w) = &mut self.work {
            w.shutdown();
        }
        Ok(())
    }
}

/// A published frame: seq, the origin of the result it carried, its boxes (id, corners), frame age.
type Published = (u64, Option<u64>, Vec<(u64, [f32; 4])>, Option<u32>);

struct Record(Arc<Mutex<Vec<Published>>>);
impl Tap for Record {
    fn name(&self) -> &'static str {
        "record"
    }
    fn observe(&mut self, f: &Frame) {
        let mut boxes: Vec<(u64, [f32; 4])> =
            f.detections.iter().map(|d| (d.track_id.unwrap_or(0), [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2])).collect();
        boxes.sort_by_key(|b| b.0);
        let age = f.detection_age.map(|a| a.frames);
        self.0.lock().unwrap().push((f.seq, f.detections_of.map(|o| o.seq), boxes, age));
    }
}

fn schedule() -> impl Strategy<Value = ScheduleConfig> {
    (prop_oneof![Just(Schedule::EveryFrame), Just(Schedule::Interval), Just(Schedule::Async), Just(Schedule::Auto)], 0u32..3)
        .prop_map(|(schedule, interval)| ScheduleConfig { schedule, interval, ..ScheduleConfig::default() })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn published_tracks_equal_on_time_tracking_of_the_results_received(
        frames in 2u64..45,
        fps in 40.0f64..200.0,
        delays_ms in prop::collection::vec(0u64..45, 1..5),
        cfg in schedule(),
        budget_ms in 20u64..400,
    ) {
        let published = Arc::new(Mutex::new(Vec::new()));
        let detect = TruthDetect { cfg, delays: delays_ms.iter().map(|&d| Duration::from_millis(d)).collect(), work: None };
        let track_cfg = TrackConfig::default();
        let stages = vec![
            StageSlot { stage: Box::new(Tensorize), input: QueuePolicy::KeepLatest, budget: None },
            StageSlot { stage: Box::new(detect), input: QueuePolicy::Fifo { capacity: 2 }, budget: None },
            StageSlot { stage: Box::new(TrackStage::new(&track_cfg).unwrap()), input: QueuePolicy::Fifo { capacity: 2 }, budget: None },
        ];
        let p = Pipeline {
            source: Box::new(ScriptedSource::new(frames).live_at(fps)),
            stages,
            taps: vec![Box::new(Record(published.clone()))],
            budget: Duration::from_millis(budget_ms),
            pool_size: None,
        };
        let report = p.run(Arc::new(AtomicBool::new(false))).unwrap();
        prop_assert!(report.invariant_ok, "{}", report.table());
        let published = published.lock().unwrap().clone();
        prop_assert_eq!(report.frames.published as usize, published.len());
        let params = track_cfg.params(Some(fps)).unwrap();
        let mut received: Vec<u64> = Vec::new();
        let mut out: Vec<TrackOut> = Vec::new();
        for (seq, origin, boxes, age) in &published {
            received.extend(*origin);
            // On time: the received results applied at their own frames, every other frame predicted.
            let mut on_time = LateTracker::new(params, 64);
            for s in 0..=*seq {
                let truth = as_dets(&truth(s));
                let input = if received.contains(&s) { Input::Fresh(&truth) } else { Input::Coast };
                on_time.step(s, Duration::ZERO, input, &mut out);
            }
            let mut expect: Vec<(u64, [f32; 4])> =
                out.iter().map(|t| (t.track_id, t.xyxy.map(|v| v as f32))).collect();
            expect.sort_by_key(|b| b.0);
            prop_assert_eq!(boxes.len(), expect.len(), "frame {}: {:?} vs {:?} (received {:?})", seq, boxes, expect, received);
            for ((id, b), (eid, e)) in boxes.iter().zip(&expect) {
                prop_assert_eq!(id, eid);
                prop_assert!(b.iter().zip(e).all(|(x, y)| (x - y).abs() < 1e-3), "frame {}: {:?} vs {:?}", seq, b, e);
            }
            let newest = received.iter().max().map(|k| (seq - k) as u32);
            prop_assert_eq!(*age, newest, "frame {}: age of the newest detection", seq);
        }
    }
}

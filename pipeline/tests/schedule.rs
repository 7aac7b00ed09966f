//! Schedules on the real runtime: whatever the detector's delays and the frame rate, every frame
//! ends published or dropped with a reason, and a result rides only with its own frame (fresh) or
//! a later one marked with its origin (late), never with a later one as if fresh.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use perch_pipeline::testing::ScriptedSource;
use perch_pipeline::{
    BBox, Detection, Frame, FrameJob, Offload, Pipeline, QueuePolicy, Schedule, ScheduleConfig, Scheduled, Stage, StageSlot,
    StartContext, Tap, TensorBuf, Timing,
};
use proptest::prelude::*;

/// Stands in for preprocess: the frame's tensor holds its own `seq`.
struct Tensorize;
impl Stage for Tensorize {
    fn name(&self) -> &'static str {
        "tensorize"
    }
    fn process(&mut self, frame: &mut Frame) -> anyhow::Result<()> {
        let seq = frame.seq as f32;
        frame.tensor.reshape([1, 1, 4]);
        frame.tensor.data.fill(seq);
        Ok(())
    }
}

/// The job: the tensor handed over, and one "detection" whose class is the seq the tensor held.
#[derive(Default)]
struct SeqJob {
    tensor: TensorBuf,
    dets: Vec<Detection>,
}

impl FrameJob for SeqJob {
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

/// A detector whose runs take the given delays in turn (real sleeps, or virtual).
struct FakeDetect {
    cfg: ScheduleConfig,
    delays: Vec<Duration>,
    timing: Option<Duration>,
    work: Option<Scheduled<SeqJob>>,
}

impl Stage for FakeDetect {
    fn name(&self) -> &'static str {
        "detect"
    }
    fn start(&mut self, ctx: &mut StartContext) -> anyhow::Result<()> {
        let (delays, mut i) = (self.delays.clone(), 0usize);
        let virtual_time = self.timing.is_some();
        let timing = self.timing.map_or(Timing::Wall, Timing::Virtual);
        let offload = Offload::spawn("detect", SeqJob::default(), timing, move |job: &mut SeqJob| {
            let seq = job.tensor.data[0];
            if !virtual_time {
                std::thread::sleep(delays[i % delays.len()]);
            }
            i += 1;
            job.dets.clear();
            job.dets.push(Detection::new(BBox { x1: 0.0, y1: 0.0, x2: 1.0, y2: 1.0 }, 0.9, seq as u32));
            Ok(())
        })?;
        ctx.workers.register(offload.stats());
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
    fn counters(&self) -> Vec<(String, u64)> {
        self.work.as_ref().map(|w| w.counters()).unwrap_or_default()
    }
}

/// What a published frame carried: (seq, origin of its result, class of that result, fresh, tensor seq).
type Seen = (u64, Option<u64>, Option<u32>, bool, f32);

struct Record(Arc<Mutex<Vec<Seen>>>);
impl Tap for Record {
    fn name(&self) -> &'static str {
        "record"
    }
    fn observe(&mut self, f: &Frame) {
        let tensor = f.tensor.data.first().copied().unwrap_or(-1.0);
        let seen = (f.seq, f.detections_of.map(|o| o.seq), f.detections.first().map(|d| d.class_id), f.detections_fresh, tensor);
        self.0.lock().unwrap().push(seen);
    }
}

fn run(source: ScriptedSource, detect: FakeDetect, queue: QueuePolicy, budget: Duration) -> (perch_pipeline::RunReport, Vec<Seen>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let stages = vec![
        StageSlot { stage: Box::new(Tensorize), input: QueuePolicy::KeepLatest, budget: None },
        StageSlot { stage: Box::new(detect), input: queue, budget: None },
    ];
    let p = Pipeline { source: Box::new(source), stages, taps: vec![Box::new(Record(seen.clone()))], budget, pool_size: None };
    let report = p.run(Arc::new(AtomicBool::new(false))).unwrap();
    let seen = seen.lock().unwrap().clone();
    (report, seen)
}

fn schedule() -> impl Strategy<Value = ScheduleConfig> {
    prop_oneof![
        Just(Schedule::EveryFrame),
        Just(Schedule::Interval),
        Just(Schedule::Async),
        Just(Schedule::Auto)
    ]
    .prop_flat_map(|s| (Just(s), 0u32..4))
    .prop_map(|(schedule, interval)| ScheduleConfig { schedule, interval, ..ScheduleConfig::default() })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 20, .. ProptestConfig::default() })]

    #[test]
    fn results_ride_only_with_their_frame_or_marked_late(
        frames in 1u64..40,
        fps in 40.0f64..250.0,
        delays_ms in prop::collection::vec(0u64..40, 1..6),
        cfg in schedule(),
        budget_ms in 5u64..200,
        queue in prop_oneof![Just(QueuePolicy::KeepLatest), (1usize..4).prop_map(|capacity| QueuePolicy::Fifo { capacity })],
    ) {
        let detect = FakeDetect { cfg, delays: delays_ms.iter().map(|&d| Duration::from_millis(d)).collect(), timing: None, work: None };
        let (report, seen) = run(ScriptedSource::new(frames).live_at(fps), detect, queue, Duration::from_millis(budget_ms));
        prop_assert!(report.invariant_ok, "{}", report.table());
        prop_assert_eq!(report.frames.captured, frames);
        prop_assert_eq!(report.frames.published as usize, seen.len());
        let mut last_origin = None;
        for &(seq, origin, class, fresh, tensor) in &seen {
            match origin {
                None => prop_assert!(!fresh && class.is_none(), "frame {seq}: no result, nothing on it"),
                Some(k) => {
                    prop_assert_eq!(class, Some(k as u32), "frame {}: the result is the one computed on frame {}", seq, k);
                    prop_assert!(k <= seq, "frame {seq}: a result from the future ({k})");
                    prop_assert_eq!(fresh, k == seq, "frame {}: fresh exactly when the result is its own (origin {})", seq, k);
                    prop_assert!(last_origin < Some(k), "results arrive in order, each once");
                    last_origin = Some(k);
                }
            }
            if fresh {
                prop_assert_eq!(tensor, seq as f32, "an inline run gives the frame its own tensor back");
            }
            if cfg.schedule == Schedule::EveryFrame {
                prop_assert!(fresh, "every_frame: every published frame has its own result");
            }
        }
        let c = &report.stages[2].counters;
        let (inline, submitted) = (c["inline"], c["submitted"]);
        let joined = c["joined_late"] + inline;
        prop_assert!(joined + c["late_unused"] <= inline + submitted, "{c:?}");
        prop_assert_eq!(report.workers[0].jobs, inline + submitted);
    }
}

/// On the source clock (a max-pacing replay, `Timing::Virtual`), the schedule is a function of
/// the frame times alone: 90 ms runs at 30 fps join three frames later, whatever the machine.
#[test]
fn async_with_virtual_latency_is_deterministic() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut source = ScriptedSource::new(20);
        source.ts_step = Duration::from_micros(33_333);
        let cfg = ScheduleConfig { schedule: Schedule::Async, ..ScheduleConfig::default() };
        let detect = FakeDetect { cfg, delays: vec![Duration::ZERO], timing: Some(Duration::from_millis(90)), work: None };
        let (report, seen) = run(source, detect, QueuePolicy::Fifo { capacity: 2 }, Duration::from_secs(60));
        assert!(report.invariant_ok);
        assert_eq!(report.frames.published, 20, "{}", report.table());
        runs.push(seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>());
    }
    assert_eq!(runs[0], runs[1]);
    let carried: Vec<(u64, u64)> = runs[0].iter().filter_map(|&(seq, o)| o.map(|k| (seq, k))).collect();
    // Frame 0 runs 0..90 ms, lands with frame 3 (100 ms), which runs next; and so on.
    assert_eq!(carried, vec![(3, 0), (6, 3), (9, 6), (12, 9), (15, 12), (18, 15)]);
}

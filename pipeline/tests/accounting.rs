//! Every frame that enters ends exactly once, whatever the delays, policies and budget.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use common::SleepyStage;
use perch_pipeline::testing::{self, ScriptedSource};
use perch_pipeline::{DropReason, Pipeline, QueuePolicy, StageSlot};
use proptest::prelude::*;

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn policy() -> impl Strategy<Value = QueuePolicy> {
    prop_oneof![Just(QueuePolicy::KeepLatest), (1usize..4).prop_map(|capacity| QueuePolicy::Fifo { capacity })]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]

    #[test]
    fn invariant_holds_under_random_delays_and_policies(
        frames in 0u64..60,
        live in any::<bool>(),
        decode_error_every in 0u64..7,
        budget_ms in 1u64..30,
        stages in prop::collection::vec((0u64..3000, policy(), 0u64..6), 0..4),
    ) {
        let mut source = ScriptedSource::new(frames);
        source.live = live;
        source.period = Duration::from_micros(300);
        source.decode_error_every = decode_error_every;
        let slots = stages.iter().enumerate().map(|(i, (delay_us, input, fail_every))| {
            let mut s = SleepyStage::new(NAMES[i], Duration::from_micros(*delay_us));
            s.fail_every = *fail_every;
            StageSlot { stage: Box::new(s), input: *input, budget: Some(Duration::from_micros(1500)) }
        }).collect();
        let p = Pipeline { source: Box::new(source), stages: slots, taps: vec![], budget: Duration::from_millis(budget_ms), pool_size: None };
        let report = p.run(Arc::new(AtomicBool::new(false))).unwrap();
        let f = &report.frames;
        prop_assert!(report.invariant_ok, "{}", report.table());
        prop_assert_eq!(f.captured, frames, "every source frame is counted as captured");
        let expected_decode = if decode_error_every == 0 { 0 } else { frames / decode_error_every };
        prop_assert_eq!(f.dropped(DropReason::DecodeError), expected_decode);
        prop_assert_eq!(f.dropped(DropReason::Shutdown), 0, "a source that ends drains, it does not shut down");
        // Per-stage counters agree with the ledger.
        let deadline: u64 = report.stages.iter().map(|s| s.deadline_drops).sum();
        prop_assert_eq!(deadline, f.dropped(DropReason::Deadline));
        let stale: u64 = report.stages.iter().map(|s| s.stale_drops).sum();
        prop_assert_eq!(stale, f.dropped(DropReason::Stale));
        let errors: u64 = report.stages.iter().skip(1).map(|s| s.errors).sum();
        prop_assert_eq!(errors, f.dropped(DropReason::StageError));
        if !live {
            prop_assert_eq!(stale, 0, "a source that is not live waits instead of evicting");
        }
        prop_assert_eq!(report.pool.misses, 0, "the pool is sized for every frame in flight");
    }
}

#[test]
fn late_frames_are_dropped_for_deadline_and_overruns_counted() {
    let mut source = ScriptedSource::new(12);
    source.live = false;
    let slow = StageSlot {
        stage: Box::new(SleepyStage::new("slow", Duration::from_millis(15))),
        input: QueuePolicy::Fifo { capacity: 8 },
        budget: Some(Duration::from_millis(5)),
    };
    let after = StageSlot {
        stage: Box::new(SleepyStage::new("after", Duration::ZERO)),
        input: QueuePolicy::Fifo { capacity: 1 },
        budget: None,
    };
    let p = Pipeline { source: Box::new(source), stages: vec![slow, after], taps: vec![], budget: Duration::from_millis(10), pool_size: None };
    let r = p.run(Arc::new(AtomicBool::new(false))).unwrap();
    assert!(r.invariant_ok, "{}", r.table());
    // Every frame that reaches `after` left `slow` after 15 ms > 10 ms budget: all are late there.
    assert_eq!(r.frames.published, 0, "{}", r.table());
    assert_eq!(r.stages[2].deadline_drops, r.stages[1].processed);
    assert_eq!(r.stages[1].overruns, r.stages[1].processed);
    assert!(r.frames.dropped(DropReason::Deadline) >= 12 - r.stages[1].processed);
}

#[test]
fn stop_counts_frames_in_flight_as_shutdown_and_still_balances() {
    let mut source = ScriptedSource::new(u64::MAX);
    source.live = true;
    source.period = Duration::from_millis(1);
    let stop = Arc::new(AtomicBool::new(false));
    let slots = vec![StageSlot {
        stage: Box::new(SleepyStage::new("slow", Duration::from_millis(3))),
        input: QueuePolicy::Fifo { capacity: 3 },
        budget: None,
    }];
    let p = Pipeline { source: Box::new(source), stages: slots, taps: vec![], budget: Duration::from_secs(5), pool_size: None };
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
        })
    };
    let r = p.run(stop).unwrap();
    stopper.join().unwrap();
    assert!(r.interrupted);
    assert!(r.invariant_ok, "{}", r.table());
    assert!(r.frames.captured > 0 && r.frames.published > 0, "{}", r.table());
}

#[test]
fn keep_latest_keeps_the_newest_frame_and_counts_the_rest_stale() {
    use perch_pipeline::queue::edge;
    let ledger = Arc::new(perch_pipeline::Ledger::new());
    let pool = perch_pipeline::FramePool::new(8);
    let (tx, rx, stale) = edge(QueuePolicy::KeepLatest, ledger.clone());
    for seq in 0..5u64 {
        ledger.captured();
        let frame = testing::frame(&pool, seq).budget(Duration::ZERO).build();
        tx.send(frame, false).unwrap();
    }
    let got = rx.try_recv().unwrap();
    assert_eq!(got.seq, 4);
    assert!(rx.try_recv().is_err());
    assert_eq!(stale.load(std::sync::atomic::Ordering::Relaxed), 4);
    ledger.publish(got);
    let snap = ledger.snapshot();
    assert_eq!(snap.dropped(DropReason::Stale), 4);
    assert!(snap.balanced());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, .. ProptestConfig::default() })]

    /// A fifo edge with a live consumer delivers every frame, in order, whatever its capacity.
    #[test]
    fn fifo_delivers_all_in_order(n in 0u64..200, capacity in 1usize..6) {
        use perch_pipeline::queue::edge;
        let ledger = Arc::new(perch_pipeline::Ledger::new());
        let pool = perch_pipeline::FramePool::new(capacity + 4);
        let (tx, rx, stale) = edge(QueuePolicy::Fifo { capacity }, ledger);
        let consumer = std::thread::spawn(move || rx.iter().map(|f| f.seq).collect::<Vec<_>>());
        for seq in 0..n {
            let f = testing::frame(&pool, seq).budget(Duration::ZERO).build();
            tx.send(f, false).unwrap();
        }
        drop(tx);
        let got = consumer.join().unwrap();
        prop_assert_eq!(got, (0..n).collect::<Vec<_>>());
        prop_assert_eq!(stale.load(std::sync::atomic::Ordering::Relaxed), 0);
    }
}

#[test]
fn a_keep_latest_edge_between_stages_evicts_behind_a_slow_stage_when_the_source_is_live() {
    let mut source = ScriptedSource::new(60);
    source.live = true;
    source.period = Duration::from_millis(1);
    let stages = vec![
        StageSlot { stage: Box::new(SleepyStage::new("fast", Duration::ZERO)), input: QueuePolicy::KeepLatest, budget: None },
        StageSlot { stage: Box::new(SleepyStage::new("slow", Duration::from_millis(15))), input: QueuePolicy::KeepLatest, budget: None },
    ];
    let p = Pipeline { source: Box::new(source), stages, taps: vec![], budget: Duration::from_secs(10), pool_size: None };
    let r = p.run(Arc::new(AtomicBool::new(false))).unwrap();
    assert!(r.invariant_ok, "{}", r.table());
    // The fast stage is never held up by the slow one: the slow stage's input evicts instead.
    assert!(r.stages[2].stale_drops > 0, "{}", r.table());
    assert!(r.stages[1].processed > r.stages[2].processed, "{}", r.table());
}

//! Publishes known frames through `Ros2PublishStage` and logs, as JSON lines, exactly what it published,
//! so real ROS 2 peers (rclpy, Cyclone DDS) can check every field. Used by `scripts/live_matrix.py`.
//!
//! ```text
//! ROS_DOMAIN_ID=17 cargo run -p perch-ros2 --example ros2_fixture -- \
//!     --out published.jsonl --min-subscribers 2 --stop-file stop --max-seconds 60
//! ```
//!
//! It plays a detector too: each frame's candidate boxes are filtered by the live `conf` parameter
//! (read from `LiveParams` at the start of the frame, as the detect stage does), so a parameter set
//! through the ROS 2 parameter services shows in the next messages. One frame in four is counted as a
//! deadline miss in the ledger, so diagnostics report a 25 % miss rate (WARN above 5 %).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use perch_pipeline::metrics::{new_histogram, record};
use perch_pipeline::{
    testing, BBox, Detection, DetectionAge, DropReason, FramePool, ImageBuf, Ledger, LiveStats, PixelFormat, SourceInfo, Stage,
    StartContext,
};
use perch_ros2::{LiveParams, Ros2Config, Ros2PublishStage};

struct Args {
    out: PathBuf,
    min_subscribers: usize,
    stop_file: Option<PathBuf>,
    max_seconds: f64,
    period_ms: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args { out: PathBuf::from("published.jsonl"), min_subscribers: 0, stop_file: None, max_seconds: 60.0, period_ms: 100 };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().with_context(|| format!("{k} needs a value"));
        match k.as_str() {
            "--out" => a.out = v()?.into(),
            "--min-subscribers" => a.min_subscribers = v()?.parse()?,
            "--stop-file" => a.stop_file = Some(v()?.into()),
            "--max-seconds" => a.max_seconds = v()?.parse()?,
            "--period-ms" => a.period_ms = v()?.parse()?,
            other => anyhow::bail!("unknown argument {other:?} (--out, --min-subscribers, --stop-file, --max-seconds, --period-ms)"),
        }
    }
    Ok(a)
}

/// Candidate detections of frame `seq` before the `conf` filter; every 5th frame has none.
fn candidates(seq: u64) -> Vec<Detection> {
    if seq % 5 == 4 {
        return Vec::new();
    }
    let x = 10.0 + seq as f32 * 1.25;
    let tracked = |d: Detection, id: u64| Detection { track_id: Some(id), ..d };
    // A tracker prediction two frames (200 ms) after its detection: its Detection2D carries that
    // detection's (older) stamp.
    let predicted = |d: Detection| Detection { predicted: true, age: DetectionAge { frames: 2, ms: 200.0 }, ..d };
    vec![
        tracked(Detection::new(BBox { x1: x, y1: 20.5, x2: x + 50.75, y2: 200.125 }, 0.3 + (seq % 7) as f32 * 0.01, 0), seq * 10 + 1),
        Detection::new(BBox { x1: 300.0, y1: 40.0, x2: 360.5, y2: 90.0 }, 0.55, 1),
        predicted(tracked(Detection::new(BBox { x1: 0.0, y1: 0.0, x2: 639.0, y2: 479.0 }, 0.9, 2), (1 << 40) + seq)),
        Detection::new(BBox { x1: 100.25, y1: 100.5, x2: 120.75, y2: 180.0 }, 0.7, 7),
    ]
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?);

    let mut cfg = Ros2Config { enabled: true, ..Default::default() };
    cfg.image.enabled = true;
    cfg.image.rate_hz = 5.0;
    cfg.diagnostics.period_s = 0.5;
    let params = Arc::new(LiveParams::new(0.25, 0.45));
    let mut stage = Ros2PublishStage::with_params(&cfg, params.clone())?;

    let sent_log: Arc<Mutex<Vec<(perch_ros2::msg::Detection2DArray, bool)>>> = Arc::default();
    let sink = sent_log.clone();
    stage.set_observer(Box::new(move |m, sent| sink.lock().unwrap().push((m.clone(), sent))));

    let ledger = Arc::new(Ledger::new());
    let live = Arc::new(LiveStats::new(vec!["capture".into(), "ros2".into()], ledger.clone()));
    let names: Arc<[String]> = vec!["person".to_string(), "bicycle".into(), "car".into()].into();
    let mut ctx = StartContext {
        source: SourceInfo { name: "ros2_fixture".into(), width: 640, height: 480, fps: Some(10.0), frames: None, ..Default::default() },
        live_source: true,
        class_names: Some(names),
        live: live.clone(),
        budget: Duration::from_millis(100),
        workers: Default::default(),
    };
    stage.start(&mut ctx)?;
    let t0 = Instant::now();
    let max = Duration::from_secs_f64(args.max_seconds);
    writeln!(out, "{}", serde_json::json!({"kind": "node", "name": stage.node_name(), "domain_id": stage.domain_id()}))?;
    out.flush()?;

    while stage.detections_subscribers() < args.min_subscribers {
        anyhow::ensure!(t0.elapsed() < max, "only {} of {} subscribers matched within {:?}", stage.detections_subscribers(), args.min_subscribers, max);
        std::thread::sleep(Duration::from_millis(50));
    }
    writeln!(out, "{}", serde_json::json!({"kind": "ready", "subscribers": stage.detections_subscribers(), "after_s": t0.elapsed().as_secs_f64()}))?;
    out.flush()?;
    eprintln!("ros2_fixture: {} subscribers matched, publishing", stage.detections_subscribers());

    let pool = FramePool::new(4);
    let mut hist = new_histogram();
    let mut seq = 0u64;
    let period = Duration::from_millis(args.period_ms);
    let mut next = Instant::now();
    loop {
        if t0.elapsed() > max || args.stop_file.as_ref().is_some_and(|p| p.exists()) {
            break;
        }
        // The "detector": read conf once at the start of the frame.
        let conf = params.conf();
        let iou = params.iou();
        let now = Instant::now();
        let mut image = ImageBuf::default();
        image.reshape(PixelFormat::Gray8, 160, 120);
        image.data.fill((seq % 200) as u8 + 20);
        let dets: Vec<Detection> = candidates(seq).into_iter().filter(|d| d.score >= conf).collect();
        let mut frame = testing::frame(&pool, seq)
            .captured_at(now - Duration::from_millis(30))
            .budget(Duration::from_millis(100))
            .image(&image)
            .detections(&dets)
            .fresh()
            .build();
        ledger.captured();
        let started = Instant::now();
        stage.process(&mut frame)?;
        record(&mut hist, started.elapsed());
        live.publish_stage(1, &hist);
        live.publish_end_to_end(&hist);
        ledger.publish(frame);
        if seq % 4 == 3 {
            ledger.captured();
            ledger.count_drop(DropReason::Deadline);
        }
        for (msg, sent) in sent_log.lock().unwrap().drain(..) {
            // Written by hand so `msg` keeps its fields in .msg order (serde_json's `Value` sorts keys).
            writeln!(
                out,
                "{{\"kind\":\"detections\",\"seq\":{seq},\"conf\":{},\"iou\":{},\"sent\":{sent},\"msg\":{}}}",
                serde_json::to_string(&conf)?,
                serde_json::to_string(&iou)?,
                serde_json::to_string(&msg)?
            )?;
        }
        out.flush()?;
        seq += 1;
        next += period;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // Let reliable samples and the last diagnostics go out before the node goes away.
    std::thread::sleep(Duration::from_millis(500));
    stage.stop()?;
    let counters: serde_json::Map<String, serde_json::Value> = stage.counters().into_iter().map(|(k, v)| (k, v.into())).collect();
    writeln!(out, "{}", serde_json::json!({"kind": "counters", "frames": seq, "counters": counters}))?;
    out.flush()?;
    eprintln!("ros2_fixture: published {seq} frames");
    Ok(())
}

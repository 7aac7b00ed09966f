//! What the tap costs: time of `observe` on the pipeline thread (copy into a pooled buffer), and
//! how many frames per second the logging thread sustains (JPEG encode + log to an `.rrd`).
//!
//!     cargo run --release -p perch-rerun --example tap_cost -- [FRAMES] [OUT.rrd]

use std::sync::Arc;
use std::time::{Duration, Instant};

use perch_pipeline::{
    testing, BBox, Detection, Frame, FramePool, ImageBuf, Ledger, LiveStats, PixelFormat, SourceInfo, StageStamp, StartContext,
    Tap, MAX_STAGES,
};
use perch_rerun::{RerunConfig, RerunTap, Sink};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(200);
    let out = args.next().unwrap_or_else(|| std::env::temp_dir().join("perch-tap-cost.rrd").display().to_string());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vtest/img1");
    let rgb = image::open(root.join("000001.jpg"))?.to_rgb8();
    let (w, h) = rgb.dimensions();
    let img = ImageBuf { format: PixelFormat::Rgb8, width: w, height: h, data: rgb.into_raw() };

    let ledger = Arc::new(Ledger::new());
    let ctx = StartContext {
        source: SourceInfo { name: "vtest".into(), width: w, height: h, fps: Some(10.0), frames: None, ..Default::default() },
        class_names: Some(vec!["person".to_string()].into()),
        live: Arc::new(LiveStats::new(vec!["capture".into(), "detect".into()], ledger)),
        budget: Duration::from_millis(200),
        live_source: true,
        workers: Default::default(),
    };
    let cfg = RerunConfig { sink: Sink::Save, path: out.clone().into(), ..Default::default() };
    let mut tap = RerunTap::new(&cfg)?.expect("save sink");
    tap.start(&ctx)?;
    let pool = FramePool::new(2);

    // 1. observe() cost, paced so the logger keeps up (what a 10 fps camera looks like).
    let mut observe = Vec::with_capacity(n as usize);
    let t_all = Instant::now();
    for seq in 0..n {
        let frame = frame(&pool, seq, &img);
        let t = Instant::now();
        tap.observe(&frame);
        observe.push(t.elapsed());
        while tap.logged() + tap.dropped() < seq + 1 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let paced = t_all.elapsed();
    tap.stop()?;
    observe.sort();
    let pct = |p: f64| observe[((observe.len() - 1) as f64 * p) as usize];
    println!(
        "observe(): median {:?}, p99 {:?}, max {:?} (n = {n}, {w}x{h} RGB)",
        pct(0.5),
        pct(0.99),
        observe.last().unwrap()
    );
    println!(
        "logging thread: {n} frames JPEG-encoded and logged in {:.2} s = {:.1} frames/s ({:.1} ms/frame); {} dropped",
        paced.as_secs_f64(),
        n as f64 / paced.as_secs_f64(),
        paced.as_secs_f64() * 1000.0 / n as f64,
        tap.dropped()
    );
    println!("recording: {out} ({} kB)", std::fs::metadata(&out)?.len() / 1024);
    Ok(())
}

fn frame(pool: &FramePool, seq: u64, img: &ImageBuf) -> Frame {
    let now = Instant::now();
    let mut stamps = [StageStamp::default(); MAX_STAGES];
    stamps[0] = StageStamp { enter: Some(now), leave: Some(now) };
    let det = Detection { track_id: Some(1 + seq % 3), ..Detection::new(BBox { x1: 100.0, y1: 100.0, x2: 150.0, y2: 220.0 }, 0.9, 0) };
    testing::frame(pool, seq).captured_at(now).budget(Duration::from_millis(200)).stamps(stamps).image(img).detections(&[det]).build()
}

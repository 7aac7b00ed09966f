//! `--detections FILE`: every published frame's detections as one JSON line, for scripts and tests.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use perch_pipeline::{Frame, StartContext, Tap};
use serde::Serialize;

pub struct JsonlTap {
    out: BufWriter<std::fs::File>,
    class_names: Option<Arc<[String]>>,
    written: u64,
    errors: u64,
}

#[derive(Serialize)]
struct Line<'a> {
    seq: u64,
    source_index: u64,
    source_ts_s: f64,
    /// The detector ran on this frame (its boxes rest on its own detection).
    fresh: bool,
    /// Age of the newest detection behind this frame's boxes (`null` before the first one).
    detection_age: Option<Age>,
    detections: Vec<Det<'a>>,
}

#[derive(Serialize)]
struct Age {
    frames: u32,
    ms: f32,
}

#[derive(Serialize)]
struct Det<'a> {
    /// x1, y1, x2, y2 in source pixels.
    bbox: [f32; 4],
    class_id: u32,
    class: Option<&'a str>,
    score: f32,
    track_id: Option<u64>,
    /// The box is the tracker's prediction, not a detection made on this frame.
    predicted: bool,
    /// Frames and source milliseconds since the detection behind the box (0 when not predicted).
    age_frames: u32,
    age_ms: f32,
}

impl JsonlTap {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(path).with_context(|| format!("creating detections file {}", path.display()))?;
        Ok(Self { out: BufWriter::new(file), class_names: None, written: 0, errors: 0 })
    }
}

impl Tap for JsonlTap {
    fn name(&self) -> &'static str {
        "detections_jsonl"
    }

    fn start(&mut self, ctx: &StartContext) -> anyhow::Result<()> {
        self.class_names = ctx.class_names.clone();
        Ok(())
    }

    fn observe(&mut self, frame: &Frame) {
        let names = self.class_names.as_deref();
        let detections = frame
            .detections
            .iter()
            .map(|d| Det {
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                class_id: d.class_id,
                class: names.and_then(|n| n.get(d.class_id as usize)).map(|s| s.as_str()),
                score: d.score,
                track_id: d.track_id,
                predicted: d.predicted,
                age_frames: d.age.frames,
                age_ms: d.age.ms,
            })
            .collect();
        let age = if frame.detections_fresh { Some(perch_pipeline::DetectionAge::FRESH) } else { frame.detection_age };
        let line = Line {
            seq: frame.seq,
            source_index: frame.source_index,
            source_ts_s: frame.source_ts.as_secs_f64(),
            fresh: frame.detections_fresh,
            detection_age: age.map(|a| Age { frames: a.frames, ms: a.ms }),
            detections,
        };
        let ok = serde_json::to_writer(&mut self.out, &line).is_ok() && self.out.write_all(b"\n").is_ok();
        if ok {
            self.written += 1;
        } else {
            self.errors += 1;
        }
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        self.out.flush().context("flushing the detections file")
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![("written".into(), self.written), ("errors".into(), self.errors)]
    }
}

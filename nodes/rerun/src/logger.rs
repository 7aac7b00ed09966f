//! The logging thread's side: turns copied frames into Rerun entities.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use perch_pipeline::{DropReason, Ledger, StartContext};
use rerun::external::arrow::array::{Float32Array, Int64Array};
use rerun::{EntityPath, RecordingStream};

use crate::config::{ImageMode, RerunConfig};
use crate::convert::{raw_image, Encoder};
use crate::tap::{LogFrame, TapStats};
use crate::trails::{track_color, Trails};

/// Entity paths (documented in the README; `check_rrd.py` relies on them).
pub mod paths {
    pub const IMAGE: &str = "camera/image";
    pub const DETECTIONS: &str = "camera/image/detections";
    pub const TRACKS: &str = "camera/image/tracks";
    pub const LATENCY: &str = "metrics/latency";
    pub const END_TO_END: &str = "metrics/latency/end_to_end";
    pub const DROPS: &str = "metrics/drops";
    /// Frames this tap itself did not log (its queue was full): `metrics/drops/rerun_log`.
    pub const OWN_DROPS: &str = "metrics/drops/rerun_log";
    /// Frames published after their deadline plus frames dropped for it (the report's `deadline_misses`).
    pub const DEADLINE_MISSES: &str = "metrics/deadline_misses";
}

/// Timeline names.
pub mod timelines {
    /// `Frame::seq`: one step per captured frame.
    pub const FRAME: &str = "frame";
    /// `Frame::source_ts`: the dataset's or camera's own clock, from the start of the stream.
    pub const SOURCE_TIME: &str = "source_time";
    /// Wall-clock time at which capture produced the frame.
    pub const CAPTURE_TIME: &str = "capture_time";
}

pub(crate) struct Logger {
    rec: RecordingStream,
    image: ImageMode,
    jpeg_quality: u8,
    class_names: Option<Arc<[String]>>,
    /// `metrics/latency/<stage>`, index-aligned with `Frame::stamps`.
    stage_paths: Vec<EntityPath>,
    drop_paths: Vec<(DropReason, EntityPath)>,
    ledger: Arc<Ledger>,
    /// Maps `Instant`s to wall-clock time.
    anchor: (Instant, SystemTime),
    encoder: Encoder,
    trails: Trails,
    trail_len: usize,
    /// Set once any detection carried a track id: from then on trails are logged (and cleared).
    tracking: bool,
    stats: Arc<TapStats>,
}

impl Logger {
    pub fn new(rec: RecordingStream, cfg: &RerunConfig, ctx: &StartContext, stats: Arc<TapStats>) -> Self {
        let stage_paths = ctx
            .live
            .stage_names()
            .iter()
            .map(|n| EntityPath::from(format!("{}/{n}", paths::LATENCY)))
            .collect();
        let drop_paths =
            DropReason::ALL.iter().map(|&r| (r, EntityPath::from(format!("{}/{}", paths::DROPS, r.as_str())))).collect();
        Self {
            rec,
            image: cfg.image,
            jpeg_quality: cfg.jpeg_quality,
            class_names: ctx.class_names.clone(),
            stage_paths,
            drop_paths,
            ledger: ctx.live.ledger().clone(),
            anchor: (Instant::now(), SystemTime::now()),
            encoder: Encoder::default(),
            trails: Trails::new(cfg.trail_len),
            trail_len: cfg.trail_len,
            tracking: false,
            stats,
        }
    }

    /// Static data, logged once before the first frame: class names for the boxes.
    pub fn log_static(&self) -> anyhow::Result<()> {
        if let Some(names) = &self.class_names {
            let classes: Vec<(u16, &str)> =
                names.iter().enumerate().take(u16::MAX as usize).map(|(i, n)| (i as u16, n.as_str())).collect();
            self.rec.log_static("/", &rerun::AnnotationContext::new(classes))?;
        }
        // Series styling: names in the legend instead of bare entity paths.
        self.rec.log_static(paths::END_TO_END, &rerun::SeriesLines::new().with_names(["end to end"]))?;
        Ok(())
    }

    pub fn log(&mut self, f: &LogFrame) -> anyhow::Result<()> {
        let rec = &self.rec;
        // Always set by `LogFrame::fill`; Option only so pooled buffers can be Default.
        let captured_at = f.captured_at.unwrap_or_else(Instant::now);
        rec.set_time_sequence(timelines::FRAME, f.seq as i64);
        rec.set_duration_secs(timelines::SOURCE_TIME, f.source_ts.as_secs_f64());
        rec.set_timestamp_nanos_since_epoch(timelines::CAPTURE_TIME, self.wall_nanos(captured_at));

        match self.image {
            ImageMode::Jpeg => {
                let jpg = self.encoder.jpeg(&f.image, self.jpeg_quality)?;
                rec.log(paths::IMAGE, &rerun::EncodedImage::new(jpg).with_media_type(rerun::MediaType::jpeg()))?;
            }
            ImageMode::Raw => rec.log(paths::IMAGE, &raw_image(&f.image)?)?,
            ImageMode::None => {}
        }

        self.log_detections(f)?;
        self.log_metrics(f)?;
        Ok(())
    }

    fn log_detections(&mut self, f: &LogFrame) -> anyhow::Result<()> {
        let dets = &f.detections;
        self.tracking |= dets.iter().any(|d| d.track_id.is_some());
        let mins: Vec<[f32; 2]> = dets.iter().map(|d| [d.bbox.x1, d.bbox.y1]).collect();
        let sizes: Vec<[f32; 2]> = dets.iter().map(|d| [d.bbox.width(), d.bbox.height()]).collect();
        let class_ids: Vec<u16> = dets.iter().map(|d| d.class_id.min(u16::MAX as u32) as u16).collect();
        let labels: Vec<String> = dets.iter().map(|d| self.label(d)).collect();
        // Logged even when empty so the previous frame's boxes do not linger in the viewer.
        // Boxes detected on this frame are drawn solid; boxes the tracker predicted from an earlier
        // frame's detection thin and dimmed, labelled with their age.
        let radii = dets.iter().map(|d| rerun::Radius::new_ui_points(if d.predicted { 0.75 } else { 2.0 }));
        let mut boxes = rerun::Boxes2D::from_mins_and_sizes(mins, sizes)
            .with_class_ids(class_ids)
            .with_labels(labels)
            .with_radii(radii)
            .with_show_labels(true);
        if self.tracking {
            // Coloured by track; untracked boxes grey.
            boxes = boxes.with_colors(dets.iter().map(|d| match d.track_id {
                Some(id) => {
                    let [r, g, b] = track_color(id);
                    let a = if d.predicted { 110 } else { 255 };
                    rerun::Color::from_unmultiplied_rgba(r, g, b, a)
                }
                None => rerun::Color::from_rgb(150, 150, 150),
            }));
        }
        let scores = Float32Array::from_iter_values(dets.iter().map(|d| d.score));
        // -1 for "no track": a plain signed column reads back easily in pandas/pyarrow.
        let tracks = Int64Array::from_iter_values(dets.iter().map(|d| d.track_id.map_or(-1, |t| t as i64)));
        let ages = Int64Array::from_iter_values(dets.iter().map(|d| d.age.frames as i64));
        let age_ms = Float32Array::from_iter_values(dets.iter().map(|d| d.age.ms));
        let extra = rerun::AnyValues::default()
            .with_component_from_data("score", Arc::new(scores))
            .with_component_from_data("track_id", Arc::new(tracks))
            .with_component_from_data("age_frames", Arc::new(ages))
            .with_component_from_data("age_ms", Arc::new(age_ms));
        self.rec.log(paths::DETECTIONS, &[&boxes as &dyn rerun::AsComponents, &extra])?;

        if self.tracking && self.trail_len > 0 {
            self.trails.update(
                f.seq,
                dets.iter().filter_map(|d| d.track_id.map(|id| (id, [d.bbox.center().0, d.bbox.y2]))),
            );
            let strips = self.trails.strips();
            let colors: Vec<rerun::Color> = strips
                .iter()
                .map(|(id, _)| {
                    let [r, g, b] = track_color(*id);
                    rerun::Color::from_rgb(r, g, b)
                })
                .collect();
            let lines = rerun::LineStrips2D::new(strips.into_iter().map(|(_, pts)| pts))
                .with_colors(colors)
                .with_radii([rerun::Radius::new_ui_points(1.5)]);
            self.rec.log(paths::TRACKS, &lines)?;
        }
        Ok(())
    }

    fn label(&self, d: &perch_pipeline::Detection) -> String {
        let name = self.class_names.as_deref().and_then(|n| n.get(d.class_id as usize));
        let mut s = match name {
            Some(n) => format!("{n} {:.2}", d.score),
            None => format!("class{} {:.2}", d.class_id, d.score),
        };
        if let Some(id) = d.track_id {
            s.push_str(&format!(" #{id}"));
        }
        if d.predicted {
            s.push_str(&format!(" (predicted, {} f)", d.age.frames));
        }
        s
    }

    fn log_metrics(&self, f: &LogFrame) -> anyhow::Result<()> {
        for (stamp, path) in f.stamps.iter().zip(&self.stage_paths) {
            if let (Some(enter), Some(leave)) = (stamp.enter, stamp.leave) {
                self.rec.log(path.clone(), &rerun::Scalars::single(ms(leave.saturating_duration_since(enter))))?;
            }
        }
        let e2e = match (f.published_at, f.captured_at) {
            (Some(p), Some(c)) => p.saturating_duration_since(c),
            _ => Duration::ZERO,
        };
        self.rec.log(paths::END_TO_END, &rerun::Scalars::single(ms(e2e)))?;
        // Cumulative counts: the ledger is a handful of atomic loads.
        let ledger = self.ledger.snapshot();
        for (reason, path) in &self.drop_paths {
            self.rec.log(path.clone(), &rerun::Scalars::single(ledger.dropped(*reason) as f64))?;
        }
        let own = self.stats.dropped.load(Ordering::Relaxed);
        self.rec.log(paths::OWN_DROPS, &rerun::Scalars::single(own as f64))?;
        let misses = self.stats.late.load(Ordering::Relaxed) + ledger.dropped(DropReason::Deadline);
        self.rec.log(paths::DEADLINE_MISSES, &rerun::Scalars::single(misses as f64))?;
        Ok(())
    }

    fn wall_nanos(&self, t: Instant) -> i64 {
        let (i0, s0) = self.anchor;
        let wall = if t >= i0 { s0 + (t - i0) } else { s0 - (i0 - t) };
        wall.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_nanos() as i64
    }

    /// Write out everything still buffered; the `.rrd` is complete when this returns.
    pub fn finish(self, timeout: Option<Duration>) {
        let flushed = match timeout {
            Some(t) => self.rec.flush_with_timeout(t),
            None => self.rec.flush_blocking(),
        };
        if let Err(e) = flushed {
            tracing::warn!("rerun: flushing the recording failed: {e}");
        }
        drop(self.rec);
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

//! `VideoTap` (`perch run --save-video PATH`): every published frame, annotated, into a video or an
//! image sequence. The pipeline thread only copies the frame into one of a few recycled buffers and
//! hands it to the tap's own thread through a bounded queue; drawing and encoding happen there.
//! When the queue is full: a live source (camera, realtime replay) does not wait, the frame is not
//! written and counted (`dropped`); an offline run (`pacing = "max"`, which waits on every edge
//! anyway) waits for the writer, so its video has every published frame.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use perch_pipeline::{Detection, Frame, ImageBuf, PixelFormat, StartContext, Tap};

use crate::draw::{Annotator, Canvas};
use crate::video::{VideoTarget, VideoWriter};

/// Frames waiting for the writer thread; more are dropped and counted.
pub const QUEUE_DEPTH: usize = 4;
/// A gap in the source's time longer than this is not filled with repeated frames.
const MAX_FILL_S: f64 = 5.0;

#[derive(Default)]
struct VideoFrame {
    seq: u64,
    source_ts: Duration,
    image: ImageBuf,
    detections: Vec<Detection>,
}

#[derive(Debug, Default)]
struct Stats {
    observed: AtomicU64,
    written: AtomicU64,
    /// Not written: the queue was full or no free buffer (the writer fell behind).
    dropped: AtomicU64,
    /// Repeats of the previous frame written to keep the video's timing across dropped frames.
    filled: AtomicU64,
    /// Frames whose size differs from the first frame's (a video has one size): not written.
    size_changed: AtomicU64,
    errors: AtomicU64,
}

/// The tap; build it with [`VideoTap::new`] (checks the target before the run starts).
pub struct VideoTap {
    target: VideoTarget,
    tx: Option<Sender<Box<VideoFrame>>>,
    free_tx: Sender<Box<VideoFrame>>,
    free_rx: Receiver<Box<VideoFrame>>,
    stats: Arc<Stats>,
    thread: Option<JoinHandle<()>>,
    /// The writer thread's first error, reported by `stop`.
    failure: Arc<Mutex<Option<String>>>,
    /// Wait for the writer instead of dropping (offline runs).
    wait: bool,
}

impl VideoTap {
    /// `wait`: when the writer falls behind, make the pipeline wait (offline runs) instead of
    /// dropping frames from the video (live sources).
    pub fn new(target: VideoTarget, wait: bool) -> anyhow::Result<Self> {
        target.check()?;
        // QUEUE_DEPTH queued, one being written, one being filled on the pipeline thread.
        let pool = QUEUE_DEPTH + 2;
        let (free_tx, free_rx) = crossbeam_channel::bounded(pool);
        for _ in 0..pool {
            let _ = free_tx.try_send(Box::default());
        }
        Ok(Self { target, tx: None, free_tx, free_rx, stats: Arc::default(), thread: None, failure: Arc::default(), wait })
    }
}

impl Tap for VideoTap {
    fn name(&self) -> &'static str {
        "video"
    }

    fn start(&mut self, ctx: &StartContext) -> anyhow::Result<()> {
        let (tx, rx) = crossbeam_channel::bounded::<Box<VideoFrame>>(QUEUE_DEPTH);
        let worker = Worker {
            target: self.target.clone(),
            fps: ctx.source.fps.filter(|f| f.is_finite() && *f > 0.0).unwrap_or(10.0),
            class_names: ctx.class_names.as_deref().map(<[String]>::to_vec).unwrap_or_default(),
            stats: self.stats.clone(),
            failure: self.failure.clone(),
            free_tx: self.free_tx.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("perch-video".into())
            .spawn(move || worker.run(rx))
            .context("spawning the video writer thread")?;
        self.tx = Some(tx);
        self.thread = Some(thread);
        Ok(())
    }

    fn observe(&mut self, frame: &Frame) {
        let Some(tx) = &self.tx else { return };
        self.stats.observed.fetch_add(1, Ordering::Relaxed);
        let buf = if self.wait { self.free_rx.recv().ok() } else { self.free_rx.try_recv().ok() };
        let Some(mut buf) = buf else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        buf.seq = frame.seq;
        buf.source_ts = frame.source_ts;
        let src = &frame.image;
        buf.image.format = src.format;
        buf.image.width = src.width;
        buf.image.height = src.height;
        buf.image.data.clear();
        buf.image.data.extend_from_slice(&src.data);
        buf.detections.clear();
        buf.detections.extend_from_slice(&frame.detections);
        let sent = if self.wait { tx.send(buf).map_err(|e| TrySendError::Disconnected(e.0)) } else { tx.try_send(buf) };
        if let Err(TrySendError::Full(b) | TrySendError::Disconnected(b)) = sent {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            let _ = self.free_tx.try_send(b);
        }
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| anyhow::anyhow!("the video writer thread panicked"))?;
        }
        if let Some(e) = self.failure.lock().ok().and_then(|f| f.clone()) {
            anyhow::bail!("--save-video {}: {e}", self.target.path().display());
        }
        Ok(())
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let s = &self.stats;
        [
            ("observed", &s.observed),
            ("written", &s.written),
            ("dropped", &s.dropped),
            ("filled", &s.filled),
            ("size_changed", &s.size_changed),
            ("errors", &s.errors),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.load(Ordering::SeqCst)))
        .collect()
    }
}

struct Worker {
    target: VideoTarget,
    fps: f64,
    class_names: Vec<String>,
    stats: Arc<Stats>,
    failure: Arc<Mutex<Option<String>>>,
    free_tx: Sender<Box<VideoFrame>>,
}

impl Worker {
    fn run(self, rx: Receiver<Box<VideoFrame>>) {
        let annotator = Annotator::new();
        let mut state = WriterState::default();
        let mut failed = false;
        for frame in rx.iter() {
            if !failed {
                if let Err(e) = self.write_one(&frame, &annotator, &mut state) {
                    self.fail(format!("{e:#}"));
                    failed = true;
                }
            } else {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
            }
            let _ = self.free_tx.try_send(frame);
        }
        if let Some(w) = state.writer {
            if let Err(e) = w.finish() {
                self.fail(format!("{e:#}"));
            }
        }
    }

    fn fail(&self, message: String) {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!("video: {message}");
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(message);
        }
    }

    fn write_one(&self, frame: &VideoFrame, annotator: &Annotator, st: &mut WriterState) -> anyhow::Result<()> {
        let img = &frame.image;
        to_rgb8(img, &mut st.rgb)?;
        let w = match &mut st.writer {
            Some(w) => w,
            None => st.writer.insert(VideoWriter::open(&self.target, img.width, img.height, self.fps)?),
        };
        if (img.width, img.height) != (w.width, w.height) {
            if self.stats.size_changed.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!(
                    "video: frame {} is {}x{}, the video is {}x{}: frames of another size are not written",
                    frame.seq, img.width, img.height, w.width, w.height
                );
            }
            return Ok(());
        }
        let first = *st.first_ts.get_or_insert(frame.source_ts);
        let slot = (frame.source_ts.saturating_sub(first).as_secs_f64() * self.fps).round() as u64;
        // Frames dropped upstream leave a gap in source time: repeat the previous frame so the video
        // plays at the source's speed (only for a video file, and not across long gaps or a loop).
        if matches!(self.target, VideoTarget::Ffmpeg(_)) && w.frames() > 0 && slot > st.next_slot {
            let gap = slot - st.next_slot;
            if (gap as f64) <= MAX_FILL_S * self.fps {
                for _ in 0..gap {
                    w.write(&st.last, frame.seq)?;
                    self.stats.filled.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        annotator.draw(&mut Canvas { data: &mut st.rgb, width: img.width, height: img.height }, &frame.detections, &self.class_names);
        w.write(&st.rgb, frame.seq)?;
        self.stats.written.fetch_add(1, Ordering::Relaxed);
        st.next_slot = slot.max(st.next_slot) + 1;
        std::mem::swap(&mut st.rgb, &mut st.last);
        Ok(())
    }
}

/// The writer thread's state between frames.
#[derive(Default)]
struct WriterState {
    writer: Option<VideoWriter>,
    /// The frame being drawn, and the last one written (repeated to fill gaps).
    rgb: Vec<u8>,
    last: Vec<u8>,
    /// The video's clock: slot k shows source time `first_ts + k / fps`.
    first_ts: Option<Duration>,
    next_slot: u64,
}

/// Any frame format as tightly packed RGB8 (`out` keeps its allocation).
pub fn to_rgb8(img: &ImageBuf, out: &mut Vec<u8>) -> anyhow::Result<()> {
    perch_preprocess::pixel::validate(img)?;
    out.clear();
    if img.format == PixelFormat::Rgb8 {
        out.extend_from_slice(&img.data);
        return Ok(());
    }
    out.reserve(img.width as usize * img.height as usize * 3);
    for y in 0..img.height {
        for x in 0..img.width {
            out.extend_from_slice(&perch_preprocess::pixel::rgb_at(img, x, y));
        }
    }
    Ok(())
}

//! `RerunTap`: copies each published frame into a pooled buffer and hands it to its own logging
//! thread through a keep-latest queue. The pipeline thread never waits on Rerun.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use perch_pipeline::{Detection, Frame, ImageBuf, StageStamp, StartContext, Tap, MAX_STAGES};
use rerun::RecordingStream;

use crate::config::{ImageMode, RerunConfig, Sink};
use crate::logger::Logger;

/// What the logging thread needs of one frame; recycled through the tap's own pool.
#[derive(Debug, Default)]
pub(crate) struct LogFrame {
    pub seq: u64,
    pub source_ts: Duration,
    pub captured_at: Option<Instant>,
    pub published_at: Option<Instant>,
    pub stamps: [StageStamp; MAX_STAGES],
    pub image: ImageBuf,
    pub detections: Vec<Detection>,
}

impl LogFrame {
    fn fill(&mut self, frame: &Frame, with_image: bool, now: Instant) {
        self.seq = frame.seq;
        self.source_ts = frame.source_ts;
        self.captured_at = Some(frame.captured_at);
        self.published_at = Some(now);
        self.stamps = frame.stamps;
        self.detections.clear();
        self.detections.extend_from_slice(&frame.detections);
        if with_image {
            let src = &frame.image;
            self.image.format = src.format;
            self.image.width = src.width;
            self.image.height = src.height;
            self.image.data.clear();
            self.image.data.extend_from_slice(&src.data);
        }
    }
}

/// Counters shared between the tap and its logging thread.
#[derive(Debug, Default)]
pub(crate) struct TapStats {
    pub observed: AtomicU64,
    pub logged: AtomicU64,
    /// Frames not logged: replaced in the queue by a newer one, or no free buffer.
    pub dropped: AtomicU64,
    pub errors: AtomicU64,
    /// Published frames that were already past their deadline (counted for every published frame).
    pub late: AtomicU64,
}

/// Logs published frames to Rerun. Build with [`RerunTap::new`]; register as a pipeline tap.
pub struct RerunTap {
    config: RerunConfig,
    /// Until `start` moves it into the logging thread.
    rec: Option<RecordingStream>,
    tx: Option<Sender<Box<LogFrame>>>,
    /// A receiver on the same queue: lets `observe` evict the stale frame itself (keep-latest).
    evict: Option<Receiver<Box<LogFrame>>>,
    free_tx: Sender<Box<LogFrame>>,
    free_rx: Receiver<Box<LogFrame>>,
    stats: Arc<TapStats>,
    thread: Option<JoinHandle<()>>,
}

/// How long `stop` waits for a viewer to take the last data (`connect`/`spawn`); files flush fully.
const NETWORK_FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

impl RerunTap {
    /// `Ok(None)` when `sink = "off"`. Opens the sink now, so a bad path or address fails before the run.
    pub fn new(config: &RerunConfig) -> anyhow::Result<Option<RerunTap>> {
        config.validate()?;
        if config.sink == Sink::Off {
            return Ok(None);
        }
        let rec = open_recording(config)?;
        // One buffer in the logging thread, `queue_depth` queued, one spare for the evict-and-refill race.
        let pool_size = config.queue_depth + 2;
        let (free_tx, free_rx) = crossbeam_channel::bounded(pool_size);
        for _ in 0..pool_size {
            let _ = free_tx.try_send(Box::default());
        }
        Ok(Some(RerunTap {
            config: config.clone(),
            rec: Some(rec),
            tx: None,
            evict: None,
            free_tx,
            free_rx,
            stats: Arc::default(),
            thread: None,
        }))
    }

    /// Frames the logging thread has logged. After `stop`: `observed == logged + dropped + errors`.
    pub fn logged(&self) -> u64 {
        self.stats.logged.load(Ordering::SeqCst)
    }

    /// Frames seen by `observe` but not logged (queue full: a newer frame replaced them).
    pub fn dropped(&self) -> u64 {
        self.stats.dropped.load(Ordering::SeqCst)
    }

    /// Published frames seen by `observe`.
    pub fn observed(&self) -> u64 {
        self.stats.observed.load(Ordering::SeqCst)
    }

    fn recycle(&self, buf: Box<LogFrame>) {
        let _ = self.free_tx.try_send(buf);
    }
}

fn open_recording(config: &RerunConfig) -> anyhow::Result<RecordingStream> {
    // `enabled(true)`: the config decides, not the RERUN environment variable.
    let builder = rerun::RecordingStreamBuilder::new("perch")
        .enabled(true)
        .with_blueprint(crate::blueprint::default_blueprint());
    match config.sink {
        Sink::Off => unreachable!("checked by the caller"),
        Sink::Save => builder.save(&config.path).with_context(|| {
            format!("rerun.path = {:?}: cannot create the recording file", config.path.display().to_string())
        }),
        Sink::Connect => builder
            .connect_grpc_opts(config.addr.clone())
            .with_context(|| format!("rerun.addr = {:?}: not a Rerun gRPC proxy URL", config.addr)),
        Sink::Spawn => builder.spawn().context(
            "rerun.sink = \"spawn\": could not start the `rerun` viewer; is it on PATH? \
             (`pip install rerun-sdk==0.36.3`, or use sink = \"save\" and open the file later)",
        ),
    }
}

impl Tap for RerunTap {
    fn name(&self) -> &'static str {
        "rerun"
    }

    fn start(&mut self, ctx: &StartContext) -> anyhow::Result<()> {
        let rec = self.rec.take().context("rerun tap started twice")?;
        if let Some(name) = non_empty(&ctx.source.name) {
            rec.send_recording_name(format!("perch: {name}"))?;
        }
        let logger = Logger::new(rec, &self.config, ctx, self.stats.clone());
        logger.log_static()?;
        let (tx, rx) = crossbeam_channel::bounded::<Box<LogFrame>>(self.config.queue_depth);
        let free_tx = self.free_tx.clone();
        let stats = self.stats.clone();
        let flush_timeout = match self.config.sink {
            Sink::Save => None,
            _ => Some(NETWORK_FLUSH_TIMEOUT),
        };
        let evict = rx.clone();
        let thread = std::thread::Builder::new()
            .name("perch-rerun-log".into())
            .spawn(move || logging_thread(logger, rx, free_tx, stats, flush_timeout))
            .context("spawning the rerun logging thread")?;
        self.evict = Some(evict);
        self.tx = Some(tx);
        self.thread = Some(thread);
        Ok(())
    }

    fn observe(&mut self, frame: &Frame) {
        let now = Instant::now();
        let Some(tx) = &self.tx else { return };
        self.stats.observed.fetch_add(1, Ordering::Relaxed);
        if frame.is_late(now) {
            self.stats.late.fetch_add(1, Ordering::Relaxed);
        }
        let Ok(mut buf) = self.free_rx.try_recv() else {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        buf.fill(frame, self.config.image != ImageMode::None, now);
        loop {
            match tx.try_send(buf) {
                Ok(()) => return,
                Err(TrySendError::Full(b)) => {
                    // Keep the newest: take the oldest queued frame back (the logger may beat us to it,
                    // then there is simply room on the next try).
                    if let Some(old) = self.evict.as_ref().and_then(|e| e.try_recv().ok()) {
                        self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                        self.recycle(old);
                    }
                    buf = b;
                }
                Err(TrySendError::Disconnected(b)) => {
                    // The logging thread ended (it logs why); stop feeding it.
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    self.recycle(b);
                    self.tx = None;
                    return;
                }
            }
        }
    }

    fn stop(&mut self) -> anyhow::Result<()> {
        // Closing the queue ends the logging thread after the frames still queued; it then flushes.
        self.tx = None;
        self.evict = None;
        if let Some(t) = self.thread.take() {
            t.join().map_err(|_| anyhow::anyhow!("the rerun logging thread panicked"))?;
        }
        if let Some(rec) = self.rec.take() {
            // Never started: still leave a valid (empty) recording behind.
            rec.flush_blocking().context("flushing the rerun recording")?;
        }
        Ok(())
    }

    fn counters(&self) -> Vec<(String, u64)> {
        vec![
            ("observed".into(), self.stats.observed.load(Ordering::SeqCst)),
            ("logged".into(), self.stats.logged.load(Ordering::SeqCst)),
            ("dropped".into(), self.stats.dropped.load(Ordering::SeqCst)),
            ("errors".into(), self.stats.errors.load(Ordering::SeqCst)),
        ]
    }
}

impl Drop for RerunTap {
    fn drop(&mut self) {
        if self.thread.is_some() || self.rec.is_some() {
            let _ = self.stop();
        }
    }
}

fn logging_thread(
    mut logger: Logger,
    rx: Receiver<Box<LogFrame>>,
    free_tx: Sender<Box<LogFrame>>,
    stats: Arc<TapStats>,
    flush_timeout: Option<Duration>,
) {
    for buf in rx.iter() {
        match logger.log(&buf) {
            Ok(()) => {
                stats.logged.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                if stats.errors.fetch_add(1, Ordering::SeqCst) == 0 {
                    tracing::warn!("rerun: logging frame {} failed (further errors only counted): {e:#}", buf.seq);
                }
            }
        }
        let _ = free_tx.try_send(buf);
    }
    logger.finish(flush_timeout);
}

fn non_empty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

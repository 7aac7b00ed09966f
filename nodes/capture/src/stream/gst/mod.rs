//! Runs a [`PipelinePlan`] in GStreamer and hands its decoded frames to the pipeline.
//!
//! Decoding happens on GStreamer's own streaming threads; the capture stage's measured work is the
//! copy of the decoded planes into the pooled frame (tightly packed, in the format GStreamer gave).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_video as gst_video;
use perch_pipeline::{Clock, FrameData, Source, SourceEvent, SourceInfo, SystemClock};

use super::{PipelinePlan, DEFAULT_STREAM_TIMEOUT_MS};
use crate::{Pacing, Reconnect, SourceConfig};

mod planes;
mod session;

use planes::{copy_frame, video_info};
use session::{pts_of, read_bus, wait_first, BusNews, Session, POLL};

/// Whether the pipeline is up, coming back, or gone (live streams reconnect like the camera source).
enum Link {
    Up(Session),
    /// A new session is starting; it counts as up at its first frame.
    Connecting { session: Session, since: Instant },
    Waiting { until: Instant },
    Ended,
}

#[derive(Default)]
struct Counters {
    decode_errors: u64,
    stream_errors: u64,
    disconnects: u64,
    reconnects: u64,
    failed_attempts: u64,
    downtime: Duration,
    frames_lost: u64,
    skipped_before_start: u64,
    loops: u64,
}

pub struct GstSource {
    plan: PipelinePlan,
    link: Link,
    live: bool,
    pacing: Pacing,
    clock: Arc<dyn Clock>,
    /// A pulled frame not yet handed on (the first one, pulled at open; a paced one, pulled while waiting).
    pending: Option<gst::Sample>,
    /// Frames of this pass through the file (or since the stream started), the next one's number.
    index: u64,
    /// Frames delivered in all passes, the next one's `source_index`.
    seq: u64,
    start: u64,
    end: Option<u64>,
    looping: bool,
    /// Stream time before this pass (loops keep `source_ts` increasing).
    pass_offset: Duration,
    /// A file's first presentation time in this pass (B-frame files start later than 0), so a
    /// file's `source_ts` is the time from its first frame, as a replay's is.
    first_pts: Option<Duration>,
    last_pts: Duration,
    /// What the container says the file lasts: an end well before it is a truncated file.
    duration: Option<Duration>,
    /// Realtime pacing: when the first frame went out, and its stream time.
    pace_origin: Option<(Instant, Duration)>,
    width: u32,
    height: u32,
    fps: Option<f64>,
    max_pixels: u64,
    timeout: Duration,
    reconnect_every: Duration,
    reconnect: Reconnect,
    attempts: u32,
    outage_since: Option<Instant>,
    last_frame: Instant,
    video_info: Option<(gst::Caps, gst_video::VideoInfo)>,
    pending_decode_errors: u64,
    last_decode_error: String,
    /// The running session's decoders' dropped-frame count, as last read from the bus.
    decoder_dropped: u64,
    /// What the bus said that is acted on once the queued frames are out.
    bus_error: Option<String>,
    bus_eos: bool,
    counters: Counters,
}

pub fn open(cfg: &SourceConfig, plan: PipelinePlan) -> anyhow::Result<Box<dyn Source>> {
    gst::init().context("GStreamer would not initialise")?;
    let timeout = Duration::from_millis(cfg.timeout_ms.unwrap_or(DEFAULT_STREAM_TIMEOUT_MS));
    let session = Session::start(&plan)?;
    let first = wait_first(&session, timeout, &plan)?;
    let info = video_info(&first).map_err(|e| anyhow!("{}: {e}", plan.name))?;
    // The stream's own rate; `source.fps` (user pipelines) stands in when the caps state none.
    let fps = (info.fps().numer() > 0 && info.fps().denom() > 0).then(|| info.fps().numer() as f64 / info.fps().denom() as f64).or(cfg.fps);
    let (start, end) = crate::keys::frame_range(cfg, fps)?;
    let live = session.live;
    tracing::info!(
        "video source {}: {}x{} {} at {}",
        plan.name,
        info.width(),
        info.height(),
        info.format().to_str(),
        fps.map_or("an unstated rate".to_string(), |f| format!("{f:.3} fps"))
    );
    let caps = first.caps().map(|c| c.to_owned());
    let first_pts = pts_of(&first);
    let duration = if live { None } else { session.pipeline.query_duration::<gst::ClockTime>().map(|d| Duration::from_nanos(d.nseconds())) };
    Ok(Box::new(GstSource {
        link: Link::Up(session),
        live,
        pacing: if live { Pacing::Max } else { cfg.pacing },
        clock: Arc::new(SystemClock),
        pending: Some(first),
        index: 0,
        seq: 0,
        start,
        end,
        looping: cfg.looping,
        pass_offset: Duration::ZERO,
        first_pts: if live { None } else { first_pts },
        last_pts: Duration::ZERO,
        duration,
        pace_origin: None,
        width: info.width(),
        height: info.height(),
        fps,
        max_pixels: cfg.max_pixels,
        timeout,
        reconnect_every: Duration::from_millis(cfg.reconnect_ms.unwrap_or(1000)),
        reconnect: cfg.reconnect.unwrap_or_default(),
        attempts: 0,
        outage_since: None,
        last_frame: Instant::now(),
        video_info: caps.map(|c| (c, info)),
        pending_decode_errors: 0,
        last_decode_error: String::new(),
        decoder_dropped: 0,
        bus_error: None,
        bus_eos: false,
        counters: Counters::default(),
        plan,
    }))
}

impl GstSource {
    fn session(&self) -> Option<&Session> {
        match &self.link {
            Link::Up(s) | Link::Connecting { session: s, .. } => Some(s),
            _ => None,
        }
    }

    /// The next decoded frame of the running session, or what happened instead.
    fn pull(&mut self) -> Pulled {
        let Link::Up(session) = &self.link else { return Pulled::Nothing };
        // (Reference-counted handles: no allocation.)
        let (bus, sink) = (session.bus.clone(), session.sink.clone());
        // The bus on every pull, so a decoder's drops count where they happen; an error or the end
        // acts only once the frames decoded before it have been delivered.
        let news = read_bus(&bus, &mut self.decoder_dropped);
        self.note(news);
        if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_nseconds(POLL.as_nanos() as u64)) {
            if self.first_pts.is_none() && !self.live {
                self.first_pts = pts_of(&sample);
            }
            return Pulled::Sample(sample);
        }
        let news = read_bus(&bus, &mut self.decoder_dropped);
        self.note(news);
        if let Some(e) = self.bus_error.take() {
            return Pulled::Failed(e);
        }
        if std::mem::take(&mut self.bus_eos) || sink.is_eos() {
            return Pulled::Ended;
        }
        if self.live && self.last_frame.elapsed() >= self.timeout {
            return Pulled::Failed(format!("no frame for {} ms (source.timeout_ms)", self.timeout.as_millis()));
        }
        Pulled::Nothing
    }

    fn note(&mut self, news: BusNews) {
        self.pending_decode_errors += news.decode_errors;
        if let Some(e) = news.last_decode_error {
            self.last_decode_error = e;
        }
        if self.bus_error.is_none() {
            self.bus_error = news.error;
        }
        self.bus_eos |= news.eos;
    }

    /// A new pipeline: the old one's bus news and drop count are gone with it.
    fn new_session(&mut self, session: Session) {
        self.link = Link::Up(session);
        (self.decoder_dropped, self.bus_error, self.bus_eos) = (0, None, false);
    }

    /// A file reached its end or failed; a live stream dropped.
    fn end_of_session(&mut self, error: Option<String>) -> SourceEvent {
        if self.live {
            let why = error.unwrap_or_else(|| "the stream ended (EOS)".into());
            tracing::warn!("video source {}: lost: {why}; reconnecting every {} ms", self.plan.name, self.reconnect_every.as_millis());
            self.counters.disconnects += 1;
            self.outage_since = Some(Instant::now());
            self.attempts = 0;
            self.link = Link::Waiting { until: Instant::now() + self.reconnect_every };
            return SourceEvent::Idle;
        }
        let error = error.or_else(|| self.truncation());
        if let Some(e) = error {
            // A truncated or corrupt file: the frames before the damage were delivered; say where it stopped.
            tracing::error!("video source {}: stopped after frame {}: {e}", self.plan.name, self.index);
            self.counters.stream_errors += 1;
            self.link = Link::Ended;
            return SourceEvent::End;
        }
        if self.looping {
            return self.restart_pass();
        }
        self.link = Link::Ended;
        SourceEvent::End
    }

    /// Play the file again from the top (a fresh pipeline: simpler and surer than a seek on every demuxer).
    fn restart_pass(&mut self) -> SourceEvent {
        self.link = Link::Ended;
        match Session::start(&self.plan) {
            Ok(s) => {
                self.pass_offset += self.last_pts + self.frame_period();
                self.first_pts = None;
                self.last_pts = Duration::ZERO;
                self.index = 0;
                self.counters.loops += 1;
                self.new_session(s);
                SourceEvent::Idle
            }
            Err(e) => {
                tracing::error!("video source {}: could not start the next loop: {e:#}", self.plan.name);
                self.counters.stream_errors += 1;
                SourceEvent::End
            }
        }
    }

    /// An end of file well before the container's stated duration: the file was cut (a truncated
    /// MP4 with its index first plays up to the cut and then simply ends).
    fn truncation(&self) -> Option<String> {
        let duration = self.duration?;
        // The container's duration counts from its own zero; our times count from the first frame.
        let reached = self.last_pts + self.frame_period();
        (self.first_pts.unwrap_or_default() + reached + self.frame_period() * 3 / 2 < duration).then(|| {
            format!("the file ends at {:.2} s of the {:.2} s its container states: truncated or damaged", reached.as_secs_f64(), duration.as_secs_f64())
        })
    }

    fn frame_period(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.fps.unwrap_or(30.0))
    }

    /// Live streams: start a new session when it is time, and see whether the one starting came up.
    fn reconnect_step(&mut self) -> SourceEvent {
        match &self.link {
            Link::Waiting { until } if Instant::now() < *until => {
                std::thread::sleep(POLL.min(until.saturating_duration_since(Instant::now())));
                SourceEvent::Idle
            }
            Link::Waiting { .. } => {
                self.attempts += 1;
                match Session::start(&self.plan) {
                    Ok(session) => self.link = Link::Connecting { session, since: Instant::now() },
                    Err(e) => self.attempt_failed(&format!("{e:#}")),
                }
                SourceEvent::Idle
            }
            Link::Connecting { session, since } => {
                let since = *since;
                if let Some(sample) = session.sink.try_pull_sample(gst::ClockTime::from_nseconds(POLL.as_nanos() as u64)) {
                    let Link::Connecting { session, .. } = std::mem::replace(&mut self.link, Link::Ended) else { unreachable!() };
                    self.new_session(session);
                    self.counters.reconnects += 1;
                    if let Some(t) = self.outage_since.take() {
                        let gap = t.elapsed();
                        self.counters.downtime += gap;
                        self.counters.frames_lost += (gap.as_secs_f64() * self.fps.unwrap_or(0.0)).floor() as u64;
                        tracing::info!("video source {}: back after {} ms", self.plan.name, gap.as_millis());
                    }
                    self.last_frame = Instant::now();
                    self.pending = Some(sample);
                    return SourceEvent::Idle;
                }
                // Drops while connecting are the old stream's tail: not counted.
                let news = read_bus(&session.bus, &mut 0);
                if let Some(e) = news.error {
                    self.attempt_failed(&e);
                } else if news.eos {
                    self.attempt_failed("the stream ended (EOS)");
                } else if since.elapsed() >= self.timeout {
                    self.attempt_failed(&format!("no frame within {} ms", self.timeout.as_millis()));
                }
                SourceEvent::Idle
            }
            Link::Up(_) | Link::Ended => SourceEvent::Idle,
        }
    }

    fn attempt_failed(&mut self, why: &str) {
        self.counters.failed_attempts += 1;
        tracing::debug!("video source {}: reconnect attempt {} failed: {why}", self.plan.name, self.attempts);
        if self.reconnect.allows(self.attempts + 1) {
            self.link = Link::Waiting { until: Instant::now() + self.reconnect_every };
        } else {
            tracing::error!("video source {}: gave up after {} reconnect attempts: {why}", self.plan.name, self.attempts);
            self.link = Link::Ended;
        }
    }

    /// The next frame to deliver: skips a file's frames before `start_frame`.
    fn next_sample(&mut self) -> Result<gst::Sample, SourceEvent> {
        loop {
            let sample = match self.pending.take() {
                Some(s) => s,
                None => match self.pull() {
                    Pulled::Sample(s) => s,
                    Pulled::Nothing => return Err(SourceEvent::Idle),
                    Pulled::Ended => return Err(self.end_of_session(None)),
                    Pulled::Failed(e) => return Err(self.end_of_session(Some(e))),
                },
            };
            if !self.live && self.index < self.start {
                self.index += 1;
                self.counters.skipped_before_start += 1;
                continue;
            }
            return Ok(sample);
        }
    }

    fn deliver(&mut self, sample: gst::Sample, data: &mut FrameData) -> SourceEvent {
        let pts = match pts_of(&sample) {
            Some(t) if self.live => t,
            Some(t) => t.saturating_sub(*self.first_pts.get_or_insert(t)),
            None => self.last_pts + self.frame_period(),
        };
        self.last_pts = pts;
        self.last_frame = Instant::now();
        let (index, seq) = (self.index, self.seq);
        self.index += 1;
        self.seq += 1;
        let source_ts = self.pass_offset + pts;
        match self.convert(&sample, data) {
            Ok(()) => SourceEvent::Frame { source_index: seq, source_ts },
            Err(what) => {
                self.counters.decode_errors += 1;
                SourceEvent::DecodeError { source_index: seq, what: format!("video {} frame {index}: {what}", self.plan.name) }
            }
        }
    }

    fn convert(&mut self, sample: &gst::Sample, data: &mut FrameData) -> Result<(), String> {
        let caps = sample.caps().ok_or("a frame without caps")?;
        // Caps change rarely (a stream's size changes): parse them only then.
        if self.video_info.as_ref().is_none_or(|(c, _)| c.as_ref() != caps) {
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|_| format!("caps perch cannot read: {caps}"))?;
            self.video_info = Some((caps.to_owned(), info));
        }
        let Some((_, info)) = &self.video_info else { return Err("no caps".into()) };
        let pixels = info.width() as u64 * info.height() as u64;
        if pixels > self.max_pixels {
            return Err(format!("{}x{} is more than source.max_pixels = {}", info.width(), info.height(), self.max_pixels));
        }
        let buffer = sample.buffer().ok_or("a sample without a buffer")?;
        copy_frame(buffer, info, &mut data.image)
    }

    fn past_end(&self) -> bool {
        self.end.is_some_and(|end| if self.live { self.seq >= end } else { self.index >= end })
    }
}

enum Pulled {
    Sample(gst::Sample),
    Nothing,
    Ended,
    Failed(String),
}

impl Source for GstSource {
    fn info(&self) -> SourceInfo {
        SourceInfo { name: self.plan.name.clone(), width: self.width, height: self.height, fps: self.fps, frames: None, device: None }
    }

    fn wait_until_due(&mut self) {
        if self.pacing != Pacing::Realtime || !matches!(self.link, Link::Up(_)) {
            return;
        }
        // Pull the frame now (decoding is GStreamer's, not the capture stage's, time) and hold it
        // until its presentation time, on a grid from the first frame.
        if self.pending.is_none() {
            match self.pull() {
                Pulled::Sample(s) => self.pending = Some(s),
                _ => return,
            }
        }
        let Some(pts) = self.pending.as_ref().and_then(pts_of) else { return };
        let ts = self.pass_offset + pts.saturating_sub(self.first_pts.unwrap_or(pts));
        let (t0, ts0) = *self.pace_origin.get_or_insert((self.clock.now(), ts));
        self.clock.sleep_until(t0 + ts.saturating_sub(ts0));
    }

    fn next_frame(&mut self, data: &mut FrameData) -> SourceEvent {
        if self.pending_decode_errors > 0 {
            self.pending_decode_errors -= 1;
            self.counters.decode_errors += 1;
            let seq = self.seq;
            self.seq += 1;
            return SourceEvent::DecodeError { source_index: seq, what: format!("video {}: {}", self.plan.name, self.last_decode_error) };
        }
        if self.past_end() {
            if self.looping && !self.live {
                let _ = self.restart_pass();
                return SourceEvent::Idle;
            }
            self.link = Link::Ended;
            return SourceEvent::End;
        }
        match self.link {
            Link::Ended => return SourceEvent::End,
            Link::Waiting { .. } | Link::Connecting { .. } => return self.reconnect_step(),
            Link::Up(_) => {}
        }
        match self.next_sample() {
            Ok(sample) => self.deliver(sample, data),
            Err(event) => event,
        }
    }

    fn counters(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let mut out = vec![("decode_errors".to_string(), c.decode_errors), ("stream_errors".to_string(), c.stream_errors)];
        if self.live {
            let open_gap = self.outage_since.map(|t| t.elapsed()).unwrap_or_default();
            out.extend([
                ("disconnects".to_string(), c.disconnects),
                ("reconnects".to_string(), c.reconnects),
                ("reconnect_attempts_failed".to_string(), c.failed_attempts),
                ("downtime_ms".to_string(), (c.downtime + open_gap).as_millis() as u64),
                ("frames_lost".to_string(), c.frames_lost + (open_gap.as_secs_f64() * self.fps.unwrap_or(0.0)).floor() as u64),
                ("gave_up".to_string(), (matches!(self.link, Link::Ended) && self.outage_since.is_some()) as u64),
            ]);
        } else {
            out.extend([("loops".to_string(), c.loops), ("skipped_before_start".to_string(), c.skipped_before_start)]);
        }
        out
    }

    fn is_live(&self) -> bool {
        self.live || self.pacing == Pacing::Realtime
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        // Stop the pipeline before the pending sample's memory goes (it may belong to a buffer pool).
        self.pending = None;
        if let Some(s) = self.session() {
            let _ = s.pipeline.set_state(gst::State::Null);
        }
    }
}

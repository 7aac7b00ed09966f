//! One running GStreamer pipeline, and what its bus says.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use gst::prelude::*;
use gstreamer as gst;
use gstreamer_app as gst_app;

use crate::stream::{PipelinePlan, APPSINK_FORMATS, SINK_NAME, SRC_NAME};

/// How long one pull waits, so a stop request is seen promptly.
pub const POLL: Duration = Duration::from_millis(100);
/// Decoded frames the appsink holds before it holds back the decoder (files: nothing is lost).
const SINK_QUEUE: u32 = 4;

/// One running GStreamer pipeline.
pub struct Session {
    pub pipeline: gst::Pipeline,
    pub sink: gst_app::AppSink,
    pub bus: gst::Bus,
    /// A live pipeline (RTSP, a camera): it does not preroll and runs at its own rate.
    pub live: bool,
}

impl Session {
    pub fn start(plan: &PipelinePlan) -> anyhow::Result<Self> {
        let what = if plan.user { "source.pipeline" } else { "the video pipeline" };
        let element = gst::parse::launch(&plan.description).map_err(|e| anyhow!("{what} `{}`: {e}", plan.description))?;
        let pipeline = match element.downcast::<gst::Pipeline>() {
            Ok(p) => p,
            Err(single) => {
                let p = gst::Pipeline::new();
                p.add(&single)?;
                p
            }
        };
        if let Some(location) = &plan.location {
            let src = pipeline.by_name(SRC_NAME).context("the video pipeline lost its source element")?;
            src.set_property("location", location);
        }
        let sink = if plan.user {
            pipeline.iterate_recurse().into_iter().filter_map(Result::ok).find_map(|e| e.downcast::<gst_app::AppSink>().ok())
        } else {
            pipeline.by_name(SINK_NAME).and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        }
        .ok_or_else(|| anyhow!("{what} `{}` has no appsink element", plan.description))?;
        let ours = gst::Caps::builder("video/x-raw").field("format", gst::List::new(APPSINK_FORMATS.iter().copied())).build();
        let caps = match sink.caps() {
            Some(theirs) => theirs.intersect(&ours),
            None => ours,
        };
        sink.set_caps(Some(&caps));
        sink.set_max_buffers(SINK_QUEUE);
        sink.set_drop(false);
        // perch paces (or not) itself; GStreamer's clock would add a wait per frame.
        sink.set_sync(false);
        sink.set_property("enable-last-sample", false);
        let bus = pipeline.bus().context("a GStreamer pipeline without a bus")?;
        let mut session = Session { pipeline, sink, bus, live: plan.location.as_deref().is_some_and(|l| l.contains("://")) };
        match session.pipeline.set_state(gst::State::Paused) {
            Ok(gst::StateChangeSuccess::NoPreroll) => session.live = true,
            Ok(_) => {}
            Err(_) => return Err(session.failure(what, plan)),
        }
        if session.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(session.failure(what, plan));
        }
        Ok(session)
    }

    /// Why the pipeline failed, from its bus.
    fn failure(&self, what: &str, plan: &PipelinePlan) -> anyhow::Error {
        match self.take_error() {
            Some(e) => anyhow!("{what} ({}): {e}", plan.name),
            None => anyhow!("{what} ({}) would not start", plan.name),
        }
    }

    fn take_error(&self) -> Option<String> {
        let msg = self.bus.pop_filtered(&[gst::MessageType::Error])?;
        let gst::MessageView::Error(e) = msg.view() else { return None };
        Some(describe(msg.src(), &e.error().to_string(), e.debug().as_deref()))
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn describe(src: Option<&gst::Object>, error: &str, debug: Option<&str>) -> String {
    let element = src.map(|s| s.name().to_string()).unwrap_or_else(|| "?".into());
    // The debug text adds the cause ("Failed to connect") or only GStreamer's source location: keep the former.
    match debug.and_then(|d| d.lines().last()) {
        Some(d) if !d.is_empty() && !d.contains(".c(") => format!("{element}: {error} ({d})"),
        _ => format!("{element}: {error}"),
    }
}

/// What the bus said since the last look.
#[derive(Default)]
pub struct BusNews {
    pub error: Option<String>,
    pub eos: bool,
    pub decode_errors: u64,
    pub last_decode_error: Option<String>,
}

/// Read what the bus has (never waits). `decoder_dropped` is the running count of frames the
/// decoders said they dropped, as of the last read (0 for a new pipeline).
pub fn read_bus(bus: &gst::Bus, decoder_dropped: &mut u64) -> BusNews {
    let mut news = BusNews::default();
    while let Some(msg) = bus.pop() {
        match msg.view() {
            gst::MessageView::Error(e) => {
                news.error.get_or_insert_with(|| describe(msg.src(), &e.error().to_string(), e.debug().as_deref()));
            }
            gst::MessageView::Eos(_) => news.eos = true,
            gst::MessageView::Warning(w) => {
                tracing::warn!("video source: {}", describe(msg.src(), &w.error().to_string(), w.debug().as_deref()));
            }
            // A decoder that cannot decode a frame drops it and says so in a QoS message with its
            // running count of dropped frames (GstVideoDecoder, below its `max-errors`). With perch's
            // appsink not syncing to the clock, nothing else makes a decoder drop: each is a decode error.
            gst::MessageView::Qos(q) if from_decoder(msg.src()) => {
                let dropped = q.dropped().value().max(0) as u64;
                if dropped > *decoder_dropped {
                    news.decode_errors += dropped - *decoder_dropped;
                    *decoder_dropped = dropped;
                    let element = msg.src().map(|s| s.name().to_string()).unwrap_or_default();
                    news.last_decode_error = Some(format!("{element} dropped a frame it could not decode"));
                }
            }
            _ => {}
        }
    }
    news
}

fn from_decoder(src: Option<&gst::Object>) -> bool {
    src.and_then(|s| s.downcast_ref::<gst::Element>())
        .and_then(|e| e.factory())
        .is_some_and(|f| f.metadata(gst::ELEMENT_METADATA_KLASS).is_some_and(|k| k.contains("Decoder")))
}

/// The first frame, or why none came (the bus's error, or the timeout).
pub fn wait_first(session: &Session, timeout: Duration, plan: &PipelinePlan) -> anyhow::Result<gst::Sample> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(sample) = session.sink.try_pull_sample(gst::ClockTime::from_nseconds(POLL.as_nanos() as u64)) {
            return Ok(sample);
        }
        let news = read_bus(&session.bus, &mut 0);
        if let Some(e) = news.error {
            anyhow::bail!("{}: no frame: {e}", plan.name);
        }
        if news.eos || session.sink.is_eos() {
            anyhow::bail!("{}: the stream ended before its first frame", plan.name);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("{}: no frame within {} ms (source.timeout_ms)", plan.name, timeout.as_millis());
        }
    }
}

pub fn pts_of(sample: &gst::Sample) -> Option<Duration> {
    sample.buffer().and_then(|b| b.pts()).map(|t| Duration::from_nanos(t.nseconds()))
}

//! Video files, RTSP streams and GStreamer pipelines (`source.kind = "video"` / `"gstreamer"`),
//! decoded by GStreamer behind the cargo feature `video`.
//!
//! Every variant is one GStreamer pipeline that ends in perch's `appsink`; this module says which
//! pipeline (pure, tested without GStreamer), `gst` runs it.

use serde::{Deserialize, Serialize};

use crate::{SourceConfig, SourceKind};

#[cfg(feature = "video")]
mod gst;

/// How an RTSP stream's packets travel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RtspTransport {
    /// RTP interleaved in the RTSP TCP connection: one connection, works through NAT and firewalls.
    #[default]
    Tcp,
    /// RTP over UDP: lower latency on a clean link; a lost packet is a lost (or broken) frame.
    Udp,
}

/// What a build without the `video` feature says when asked for a video source.
pub const NO_VIDEO_SUPPORT: &str = "this perch was built without video support: rebuild with `--features video` \
     (needs GStreamer: apt `libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-good gstreamer1.0-libav`)";

/// The pixel layouts perch's appsink accepts (preprocess converts each in its fused pass), as GStreamer
/// names them. `videoconvert` picks the cheapest from the decoder's output (I420 → NV12 for H.264).
pub const APPSINK_FORMATS: &[&str] = &["NV12", "YUY2", "RGB", "BGR", "GRAY8"];

/// Name of the appsink perch reads in the pipelines it builds.
pub const SINK_NAME: &str = "perch_sink";
/// Name of the element whose `location` is the file or URL.
pub const SRC_NAME: &str = "perch_src";

/// Default jitter buffer of an RTSP stream (rtspsrc's own default too).
pub const DEFAULT_LATENCY_MS: u64 = 200;
/// Default time without a frame after which a stream counts as lost (and the first frame's wait).
pub const DEFAULT_STREAM_TIMEOUT_MS: u64 = 5000;

/// One variant's pipeline: the `gst-launch-1.0` description, and the `location` to set on
/// [`SRC_NAME`] (set as a property rather than spliced into the text, so no path needs quoting).
#[derive(Clone, Debug, PartialEq)]
pub struct PipelinePlan {
    pub description: String,
    pub location: Option<String>,
    /// The user's own pipeline: the appsink is theirs (any name).
    pub user: bool,
    /// `name` in reports: the file, the URL without credentials, or `gstreamer`.
    pub name: String,
}

/// What GStreamer pipeline a `[source]` runs.
pub fn plan(cfg: &SourceConfig) -> anyhow::Result<PipelinePlan> {
    for (key, v) in [("timeout_ms", cfg.timeout_ms), ("reconnect_ms", cfg.reconnect_ms)] {
        if let Some(v) = v {
            anyhow::ensure!((1..=86_400_000).contains(&v), "source.{key} = {v}: must be from 1 to 86400000 ms (24 hours)");
        }
    }
    let tail = format!("decodebin ! videoconvert ! appsink name={SINK_NAME}");
    match cfg.kind {
        SourceKind::Video => match &cfg.url {
            Some(url) => {
                let scheme = url.split("://").next().unwrap_or_default().to_ascii_lowercase();
                anyhow::ensure!(
                    url.contains("://") && matches!(scheme.as_str(), "rtsp" | "rtsps" | "rtspt" | "rtspu"),
                    "source.url = {url:?}: perch reads rtsp:// streams (rtsp://host[:port]/path); for a file set source.path"
                );
                let protocols = match cfg.transport.unwrap_or_default() {
                    RtspTransport::Tcp => "tcp",
                    RtspTransport::Udp => "udp",
                };
                let latency = cfg.latency_ms.unwrap_or(DEFAULT_LATENCY_MS);
                anyhow::ensure!(latency <= 60_000, "source.latency_ms = {latency}: must be at most 60000");
                Ok(PipelinePlan {
                    description: format!("rtspsrc name={SRC_NAME} protocols={protocols} latency={latency} ! {tail}"),
                    location: Some(url.clone()),
                    user: false,
                    name: redact(url),
                })
            }
            None => {
                let path = &cfg.path;
                anyhow::ensure!(
                    path.is_file(),
                    "source.path = {}: {}",
                    path.display(),
                    if path.is_dir() { "is a folder; a video source reads a file (for a folder of frames use kind = \"replay\")" } else { "no such file" }
                );
                Ok(PipelinePlan {
                    description: format!("filesrc name={SRC_NAME} ! {tail}"),
                    location: Some(path.display().to_string()),
                    user: false,
                    name: path.display().to_string(),
                })
            }
        },
        SourceKind::Gstreamer => {
            let p = cfg.pipeline.as_deref().unwrap_or_default().trim();
            anyhow::ensure!(!p.is_empty(), "source.pipeline is not set: kind = \"gstreamer\" needs a pipeline ending in `! appsink`");
            anyhow::ensure!(
                p.contains("appsink"),
                "source.pipeline = {p:?}: has no appsink; end it with `! videoconvert ! video/x-raw,format=NV12 ! appsink`"
            );
            Ok(PipelinePlan { description: p.to_string(), location: None, user: true, name: "gstreamer".into() })
        }
        other => anyhow::bail!("source.kind = \"{}\" is not a GStreamer source", other.name()),
    }
}

/// A URL without its password, for logs and reports.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_string(),
    }
}

/// Open a `video` or `gstreamer` source.
pub fn open(cfg: &SourceConfig) -> anyhow::Result<Box<dyn perch_pipeline::Source>> {
    let plan = plan(cfg)?;
    #[cfg(feature = "video")]
    {
        gst::open(cfg, plan)
    }
    #[cfg(not(feature = "video"))]
    {
        let _ = plan;
        anyhow::bail!("source.kind = \"{}\": {NO_VIDEO_SUPPORT}", cfg.kind.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kind: SourceKind) -> SourceConfig {
        SourceConfig { kind, ..Default::default() }
    }

    #[test]
    fn a_file_plays_through_decodebin_with_its_path_as_a_property() {
        let mut c = cfg(SourceKind::Video);
        c.path = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml").into();
        let p = plan(&c).unwrap();
        assert_eq!(p.description, "filesrc name=perch_src ! decodebin ! videoconvert ! appsink name=perch_sink");
        assert_eq!(p.location.as_deref(), Some(c.path.to_str().unwrap()));
        c.path = "nope.mp4".into();
        assert!(plan(&c).unwrap_err().to_string().contains("source.path = nope.mp4: no such file"));
        c.path = env!("CARGO_MANIFEST_DIR").into();
        assert!(plan(&c).unwrap_err().to_string().contains("is a folder"));
    }

    #[test]
    fn rtsp_takes_transport_and_latency_and_hides_the_password() {
        let mut c = cfg(SourceKind::Video);
        c.url = Some("rtsp://me:secret@127.0.0.1:8554/cam".into());
        c.transport = Some(RtspTransport::Udp);
        c.latency_ms = Some(50);
        let p = plan(&c).unwrap();
        assert!(p.description.starts_with("rtspsrc name=perch_src protocols=udp latency=50 ! decodebin"), "{}", p.description);
        assert_eq!(p.name, "rtsp://***@127.0.0.1:8554/cam");
        c.url = Some("http://x/y".into());
        assert!(plan(&c).unwrap_err().to_string().contains("source.url = \"http://x/y\""));
        c.url = Some("rtsp://x/y".into());
        c.latency_ms = Some(100_000);
        assert!(plan(&c).unwrap_err().to_string().contains("source.latency_ms = 100000"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut c = cfg(SourceKind::Video);
        c.url = Some("rtsp://x/y".into());
        c.timeout_ms = Some(0);
        assert!(plan(&c).unwrap_err().to_string().contains("source.timeout_ms = 0"));
        c.timeout_ms = None;
        c.reconnect_ms = Some(100_000_000);
        assert!(plan(&c).unwrap_err().to_string().contains("source.reconnect_ms = 100000000"));
        #[derive(serde::Deserialize)]
        #[allow(dead_code)]
        struct Wrap {
            source: SourceConfig,
        }
        let e = perch_pipeline::config::load::<Wrap>(None, &["source.transport=\"quic\"".into()]).err().unwrap().to_string();
        assert!(e.contains("source.transport") && e.contains("quic"), "{e}");
        let e = perch_pipeline::config::load::<Wrap>(None, &["source.url=3".into()]).err().unwrap().to_string();
        assert!(e.contains("source.url"), "{e}");
    }

    #[test]
    fn a_user_pipeline_must_end_in_an_appsink() {
        let mut c = cfg(SourceKind::Gstreamer);
        assert!(plan(&c).unwrap_err().to_string().contains("source.pipeline is not set"));
        c.pipeline = Some("videotestsrc ! fakesink".into());
        assert!(plan(&c).unwrap_err().to_string().contains("has no appsink"));
        c.pipeline = Some("videotestsrc ! appsink".into());
        assert!(plan(&c).unwrap().user);
    }
}

//! Which `[source]` keys each kind reads. A key set for a kind that ignores it is a config mistake
//! worth naming (`source.transport` on a file, `source.width` on a replay), so [`check`] refuses it.

use crate::{SourceConfig, SourceKind};

/// The variants of `[source]` that read different keys (a video with `url` is a stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    Replay,
    Camera,
    VideoFile,
    VideoStream,
    Gstreamer,
    Ros2,
}

impl Variant {
    fn of(cfg: &SourceConfig) -> Self {
        match cfg.kind {
            SourceKind::Replay => Variant::Replay,
            SourceKind::Camera => Variant::Camera,
            SourceKind::Video if cfg.url.is_some() => Variant::VideoStream,
            SourceKind::Video => Variant::VideoFile,
            SourceKind::Gstreamer => Variant::Gstreamer,
            SourceKind::Ros2 => Variant::Ros2,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Variant::Replay => "source.kind = \"replay\"",
            Variant::Camera => "source.kind = \"camera\"",
            Variant::VideoFile => "source.kind = \"video\" with a file (source.path)",
            Variant::VideoStream => "source.kind = \"video\" with a stream (source.url)",
            Variant::Gstreamer => "source.kind = \"gstreamer\"",
            Variant::Ros2 => "source.kind = \"ros2\"",
        }
    }
}

use Variant::*;

/// Every optional key, the variants that read it, and how the owner is named in an error.
const KEYS: &[(&str, &[Variant], &str)] = &[
    ("path", &[Replay, VideoFile], "replay/video-file"),
    ("pacing", &[Replay, VideoFile, Gstreamer], "replay/video-file"),
    ("fps", &[Replay, Camera, Gstreamer], "replay/camera"),
    ("loop", &[Replay, VideoFile], "replay/video-file"),
    ("start_frame", &[Replay, VideoFile], "replay/video-file"),
    ("start_s", &[Replay, VideoFile], "replay/video-file"),
    ("end_s", &[Replay, VideoFile], "replay/video-file"),
    ("device", &[Camera], "camera"),
    ("width", &[Camera], "camera"),
    ("height", &[Camera], "camera"),
    ("format", &[Camera], "camera"),
    ("timeout_ms", &[Camera, VideoStream, Gstreamer], "camera/stream"),
    ("reconnect_ms", &[Camera, VideoStream, Gstreamer], "camera/stream"),
    ("reconnect", &[Camera, VideoStream, Gstreamer], "camera/stream"),
    ("transport", &[VideoStream], "RTSP (source.url)"),
    ("latency_ms", &[VideoStream], "RTSP (source.url)"),
    ("pipeline", &[Gstreamer], "gstreamer"),
    ("topic", &[Ros2], "ros2"),
    ("message", &[Ros2], "ros2"),
    ("qos", &[Ros2], "ros2"),
];

/// The optional keys set to something other than their default, in [`KEYS`] order.
pub fn set_keys(cfg: &SourceConfig) -> Vec<&'static str> {
    let d = SourceConfig::default();
    let set = |key: &str| match key {
        "path" => cfg.path != d.path,
        "pacing" => cfg.pacing != d.pacing,
        "fps" => cfg.fps.is_some(),
        "loop" => cfg.looping,
        "start_frame" => cfg.start_frame != 0,
        "start_s" => cfg.start_s.is_some(),
        "end_s" => cfg.end_s.is_some(),
        "device" => cfg.device.is_some(),
        "width" => cfg.width.is_some(),
        "height" => cfg.height.is_some(),
        "format" => cfg.format.is_some(),
        "timeout_ms" => cfg.timeout_ms.is_some(),
        "reconnect_ms" => cfg.reconnect_ms.is_some(),
        "reconnect" => cfg.reconnect.is_some(),
        "transport" => cfg.transport.is_some(),
        "latency_ms" => cfg.latency_ms.is_some(),
        "pipeline" => cfg.pipeline.is_some(),
        "topic" => cfg.topic.is_some(),
        "message" => cfg.message.is_some(),
        "qos" => cfg.qos.is_some(),
        _ => false,
    };
    KEYS.iter().map(|(k, _, _)| *k).filter(|k| set(k)).collect()
}

/// Refuse keys the configured kind does not read, and the key pairs that contradict each other.
pub fn check(cfg: &SourceConfig) -> anyhow::Result<()> {
    let variant = Variant::of(cfg);
    // `path` has a default (the vtest folder): a video needs it set, but a URL makes it moot.
    if variant == VideoStream && cfg.path != SourceConfig::default().path {
        anyhow::bail!("source.path and source.url are both set: a video is a file (path) or a stream (url), not both");
    }
    for key in set_keys(cfg) {
        let (_, readers, owner) = KEYS.iter().find(|(k, _, _)| *k == key).expect("key in table");
        if !readers.contains(&variant) {
            let hint = match key {
                "device" | "width" | "height" | "format" => ": set source.kind = \"camera\" (or run with --source 0 / --source /dev/video0)",
                "transport" | "latency_ms" => ": they apply to rtsp:// streams (source.url)",
                "pipeline" => ": set source.kind = \"gstreamer\"",
                "topic" | "message" | "qos" => ": set source.kind = \"ros2\"",
                _ => "",
            };
            anyhow::bail!("source.{key} is a {owner} key, but {}{hint}", variant.describe());
        }
    }
    if cfg.start_s.is_some() && cfg.start_frame != 0 {
        anyhow::bail!("source.start_s and source.start_frame are both set: give the start as a time or as a frame, not both");
    }
    if cfg.end_s.is_some() && cfg.end_frame.is_some() {
        anyhow::bail!("source.end_s and source.end_frame are both set: give the end as a time or as a frame, not both");
    }
    for (key, v) in [("start_s", cfg.start_s), ("end_s", cfg.end_s)] {
        if let Some(v) = v {
            anyhow::ensure!(v.is_finite() && (0.0..=1e7).contains(&v), "source.{key} = {v}: must be seconds in 0..=10000000");
        }
    }
    if let (Some(a), Some(b)) = (cfg.start_s, cfg.end_s) {
        anyhow::ensure!(b > a, "source.end_s = {b} is not after source.start_s = {a}");
    }
    Ok(())
}

/// `start_s`/`end_s` as frame positions at `fps` (frame k shows at `k / fps`: the first frame at or
/// after the time starts, the end is exclusive), or the frame keys as given.
pub fn frame_range(cfg: &SourceConfig, fps: Option<f64>) -> anyhow::Result<(u64, Option<u64>)> {
    let at = |key: &str, s: f64| -> anyhow::Result<u64> {
        let fps = fps.ok_or_else(|| anyhow::anyhow!("source.{key} needs the frame rate: set source.fps (or use a frame key)"))?;
        Ok((s * fps - 1e-6).ceil().max(0.0) as u64)
    };
    let start = match cfg.start_s {
        Some(s) => at("start_s", s)?,
        None => cfg.start_frame,
    };
    let end = match cfg.end_s {
        Some(s) => Some(at("end_s", s)?),
        None => cfg.end_frame,
    };
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(sets: &[&str]) -> SourceConfig {
        #[derive(serde::Deserialize)]
        struct Wrap {
            source: SourceConfig,
        }
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        perch_pipeline::config::load::<Wrap>(None, &sets).map(|w| w.source).unwrap()
    }

    fn err(sets: &[&str]) -> String {
        check(&load(sets)).unwrap_err().to_string()
    }

    #[test]
    fn every_key_of_the_table_is_detected_when_set() {
        let c = load(&[
            "source.path=\"x\"", "source.pacing=\"max\"", "source.fps=5", "source.loop=true", "source.start_frame=1",
            "source.start_s=1", "source.end_s=2", "source.device=0", "source.width=1", "source.height=1",
            "source.format=\"yuyv\"", "source.timeout_ms=1", "source.reconnect_ms=1", "source.reconnect=1",
            "source.transport=\"tcp\"", "source.latency_ms=1", "source.pipeline=\"x\"", "source.topic=\"/x\"",
            "source.message=\"image\"", "source.qos={}",
        ]);
        assert_eq!(set_keys(&c).len(), KEYS.len());
        assert!(set_keys(&SourceConfig::default()).is_empty());
    }

    #[test]
    fn keys_of_another_kind_are_named() {
        let e = err(&["source.width=640"]);
        assert!(e.contains("source.width is a camera key") && e.contains("source.kind = \"replay\"") && e.contains("source.kind = \"camera\""), "{e}");
        let e = err(&["source.kind=\"video\"", "source.path=\"a.mp4\"", "source.transport=\"udp\""]);
        assert!(e.contains("source.transport is a RTSP (source.url) key") && e.contains("with a file"), "{e}");
        let e = err(&["source.kind=\"video\"", "source.url=\"rtsp://h/x\"", "source.loop=true"]);
        assert!(e.contains("source.loop") && e.contains("with a stream"), "{e}");
        let e = err(&["source.kind=\"video\"", "source.url=\"rtsp://h/x\"", "source.path=\"a.mp4\""]);
        assert!(e.contains("source.path and source.url"), "{e}");
        let e = err(&["source.pipeline=\"videotestsrc ! appsink\""]);
        assert!(e.contains("source.pipeline is a gstreamer key") && e.contains("source.kind = \"gstreamer\""), "{e}");
        let e = err(&["source.kind=\"video\"", "source.topic=\"/camera/image_raw\""]);
        assert!(e.contains("source.topic is a ros2 key"), "{e}");
        let e = err(&["source.kind=\"ros2\"", "source.topic=\"/x\"", "source.pacing=\"max\""]);
        assert!(e.contains("source.pacing") && e.contains("source.kind = \"ros2\""), "{e}");
        let e = err(&["source.kind=\"camera\"", "source.latency_ms=100"]);
        assert!(e.contains("source.latency_ms") && e.contains("rtsp://"), "{e}");
        check(&load(&["source.kind=\"video\"", "source.url=\"rtsp://h/x\"", "source.transport=\"udp\"", "source.reconnect=3"])).unwrap();
        check(&load(&["source.kind=\"gstreamer\"", "source.pipeline=\"x ! appsink\"", "source.timeout_ms=500"])).unwrap();
        check(&load(&["source.kind=\"ros2\"", "source.topic=\"/x\"", "source.qos={reliability=\"reliable\"}", "source.end_frame=3"])).unwrap();
    }

    #[test]
    fn time_keys_are_checked_and_named() {
        let e = err(&["source.start_s=1", "source.start_frame=3"]);
        assert!(e.contains("source.start_s and source.start_frame"), "{e}");
        let e = err(&["source.end_s=1", "source.end_frame=3"]);
        assert!(e.contains("source.end_s and source.end_frame"), "{e}");
        let e = err(&["source.start_s=-1"]);
        assert!(e.contains("source.start_s = -1"), "{e}");
        let e = err(&["source.end_s=nan"]);
        assert!(e.contains("source.end_s = NaN"), "{e}");
        let e = err(&["source.start_s=2", "source.end_s=1"]);
        assert!(e.contains("source.end_s = 1 is not after source.start_s = 2"), "{e}");
    }

    #[test]
    fn seconds_become_frames_at_the_rate() {
        let c = load(&["source.start_s=1.0", "source.end_s=2.05"]);
        assert_eq!(frame_range(&c, Some(10.0)).unwrap(), (10, Some(21)));
        let c = load(&["source.start_frame=4", "source.end_frame=9"]);
        assert_eq!(frame_range(&c, None).unwrap(), (4, Some(9)));
        let c = load(&["source.start_s=1.0"]);
        assert!(frame_range(&c, None).unwrap_err().to_string().contains("source.start_s needs the frame rate"));
        // 0.3 s at 10 fps is frame 3, despite 0.3 * 10 = 3.0000000000000004.
        let c = load(&["source.start_s=0.3"]);
        assert_eq!(frame_range(&c, Some(10.0)).unwrap().0, 3);
    }
}

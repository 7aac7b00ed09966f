//! The camera keys of `[source]`: which device, what to ask it for, how to ride out an unplug.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::SourceConfig;

/// `source.device`: a camera index (`0`: `/dev/video0`), a node (`/dev/video2`) or a stable name that
/// links to one (`/dev/v4l/by-id/usb-046d_HD_Pro_Webcam_C920-video-index0`), re-resolved at every
/// reconnect so the camera is found again under a new index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceSpec {
    Index(u32),
    Path(String),
}

impl Default for DeviceSpec {
    fn default() -> Self {
        DeviceSpec::Index(0)
    }
}

impl DeviceSpec {
    /// A command-line value: all digits is an index, anything else a path.
    pub fn parse(value: &str) -> Self {
        match value.parse::<u32>() {
            Ok(i) if !value.starts_with('+') => DeviceSpec::Index(i),
            _ => DeviceSpec::Path(value.to_string()),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Index(i) => write!(f, "/dev/video{i}"),
            DeviceSpec::Path(p) => f.write_str(p),
        }
    }
}

impl Serialize for DeviceSpec {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            DeviceSpec::Index(i) => s.serialize_u32(*i),
            DeviceSpec::Path(p) => s.serialize_str(p),
        }
    }
}

impl<'de> Deserialize<'de> for DeviceSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DeviceSpec;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a camera index (0) or a device path (\"/dev/video0\", \"/dev/v4l/by-id/...\")")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<DeviceSpec, E> {
                u32::try_from(v).map(DeviceSpec::Index).map_err(|_| E::custom(format!("camera index {v} is too large")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<DeviceSpec, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("camera index must be 0 or more, found {v}")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<DeviceSpec, E> {
                if v.is_empty() {
                    return Err(E::custom("empty device: expected a camera index (0) or a path (\"/dev/video0\")"));
                }
                Ok(DeviceSpec::parse(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `source.format`: the pixel format to ask the camera for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CameraFormat {
    /// Whichever of MJPEG and YUYV gives the highest frame rate at the chosen size; YUYV on a tie
    /// (no decode, no compression artefacts).
    #[default]
    Auto,
    /// Motion-JPEG, decoded to RGB on the capture thread.
    Mjpeg,
    /// YUYV 4:2:2, copied once; preprocessing converts it in its fused pass.
    Yuyv,
}

/// `source.reconnect`: how many times to try to get the camera back after it failed, or `"always"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reconnect {
    #[default]
    Always,
    Attempts(u32),
}

impl Reconnect {
    /// Whether attempt number `n` (1-based) may be made.
    pub fn allows(self, n: u32) -> bool {
        match self {
            Reconnect::Always => true,
            Reconnect::Attempts(cap) => n <= cap,
        }
    }
}

impl Serialize for Reconnect {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reconnect::Always => s.serialize_str("always"),
            Reconnect::Attempts(n) => s.serialize_u32(*n),
        }
    }
}

impl<'de> Deserialize<'de> for Reconnect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Reconnect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number of reconnect attempts (0: give up at the first failure) or \"always\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Reconnect, E> {
                u32::try_from(v).map(Reconnect::Attempts).map_err(|_| E::custom("too many attempts: use \"always\""))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Reconnect, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("expected 0 or more attempts or \"always\", found {v}")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Reconnect, E> {
                match v {
                    "always" => Ok(Reconnect::Always),
                    _ => Err(E::custom(format!("expected a number of attempts or \"always\", found \"{v}\""))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Defaults of the camera keys (also in configs/README.md).
pub const DEFAULT_TIMEOUT_MS: u64 = 2000;
pub const DEFAULT_RECONNECT_MS: u64 = 1000;

/// What to ask the camera for, from `[source]`, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct CameraRequest {
    pub device: DeviceSpec,
    pub format: CameraFormat,
    /// Exact size, or `None`: the offered size nearest 640x480.
    pub size: Option<(u32, u32)>,
    /// Exact rate, or `None`: the fastest offered at the chosen size.
    pub fps: Option<f64>,
    /// No frame for this long ends the stream (then reconnect).
    pub timeout: Duration,
    pub reconnect_every: Duration,
    pub reconnect: Reconnect,
    /// Stop before the frame whose index (the driver's numbering, continued across reconnects) is this.
    pub end_frame: Option<u64>,
}

impl CameraRequest {
    /// Check the camera keys of `[source]`; errors name the key.
    pub fn from_config(cfg: &SourceConfig) -> anyhow::Result<Self> {
        let size = match (cfg.width, cfg.height) {
            (Some(w), Some(h)) => {
                anyhow::ensure!(w > 0 && h > 0, "source.width/source.height must be positive, found {w}x{h}");
                Some((w, h))
            }
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("source.width is set but source.height is not: give both, or neither (the size nearest 640x480)"),
            (None, Some(_)) => anyhow::bail!("source.height is set but source.width is not: give both, or neither (the size nearest 640x480)"),
        };
        if let Some(f) = cfg.fps {
            anyhow::ensure!(f > 0.0 && f.is_finite(), "source.fps must be a positive number, found {f}");
        }
        let ms = |key: &str, v: Option<u64>, default: u64| -> anyhow::Result<Duration> {
            let v = v.unwrap_or(default);
            anyhow::ensure!(v > 0, "source.{key} must be at least 1 ms, found {v}");
            Ok(Duration::from_millis(v))
        };
        anyhow::ensure!(!cfg.looping, "source.loop is a replay key; a camera runs until Ctrl-C or source.end_frame");
        anyhow::ensure!(cfg.start_frame == 0, "source.start_frame is a replay key; a camera starts at its next frame");
        Ok(Self {
            device: cfg.device.clone().unwrap_or_default(),
            format: cfg.format.unwrap_or_default(),
            size,
            fps: cfg.fps,
            timeout: ms("timeout_ms", cfg.timeout_ms, DEFAULT_TIMEOUT_MS)?,
            reconnect_every: ms("reconnect_ms", cfg.reconnect_ms, DEFAULT_RECONNECT_MS)?,
            reconnect: cfg.reconnect.unwrap_or_default(),
            end_frame: cfg.end_frame,
        })
    }

    /// What was asked for, in words (logged, and recorded in the report).
    pub fn describe(&self) -> String {
        let format = match self.format {
            CameraFormat::Auto => "format auto",
            CameraFormat::Mjpeg => "format mjpeg",
            CameraFormat::Yuyv => "format yuyv",
        };
        let size = self.size.map_or("size nearest 640x480".to_string(), |(w, h)| format!("{w}x{h}"));
        let fps = self.fps.map_or("fastest rate".to_string(), |f| format!("{f} fps"));
        format!("{format}, {size}, {fps}")
    }
}

/// The camera keys set on a source that is not a camera (a config mistake worth naming).
pub fn camera_keys_set(cfg: &SourceConfig) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut check = |set: bool, key| {
        if set {
            keys.push(key);
        }
    };
    check(cfg.device.is_some(), "device");
    check(cfg.width.is_some(), "width");
    check(cfg.height.is_some(), "height");
    check(cfg.format.is_some(), "format");
    check(cfg.timeout_ms.is_some(), "timeout_ms");
    check(cfg.reconnect_ms.is_some(), "reconnect_ms");
    check(cfg.reconnect.is_some(), "reconnect");
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SourceKind;

    fn load(sets: &[&str]) -> Result<SourceConfig, String> {
        #[derive(Deserialize)]
        struct Wrap {
            source: SourceConfig,
        }
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        perch_pipeline::config::load::<Wrap>(None, &sets).map(|w| w.source).map_err(|e| e.to_string())
    }

    #[test]
    fn device_accepts_an_index_a_path_or_digits_in_a_string() {
        let c = load(&["source.kind=\"camera\"", "source.device=2"]).unwrap();
        assert_eq!(c.kind, SourceKind::Camera);
        assert_eq!(c.device, Some(DeviceSpec::Index(2)));
        let c = load(&["source.device=\"/dev/v4l/by-id/usb-x-video-index0\""]).unwrap();
        assert_eq!(c.device, Some(DeviceSpec::Path("/dev/v4l/by-id/usb-x-video-index0".into())));
        assert_eq!(load(&["source.device=\"1\""]).unwrap().device, Some(DeviceSpec::Index(1)));
        let e = load(&["source.device=-1"]).unwrap_err();
        assert!(e.contains("key `source.device`") && e.contains("0 or more"), "{e}");
        let e = load(&["source.device=true"]).unwrap_err();
        assert!(e.contains("key `source.device`") && e.contains("camera index"), "{e}");
    }

    #[test]
    fn reconnect_is_a_count_or_always() {
        assert_eq!(load(&["source.reconnect=3"]).unwrap().reconnect, Some(Reconnect::Attempts(3)));
        assert_eq!(load(&["source.reconnect=\"always\""]).unwrap().reconnect, Some(Reconnect::Always));
        let e = load(&["source.reconnect=\"forever\""]).unwrap_err();
        assert!(e.contains("key `source.reconnect`") && e.contains("\"always\"") && e.contains("forever"), "{e}");
        assert!(Reconnect::Attempts(2).allows(2) && !Reconnect::Attempts(2).allows(3));
        assert!(!Reconnect::Attempts(0).allows(1));
        assert!(Reconnect::Always.allows(u32::MAX));
    }

    #[test]
    fn format_names_the_choices() {
        let e = load(&["source.format=\"h264\""]).unwrap_err();
        assert!(e.contains("key `source.format`") && e.contains("auto") && e.contains("mjpeg") && e.contains("yuyv"), "{e}");
    }

    #[test]
    fn request_checks_the_keys_and_fills_defaults() {
        let c = load(&["source.kind=\"camera\""]).unwrap();
        let r = CameraRequest::from_config(&c).unwrap();
        assert_eq!(r.device, DeviceSpec::Index(0));
        assert_eq!(r.format, CameraFormat::Auto);
        assert_eq!((r.size, r.fps), (None, None));
        assert_eq!(r.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(r.reconnect, Reconnect::Always);
        let c = load(&["source.kind=\"camera\"", "source.width=640"]).unwrap();
        let e = CameraRequest::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("source.height"), "{e}");
        let c = load(&["source.kind=\"camera\"", "source.timeout_ms=0"]).unwrap();
        assert!(CameraRequest::from_config(&c).unwrap_err().to_string().contains("source.timeout_ms"));
        let c = load(&["source.kind=\"camera\"", "source.loop=true"]).unwrap();
        assert!(CameraRequest::from_config(&c).unwrap_err().to_string().contains("source.loop is a replay key"));
    }

    #[test]
    fn camera_keys_on_a_replay_are_listed() {
        let c = load(&["source.width=640", "source.reconnect=1"]).unwrap();
        assert_eq!(camera_keys_set(&c), vec!["width", "reconnect"]);
        assert!(camera_keys_set(&SourceConfig::default()).is_empty());
    }
}

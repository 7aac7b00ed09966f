//! `[ros2]` in perch's TOML config.

use std::time::Duration;

use ros2_client::qos::{Durability, History, Reliability, WhenFull};
use ros2_client::QosProfile;
use serde::{Deserialize, Serialize};

/// How `ObjectHypothesis.class_id` is filled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClassIdMode {
    /// The detector's class name (`"person"`); the index when the detector names no classes.
    #[default]
    Name,
    /// The class index as a decimal string (`"0"`).
    Index,
}

pub use perch_pipeline::qos::{DurabilityKind, QosConfig, ReliabilityKind};

/// ros2-client's profile for a [`QosConfig`].
pub trait ToQosProfile {
    fn to_profile(&self) -> QosProfile;
}

impl ToQosProfile for QosConfig {
    fn to_profile(&self) -> QosProfile {
        let reliability = match self.reliability {
            ReliabilityKind::Reliable => Reliability::Reliable { when_full: WhenFull::Fail },
            ReliabilityKind::BestEffort => Reliability::BestEffort,
        };
        let durability = match self.durability {
            DurabilityKind::Volatile => Durability::Volatile,
            DurabilityKind::TransientLocal => Durability::TransientLocal,
        };
        QosProfile::publisher_default()
            .reliability(reliability)
            .durability(durability)
            .history(History::KeepLast { depth: self.history_depth.max(1) })
    }
}

/// The `detections` topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectionsConfig {
    /// Relative names live under the node's namespace (`/perch/detections`); `/x` is absolute.
    pub topic: String,
    pub qos: QosConfig,
}

impl Default for DetectionsConfig {
    fn default() -> Self {
        Self { topic: "detections".into(), qos: QosConfig::default() }
    }
}

/// The `diagnostics` topic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsConfig {
    pub enabled: bool,
    /// `/diagnostics` feeds a `diagnostic_aggregator`; the default stays inside the namespace.
    pub topic: String,
    pub period_s: f64,
    /// Deadline misses / captured frames over one period above which the status is WARN.
    pub miss_rate_warn: f64,
    pub qos: QosConfig,
}

impl Default for DiagnosticsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            topic: "diagnostics".into(),
            period_s: 1.0,
            miss_rate_warn: 0.05,
            qos: QosConfig::default(),
        }
    }
}

/// The optional `image/compressed` topic (JPEG with the boxes drawn).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageConfig {
    pub enabled: bool,
    pub topic: String,
    /// Most images per second (frames in between are not encoded).
    pub rate_hz: f64,
    /// 1..=100.
    pub jpeg_quality: u8,
    pub qos: QosConfig,
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            topic: "image/compressed".into(),
            rate_hz: 2.0,
            jpeg_quality: 75,
            qos: QosConfig::best_effort(1),
        }
    }
}

/// `[ros2]`: perch as a ROS 2 node (no ROS installation needed; DDS is spoken natively).
/// The DDS domain comes from the environment variable `ROS_DOMAIN_ID` (default 0), as in ROS 2.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ros2Config {
    pub enabled: bool,
    pub node_name: String,
    pub namespace: String,
    /// `header.frame_id` of every message.
    pub frame_id: String,
    pub class_id: ClassIdMode,
    pub detections: DetectionsConfig,
    pub diagnostics: DiagnosticsConfig,
    pub image: ImageConfig,
}

impl Default for Ros2Config {
    fn default() -> Self {
        Self {
            enabled: false,
            node_name: "perch".into(),
            namespace: "/perch".into(),
            frame_id: "camera".into(),
            class_id: ClassIdMode::Name,
            detections: DetectionsConfig::default(),
            diagnostics: DiagnosticsConfig::default(),
            image: ImageConfig::default(),
        }
    }
}

/// Environment overrides, so `ros2 launch` can set what ROS users set with `--ros-args`:
/// `PERCH_ROS2_NAMESPACE`, `PERCH_ROS2_NODE_NAME`, and `PERCH_ROS2_REMAP`
/// (`detections:=/robot/dets;diagnostics:=/diagnostics;image/compressed:=/cam/overlay`).
pub const ENV_NAMESPACE: &str = "PERCH_ROS2_NAMESPACE";
pub const ENV_NODE_NAME: &str = "PERCH_ROS2_NODE_NAME";
pub const ENV_REMAP: &str = "PERCH_ROS2_REMAP";

impl Ros2Config {
    /// Check values serde cannot; errors name the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        use anyhow::ensure;
        ensure!(
            self.diagnostics.period_s.is_finite() && (0.05..=3600.0).contains(&self.diagnostics.period_s),
            "ros2.diagnostics.period_s = {}: must be between 0.05 and 3600 seconds",
            self.diagnostics.period_s
        );
        ensure!(
            (0.0..=1.0).contains(&self.diagnostics.miss_rate_warn),
            "ros2.diagnostics.miss_rate_warn = {}: must be a fraction in 0..=1",
            self.diagnostics.miss_rate_warn
        );
        ensure!(
            self.image.rate_hz.is_finite() && (0.001..=1000.0).contains(&self.image.rate_hz),
            "ros2.image.rate_hz = {}: must be between 0.001 and 1000 images per second",
            self.image.rate_hz
        );
        ensure!(
            (1..=100).contains(&self.image.jpeg_quality),
            "ros2.image.jpeg_quality = {}: must be in 1..=100",
            self.image.jpeg_quality
        );
        for (key, q) in
            [("detections", &self.detections.qos), ("diagnostics", &self.diagnostics.qos), ("image", &self.image.qos)]
        {
            ensure!(q.history_depth >= 1, "ros2.{key}.qos.history_depth = 0: must be at least 1");
        }
        ensure!(!self.frame_id.is_empty(), "ros2.frame_id is empty: name the camera's TF frame (e.g. \"camera\")");
        Ok(())
    }

    /// Apply `PERCH_ROS2_*` overrides from `env` (a lookup, so tests need not touch the process env).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<()> {
        if let Some(ns) = env(ENV_NAMESPACE) {
            self.namespace = ns;
        }
        if let Some(name) = env(ENV_NODE_NAME) {
            self.node_name = name;
        }
        if let Some(remaps) = env(ENV_REMAP) {
            for rule in remaps.split([';', ',']).map(str::trim).filter(|r| !r.is_empty()) {
                let (from, to) = rule.split_once(":=").ok_or_else(|| {
                    anyhow::anyhow!("{ENV_REMAP}: rule {rule:?} is not `from:=to` (from is one of detections, diagnostics, image/compressed)")
                })?;
                let (from, to) = (from.trim().trim_start_matches("~/"), to.trim().to_string());
                anyhow::ensure!(!to.is_empty(), "{ENV_REMAP}: rule {rule:?} has an empty target");
                if from == self.detections.topic.trim_start_matches('/') || from == "detections" {
                    self.detections.topic = to;
                } else if from == self.diagnostics.topic.trim_start_matches('/') || from == "diagnostics" {
                    self.diagnostics.topic = to;
                } else if from == self.image.topic.trim_start_matches('/') || from == "image/compressed" {
                    self.image.topic = to;
                } else {
                    anyhow::bail!(
                        "{ENV_REMAP}: unknown topic {from:?} in {rule:?}: perch publishes detections, diagnostics, image/compressed"
                    );
                }
            }
        }
        Ok(())
    }
}

/// `ROS_DOMAIN_ID` as ROS 2 reads it: unset or empty means 0; otherwise an integer 0..=232.
pub fn domain_id_from(value: Option<&str>) -> anyhow::Result<u16> {
    match value.map(str::trim) {
        None | Some("") => Ok(0),
        Some(v) => match v.parse::<u16>() {
            Ok(d) if d <= 232 => Ok(d),
            _ => anyhow::bail!("ROS_DOMAIN_ID={v:?} is not a valid ROS 2 domain id: use an integer in 0..=232 (or unset it for 0)"),
        },
    }
}

/// The domain from the process environment.
pub fn domain_id_from_env() -> anyhow::Result<u16> {
    domain_id_from(std::env::var("ROS_DOMAIN_ID").ok().as_deref())
}

pub(crate) fn period(secs: f64) -> Duration {
    Duration::from_secs_f64(secs.max(0.001))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_round_trip_through_toml() {
        let cfg = Ros2Config::default();
        let text = toml::to_string(&cfg).unwrap();
        let back: Ros2Config = toml::from_str(&text).unwrap();
        assert_eq!(back, cfg);
        assert!(!cfg.enabled);
        assert_eq!(cfg.namespace, "/perch");
        assert_eq!(cfg.detections.qos, QosConfig::default());
        assert_eq!(cfg.detections.qos.history_depth, 10);
        cfg.validate().unwrap();
    }

    #[test]
    fn partial_toml_keeps_defaults_and_unknown_keys_are_named() {
        let cfg: Ros2Config =
            toml::from_str("enabled = true\nclass_id = \"index\"\n[detections.qos]\nreliability = \"best_effort\"\n")
                .unwrap();
        assert!(cfg.enabled);
        assert_eq!(cfg.class_id, ClassIdMode::Index);
        assert_eq!(cfg.detections.qos.reliability, ReliabilityKind::BestEffort);
        assert_eq!(cfg.detections.qos.history_depth, 10);
        let err = toml::from_str::<Ros2Config>("[image]\nfps = 3\n").unwrap_err().to_string();
        assert!(err.contains("fps"), "{err}");
        let err = toml::from_str::<Ros2Config>("[detections.qos]\nreliability = \"sometimes\"\n").unwrap_err().to_string();
        assert!(err.contains("best_effort"), "{err}");
    }

    #[test]
    fn shipped_ros2_config_section_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../configs/ros2.toml");
        let text = std::fs::read_to_string(path).expect("configs/ros2.toml exists (the launch files name it)");
        let doc: toml::Table = toml::from_str(&text).unwrap();
        let cfg: Ros2Config = doc["ros2"].clone().try_into().unwrap();
        assert!(cfg.enabled);
        cfg.validate().unwrap();
    }

    #[test]
    fn bad_values_name_the_key() {
        let mut cfg = Ros2Config::default();
        cfg.image.jpeg_quality = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("ros2.image.jpeg_quality"));
        let mut cfg = Ros2Config::default();
        cfg.diagnostics.qos.history_depth = 0;
        assert!(cfg.validate().unwrap_err().to_string().contains("ros2.diagnostics.qos.history_depth"));
    }

    #[test]
    fn domain_id_parsing() {
        assert_eq!(domain_id_from(None).unwrap(), 0);
        assert_eq!(domain_id_from(Some("")).unwrap(), 0);
        assert_eq!(domain_id_from(Some(" 42 ")).unwrap(), 42);
        assert_eq!(domain_id_from(Some("232")).unwrap(), 232);
        for bad in ["233", "-1", "abc", "1.5"] {
            let e = domain_id_from(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("ROS_DOMAIN_ID") && e.contains("0..=232"), "{e}");
        }
    }

    #[test]
    fn env_overrides_namespace_and_remaps() {
        let mut cfg = Ros2Config::default();
        let env = |k: &str| match k {
            ENV_NAMESPACE => Some("/robot1".to_string()),
            ENV_REMAP => Some("detections:=/robot1/dets; diagnostics:=/diagnostics".to_string()),
            _ => None,
        };
        cfg.apply_env(env).unwrap();
        assert_eq!(cfg.namespace, "/robot1");
        assert_eq!(cfg.detections.topic, "/robot1/dets");
        assert_eq!(cfg.diagnostics.topic, "/diagnostics");
        assert_eq!(cfg.node_name, "perch");
        let mut cfg = Ros2Config::default();
        let e = cfg.apply_env(|k| (k == ENV_REMAP).then(|| "tracks:=/x".to_string())).unwrap_err().to_string();
        assert!(e.contains("unknown topic"), "{e}");
    }

    #[test]
    fn qos_maps_to_ros2_client_profile() {
        let p = QosConfig::default().to_profile();
        assert_eq!(p.reliability, Reliability::Reliable { when_full: WhenFull::Fail });
        assert_eq!(p.history, History::KeepLast { depth: 10 });
        assert_eq!(p.durability, Durability::Volatile);
        let p = QosConfig { durability: DurabilityKind::TransientLocal, ..QosConfig::best_effort(3) }.to_profile();
        assert_eq!(p.reliability, Reliability::BestEffort);
        assert_eq!(p.durability, Durability::TransientLocal);
    }
}

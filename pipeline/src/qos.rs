//! DDS quality of service as perch's configs spell it: plain data shared by the ROS 2 publisher
//! (`[ros2.*.qos]`) and the ROS 2 image source (`source.qos`); `perch-ros2` maps it onto ros2-client.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReliabilityKind {
    /// Lost samples are resent. Reaches reliable and best-effort subscribers.
    #[default]
    Reliable,
    /// Fire and forget. Never reaches a reliable subscriber (DDS rule).
    BestEffort,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilityKind {
    /// Only subscribers present at publish time get a sample.
    #[default]
    Volatile,
    /// Late joiners get the last `history_depth` samples ("latched").
    TransientLocal,
}

/// QoS of one topic. A publish never waits for a slow reliable reader: when the send window is
/// full the sample is counted as unsent instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QosConfig {
    pub reliability: ReliabilityKind,
    /// keep_last depth (at least 1).
    pub history_depth: usize,
    pub durability: DurabilityKind,
}

impl Default for QosConfig {
    fn default() -> Self {
        Self { reliability: ReliabilityKind::Reliable, history_depth: 10, durability: DurabilityKind::Volatile }
    }
}

impl QosConfig {
    pub fn best_effort(depth: usize) -> Self {
        Self { reliability: ReliabilityKind::BestEffort, history_depth: depth, durability: DurabilityKind::Volatile }
    }

    /// ROS 2's sensor-data profile (`rmw_qos_profile_sensor_data`): best effort, keep last 1, volatile.
    /// What camera drivers publish with; it also receives from reliable publishers.
    pub fn sensor_data() -> Self {
        Self::best_effort(1)
    }
}

/// A QoS table where each key is optional and falls back to a base profile (the source's default is
/// sensor data: `source.qos = { reliability = "reliable" }` keeps depth 1 and volatile).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QosOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reliability: Option<ReliabilityKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_depth: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub durability: Option<DurabilityKind>,
}

impl QosOverrides {
    pub fn over(&self, base: QosConfig) -> QosConfig {
        QosConfig {
            reliability: self.reliability.unwrap_or(base.reliability),
            history_depth: self.history_depth.unwrap_or(base.history_depth),
            durability: self.durability.unwrap_or(base.durability),
        }
    }
}

/// Which message a ROS 2 image source (`source.kind = "ros2"`) subscribes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageMessage {
    /// `sensor_msgs/msg/Image`: raw pixels (`rgb8`, `bgr8`, `mono8`, `yuv422_yuy2`/`yuyv`, `nv12`).
    Image,
    /// `sensor_msgs/msg/CompressedImage`: JPEG (image_transport's `compressed`).
    Compressed,
}

impl ImageMessage {
    /// The default for a topic: `compressed` when it ends in `/compressed` (image_transport's naming).
    pub fn for_topic(topic: &str) -> Self {
        if topic.ends_with("/compressed") { ImageMessage::Compressed } else { ImageMessage::Image }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_fall_back_key_by_key() {
        let o: QosOverrides = toml::from_str("reliability = \"reliable\"").unwrap();
        let q = o.over(QosConfig::sensor_data());
        assert_eq!(q, QosConfig { reliability: ReliabilityKind::Reliable, history_depth: 1, durability: DurabilityKind::Volatile });
        assert_eq!(QosOverrides::default().over(QosConfig::sensor_data()), QosConfig::sensor_data());
        let e = toml::from_str::<QosOverrides>("depth = 3").unwrap_err().to_string();
        assert!(e.contains("depth") && e.contains("history_depth"), "{e}");
    }
}

//! The ROS 2 message types perch publishes, as plain serde structs.
//!
//! ROS 2 (rmw over DDS) puts messages on the wire as XCDR1 "plain CDR": fields in `.msg` order,
//! each aligned to its own size, strings as `u32` length (including the NUL) + bytes + NUL,
//! sequences as `u32` count + elements, fixed arrays without a count. serde's derive visits fields
//! in declaration order, so a struct whose fields follow the `.msg` file serializes correctly with
//! RustDDS' CDR serializer. Field order is the whole contract: the offline and live interop tests
//! (`tests/cdr_interop.rs`, `scripts/live_matrix.py`) decode our bytes with rosbags, rclpy and
//! Cyclone DDS to prove it.

use serde::{Deserialize, Serialize};
use serde_big_array::BigArray;

/// A ROS 2 message type: its package and name as ROS spells them (`vision_msgs`, `Detection2DArray`).
pub trait RosMessage: Serialize {
    const PACKAGE: &'static str;
    const NAME: &'static str;

    /// `package/msg/Name`, as rosidl and rosbags name it.
    fn ros_type() -> String {
        format!("{}/msg/{}", Self::PACKAGE, Self::NAME)
    }
}

macro_rules! ros_message {
    ($t:ty, $pkg:literal, $name:literal) => {
        impl RosMessage for $t {
            const PACKAGE: &'static str = $pkg;
            const NAME: &'static str = $name;
        }
    };
}

/// `builtin_interfaces/msg/Time`: seconds and nanoseconds since the Unix epoch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Time {
    pub sec: i32,
    pub nanosec: u32,
}

impl Time {
    /// From a time since the epoch (a ROS stamp as perch carries it); saturates like [`Self::from_system`].
    pub fn from_duration(d: std::time::Duration) -> Self {
        Self { sec: d.as_secs().min(i32::MAX as u64) as i32, nanosec: d.subsec_nanos() }
    }

    /// As a time since the epoch; a stamp before the epoch (negative `sec`) is the epoch, an
    /// out-of-range `nanosec` is clamped.
    pub fn to_duration(self) -> std::time::Duration {
        std::time::Duration::new(self.sec.max(0) as u64, self.nanosec.min(999_999_999))
    }

    /// From a wall-clock time; saturates at the ends of ROS' 32-bit seconds range.
    pub fn from_system(t: std::time::SystemTime) -> Self {
        match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => {
                let sec = d.as_secs().min(i32::MAX as u64) as i32;
                Self { sec, nanosec: d.subsec_nanos() }
            }
            Err(_) => Self::default(),
        }
    }
}

/// `std_msgs/msg/Header`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub stamp: Time,
    pub frame_id: String,
}

/// `geometry_msgs/msg/Point`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub z: f64,
}

/// `geometry_msgs/msg/Quaternion`. ROS 2's default is the identity rotation (`w = 1`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quaternion {
    pub x: f64,
    pub y: f64,
    pub z: f64,
    pub w: f64,
}

impl Default for Quaternion {
    fn default() -> Self {
        Self { x: 0.0, y: 0.0, z: 0.0, w: 1.0 }
    }
}

/// `geometry_msgs/msg/Pose`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose {
    pub position: Point,
    pub orientation: Quaternion,
}

/// `geometry_msgs/msg/PoseWithCovariance`: row-major 6x6 covariance (x, y, z, rot x, rot y, rot z).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PoseWithCovariance {
    pub pose: Pose,
    #[serde(with = "BigArray")]
    pub covariance: [f64; 36],
}

impl Default for PoseWithCovariance {
    fn default() -> Self {
        Self { pose: Pose::default(), covariance: [0.0; 36] }
    }
}

/// `vision_msgs/msg/Point2D` (pixels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point2D {
    pub x: f64,
    pub y: f64,
}

/// `vision_msgs/msg/Pose2D` (vision_msgs 4.x has its own, not geometry_msgs' deprecated one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Pose2D {
    pub position: Point2D,
    pub theta: f64,
}

/// `vision_msgs/msg/BoundingBox2D`: centre and full width/height in pixels.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BoundingBox2D {
    pub center: Pose2D,
    pub size_x: f64,
    pub size_y: f64,
}

/// `vision_msgs/msg/ObjectHypothesis`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesis {
    pub class_id: String,
    pub score: f64,
}

/// `vision_msgs/msg/ObjectHypothesisWithPose`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ObjectHypothesisWithPose {
    pub hypothesis: ObjectHypothesis,
    pub pose: PoseWithCovariance,
}

/// `vision_msgs/msg/Detection2D`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection2D {
    pub header: Header,
    pub results: Vec<ObjectHypothesisWithPose>,
    pub bbox: BoundingBox2D,
    /// Track id when tracking is on, else empty.
    pub id: String,
}

/// `vision_msgs/msg/Detection2DArray`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Detection2DArray {
    pub header: Header,
    pub detections: Vec<Detection2D>,
}

/// `diagnostic_msgs/msg/KeyValue`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `diagnostic_msgs/msg/DiagnosticStatus`. `level` is a ROS `byte`: one of the `LEVEL_*` constants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticStatus {
    pub level: u8,
    pub name: String,
    pub message: String,
    pub hardware_id: String,
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    pub const OK: u8 = 0;
    pub const WARN: u8 = 1;
    pub const ERROR: u8 = 2;
    pub const STALE: u8 = 3;
}

/// `diagnostic_msgs/msg/DiagnosticArray`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiagnosticArray {
    pub header: Header,
    pub status: Vec<DiagnosticStatus>,
}

/// `sensor_msgs/msg/CompressedImage`: `format` is `"jpeg"` (or `"bgr8; jpeg compressed bgr8"` style).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedImage {
    pub header: Header,
    pub format: String,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// `sensor_msgs/msg/Image`: raw pixels, `step` bytes per row (rows may be padded), `encoding` one
/// of `sensor_msgs/image_encodings` (`rgb8`, `bgr8`, `mono8`, `yuv422_yuy2`, `nv12`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub header: Header,
    pub height: u32,
    pub width: u32,
    pub encoding: String,
    pub is_bigendian: u8,
    pub step: u32,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

ros_message!(Time, "builtin_interfaces", "Time");
ros_message!(Header, "std_msgs", "Header");
ros_message!(Point, "geometry_msgs", "Point");
ros_message!(Quaternion, "geometry_msgs", "Quaternion");
ros_message!(Pose, "geometry_msgs", "Pose");
ros_message!(PoseWithCovariance, "geometry_msgs", "PoseWithCovariance");
ros_message!(Point2D, "vision_msgs", "Point2D");
ros_message!(Pose2D, "vision_msgs", "Pose2D");
ros_message!(BoundingBox2D, "vision_msgs", "BoundingBox2D");
ros_message!(ObjectHypothesis, "vision_msgs", "ObjectHypothesis");
ros_message!(ObjectHypothesisWithPose, "vision_msgs", "ObjectHypothesisWithPose");
ros_message!(Detection2D, "vision_msgs", "Detection2D");
ros_message!(Detection2DArray, "vision_msgs", "Detection2DArray");
ros_message!(KeyValue, "diagnostic_msgs", "KeyValue");
ros_message!(DiagnosticStatus, "diagnostic_msgs", "DiagnosticStatus");
ros_message!(DiagnosticArray, "diagnostic_msgs", "DiagnosticArray");
ros_message!(CompressedImage, "sensor_msgs", "CompressedImage");
ros_message!(Image, "sensor_msgs", "Image");

/// The 4-byte RTPS encapsulation header of little-endian plain CDR (`CDR_LE`, options 0).
pub const CDR_LE_HEADER: [u8; 4] = [0x00, 0x01, 0x00, 0x00];

/// Serialize `msg` exactly as the publisher puts it on the wire (encapsulation header + CDR body).
/// Used by the offline interop tests and by anyone recording perch messages to a bag.
pub fn to_cdr<M: Serialize>(msg: &M) -> anyhow::Result<Vec<u8>> {
    let body = ros2_client::dds::rustdds::cdr_encoding::to_vec::<M, byteorder::LittleEndian>(msg)
        .map_err(|e| anyhow::anyhow!("CDR serialization failed: {e}"))?;
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&CDR_LE_HEADER);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decode a CDR sample (with its 4-byte encapsulation header, little- or big-endian).
pub fn from_cdr<M: serde::de::DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<M> {
    use ros2_client::dds::rustdds::cdr_encoding::from_bytes;
    anyhow::ensure!(bytes.len() >= 4, "CDR sample is {} bytes, shorter than its 4-byte header", bytes.len());
    let body = &bytes[4..];
    let (msg, _) = match (bytes[0], bytes[1]) {
        (0x00, 0x01) => from_bytes::<M, byteorder::LittleEndian>(body),
        (0x00, 0x00) => from_bytes::<M, byteorder::BigEndian>(body),
        (a, b) => anyhow::bail!("unsupported CDR encapsulation {a:#04x} {b:#04x} (expected CDR_LE or CDR_BE)"),
    }
    .map_err(|e| anyhow::anyhow!("CDR deserialization failed: {e}"))?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_hand_written_cdr() {
        let h = Header { stamp: Time { sec: 1, nanosec: 2 }, frame_id: "cam".into() };
        let bytes = to_cdr(&h).unwrap();
        let expected: Vec<u8> = [
            &CDR_LE_HEADER[..],
            &1i32.to_le_bytes(),
            &2u32.to_le_bytes(),
            &4u32.to_le_bytes(), // length including NUL
            b"cam\0",
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(from_cdr::<Header>(&bytes).unwrap(), h);
    }

    #[test]
    fn doubles_after_a_string_are_aligned_to_8_from_the_body_start() {
        let h = ObjectHypothesis { class_id: "a".into(), score: 0.5 };
        let bytes = to_cdr(&h).unwrap();
        // body: u32 len (4) + "a\0" (2) -> offset 6, pad to 8, f64.
        assert_eq!(bytes.len(), 4 + 8 + 8);
        assert_eq!(&bytes[4 + 8..], &0.5f64.to_le_bytes());
    }

    #[test]
    fn pose_with_covariance_is_fixed_size_without_a_count() {
        let p = PoseWithCovariance::default();
        // 7 f64 pose + 36 f64 covariance, no sequence length.
        assert_eq!(to_cdr(&p).unwrap().len(), 4 + 43 * 8);
    }

    #[test]
    fn type_names() {
        assert_eq!(Detection2DArray::ros_type(), "vision_msgs/msg/Detection2DArray");
        assert_eq!(DiagnosticArray::ros_type(), "diagnostic_msgs/msg/DiagnosticArray");
    }
}

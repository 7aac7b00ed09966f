//! perch's ROS 2 publish stage: detections as `vision_msgs/msg/Detection2DArray`, diagnostics as
//! `diagnostic_msgs/msg/DiagnosticArray` and an optional JPEG overlay as
//! `sensor_msgs/msg/CompressedImage`, spoken natively over DDS with ros2-client (no ROS install).
//! `conf` and `iou` are ROS 2 parameters backed by [`LiveParams`].

pub mod config;
pub mod convert;
pub mod msg;
pub mod overlay;
pub mod params;
pub mod stage;

#[cfg(all(feature = "humble", feature = "jazzy"))]
compile_error!(
    "perch-ros2: features `humble` and `jazzy` select different GID layouts; build Humble with \
     `--no-default-features --features humble`"
);
#[cfg(not(any(feature = "humble", feature = "jazzy")))]
compile_error!("perch-ros2: enable `jazzy` (default: Iron, Jazzy, Kilted) or `humble`");

pub use config::{ClassIdMode, DurabilityKind, QosConfig, ReliabilityKind, Ros2Config};
pub use msg::RosMessage;
pub use params::LiveParams;
pub use stage::{PublishObserver, Ros2PublishStage};

/// The ROS 2 distribution family this build's GID layout fits.
pub const DISTRO_FAMILY: &str = if cfg!(feature = "humble") { "humble" } else { "iron+ (jazzy, kilted)" };

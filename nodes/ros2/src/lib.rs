#![doc = include_str!("../README.md")]

pub mod config;
pub mod convert;
pub mod image_in;
pub mod image_seed;
pub mod image_source;
pub mod msg;
pub mod node;
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

pub use config::{ClassIdMode, DurabilityKind, QosConfig, ReliabilityKind, Ros2Config, ToQosProfile};
pub use image_source::{open_image_source, ImageSourceConfig, Ros2ImageSource};
pub use msg::RosMessage;
pub use node::Ros2Node;
pub use params::LiveParams;
pub use stage::{PublishObserver, Ros2PublishStage};

/// The ROS 2 distribution family this build's GID layout fits.
pub const DISTRO_FAMILY: &str = if cfg!(feature = "humble") { "humble" } else { "iron+ (jazzy, kilted)" };

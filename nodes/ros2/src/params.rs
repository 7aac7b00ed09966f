//! Detector parameters that ROS 2 users can change while perch runs (`ros2 param set /perch/perch conf 0.5`).
//!
//! The shared type lives in `perch_pipeline` (the detect stage reads it at the start of every frame);
//! this stage's parameter services write it. Re-exported here for convenience.

pub use perch_pipeline::params::check_unit;
pub use perch_pipeline::LiveParams;

#![doc = include_str!("../README.md")]

pub mod draw;
pub mod save;
pub mod tap;
pub mod video;

pub use draw::{Annotator, Canvas};
pub use save::{next_run_dir, output_path, save_rgb};
pub use tap::{to_rgb8, VideoTap};
pub use video::{VideoTarget, VideoWriter};

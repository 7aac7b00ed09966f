#![doc = include_str!("../README.md")]

pub mod fused;
pub mod geometry;
mod jpeg;
pub mod pixel;
pub mod reference;
mod stage;

use anyhow::ensure;
use perch_pipeline::{ImageBuf, Letterbox, TensorBuf};

pub use fused::{Path, Preprocessor};
pub use jpeg::decode_jpeg_into;
pub use stage::{PreprocessConfig, PreprocessStage};

/// The padding value of Ultralytics' LetterBox (114 of 255), in tensor units.
pub const PAD_VALUE: f32 = 114.0 / 255.0;

/// Largest accepted model input side (guards against absurd configs allocating gigabytes).
pub const MAX_TARGET: u32 = 8192;

pub(crate) fn check_target(dst_w: u32, dst_h: u32) -> anyhow::Result<()> {
    ensure!(
        (1..=MAX_TARGET).contains(&dst_w) && (1..=MAX_TARGET).contains(&dst_h),
        "preprocess: target size {dst_w}x{dst_h} is out of range (each side 1..={MAX_TARGET})"
    );
    Ok(())
}

/// Letterbox `src` into `out` as a `[3, dst_h, dst_w]` f32 RGB tensor with values in 0..1.
///
/// Equals [`reference::letterbox_into_reference`] within 0.01 LSB of the 0..255 scale (only f32
/// rounding differs). `out` is reshaped in place: once its capacity fits, nothing is allocated.
/// Errors when the buffer length does not match the format and size, or the target is invalid.
pub fn letterbox_into(src: &ImageBuf, dst_w: u32, dst_h: u32, out: &mut TensorBuf) -> anyhow::Result<Letterbox> {
    thread_local! {
        static PRE: std::cell::RefCell<fused::Preprocessor> = std::cell::RefCell::new(fused::Preprocessor::new(fused::Path::Auto));
    }
    PRE.with(|p| p.borrow_mut().run(src, dst_w, dst_h, out))
}

//! Depthwise convolution, direct.

use crate::{Job, Variant};

pub(crate) fn run(_variant: Variant, _job: Job) {
    unreachable!("no SIMD depthwise kernel is available yet")
}

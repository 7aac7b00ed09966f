//! Dense (groups = 1) convolution as a GEMM over column tiles.

use crate::{Job, Variant};

pub(crate) fn run(_variant: Variant, _job: Job) {
    unreachable!("no SIMD dense kernel is available yet")
}

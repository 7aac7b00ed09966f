//! Depthwise convolution, direct.

use crate::{Job, Variant};

pub(crate) fn run(_variant: Variant, job: Job) {
    crate::reference::run(job)
}

//! Depthwise convolution (groups = c_in = c_out), direct: per channel the plane is widened once
//! to i16 into a buffer bordered with the zero point, then 16 output columns at a time
//! accumulate u8 x s8 products into i32 over all k*k taps (no edge cases in the loop), then the
//! epilogue runs over the channel's whole output plane. Strides 1 and 2 have SIMD kernels;
//! other strides run the reference.

use rayon::prelude::*;

use crate::dense::Epilogue;
use crate::epilogue::res_seg;
use crate::pack::{dw_row, RawSum};
use crate::{Job, SharedOut, Variant};

/// Output columns per kernel step.
pub(crate) const DW_NR: usize = 16;

/// One channel: `acc[oy * owp + ox] = sum pad[(oy*s + ky) * pw + ox*s + kx] * w[ky * kp2 + kx]`
/// over ky, kx < k for all oy < oh, ox < owp (owp a multiple of DW_NR, kp2 = `dw_row(k)`).
///
/// # Safety
/// `pad` holds (oh - 1) * s + k rows of `pw >= padded_width(..)` values, `w` k * kp2 weights
/// (zero past k in each row), `acc` oh * owp values; the CPU has the kernel's instructions.
pub(crate) type DwChannel = unsafe fn(pad: &[i16], pw: usize, w: &[i16], k: usize, s: usize, oh: usize, owp: usize, acc: &mut [i32]);

pub(crate) struct DwKernel {
    pub channel: DwChannel,
    pub epilogue: Epilogue,
}

fn kernel(v: Variant) -> DwKernel {
    match v {
        #[cfg(target_arch = "x86_64")]
        Variant::Avx2 | Variant::Avx2Madd7 | Variant::AvxVnni | Variant::Avx512Vnni => crate::x86::dw_kernel(v),
        #[cfg(target_arch = "aarch64")]
        Variant::Neon | Variant::NeonDotprod => crate::neon::dw_kernel(),
        _ => unreachable!("conv_with only dispatches available SIMD variants here"),
    }
}

/// Width of the padded plane: the input with its borders, and room for the last 16-column
/// block's reads (16 values from each tap column up to `dw_row(k)`, 32 at stride 2).
fn padded_width(w: usize, pad: usize, k: usize, s: usize, owp: usize) -> usize {
    (w + 2 * pad).max(s * owp + dw_row(k) + 2)
}

thread_local! {
    static DW_SCRATCH: std::cell::Cell<(Vec<i16>, Vec<i32>)> = const { std::cell::Cell::new((Vec::new(), Vec::new())) };
}

pub(crate) fn run(variant: Variant, job: Job) {
    let s = *job.p.shape();
    if s.stride > 2 {
        crate::reference::run(job);
        return;
    }
    let kern = kernel(variant);
    let Job { p, inp, act, residual, mut out } = job;
    let (k, st, pad) = (s.k, s.stride, s.pad);
    let (h, w, oh, ow) = (inp.h, inp.w, inp.oh, inp.ow);
    let ohw = oh * ow;
    let owp = ow.div_ceil(DW_NR) * DW_NR;
    let pw = padded_width(w, pad, k, st, owp);
    let ph = (h + 2 * pad).max((oh - 1) * st + k);
    let zp = p.input().zero_point;
    let wst = k * dw_row(k);
    let shared = SharedOut::new(&mut out);
    let channel = |c: usize| {
        let (mut buf, mut acc) = DW_SCRATCH.take();
        buf.clear();
        buf.resize(pw * ph, zp as i16);
        let plane = inp.planes[c];
        for y in 0..h {
            for (d, &v) in buf[(y + pad) * pw + pad..][..w].iter_mut().zip(&plane[y * w..(y + 1) * w]) {
                *d = v as i16;
            }
        }
        acc.resize(oh * owp, 0);
        // SAFETY: buf is ph x pw with the slack `padded_width` adds, the channel's weights are
        // k * dw_row(k) values, acc oh * owp; `conv_with` checked the variant's instructions.
        unsafe { (kern.channel)(&buf, pw, &p.dw16()[c * wst..(c + 1) * wst], k, st, oh, owp, &mut acc) };
        if owp != ow {
            for oy in 1..oh {
                acc.copy_within(oy * owp..oy * owp + ow, oy * ow);
            }
        }
        // SAFETY: channel c's outputs [c*ohw, (c+1)*ohw) are written by this task only and lie
        // inside the output (checked by `Job::new`).
        let seg = unsafe { shared.seg(c * ohw, ohw) };
        // SAFETY: `conv_with` checked the variant's instructions.
        unsafe { (kern.epilogue)(&acc[..ohw], p.chan(c, RawSum::U8), act, res_seg(&residual, c * ohw, ohw), seg) };
        DW_SCRATCH.set((buf, acc));
    };
    if s.c_out * ohw * k * k < (1 << 19) || rayon::current_num_threads() == 1 {
        (0..s.c_out).for_each(channel);
    } else {
        (0..s.c_out).into_par_iter().for_each(channel);
    }
}

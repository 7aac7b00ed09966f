//! The plain scalar reference: a direct convolution summing (x - zp) * w in i32, then the scalar
//! epilogue. The oracle every SIMD variant is tested against, and the fallback on CPUs without
//! SIMD.

use crate::epilogue::{out_params, res_seg, run_scalar, OutSeg};
use crate::{Act, Error, Job, Output, PackedConv, Residual};

/// The same as [`crate::conv`], computed by the plain scalar reference.
pub fn conv_reference(
    p: &PackedConv,
    parts: &[&[u8]],
    h: usize,
    w: usize,
    act: Act,
    residual: Residual,
    out: Output,
) -> Result<(), Error> {
    let job = Job::new(p, parts, h, w, act, residual, out)?;
    run(job);
    Ok(())
}

fn run(job: Job) {
    let Job { p, planes, h, w, oh, ow, act, residual, mut out } = job;
    let s = *p.shape();
    let (k, st, pad) = (s.k, s.stride, s.pad);
    let cin_g = s.c_in / s.groups;
    let kdim = s.kdim();
    let zp = p.input().zero_point as i32;
    let hw_out = oh * ow;
    let mut acc = vec![0i32; hw_out];
    for co in 0..s.c_out {
        let wrow = &p.weights()[co * kdim..(co + 1) * kdim];
        let first = if s.is_depthwise() { co } else { 0 };
        for oy in 0..oh {
            for ox in 0..ow {
                let mut a = 0i32;
                for ci in 0..cin_g {
                    let plane = planes[first + ci];
                    for ky in 0..k {
                        let iy = (oy * st + ky) as isize - pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue; // padding: x = zp contributes (zp - zp) * w = 0
                        }
                        for kx in 0..k {
                            let ix = (ox * st + kx) as isize - pad as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let x = plane[iy as usize * w + ix as usize] as i32;
                            a += (x - zp) * wrow[(ci * k + ky) * k + kx] as i32;
                        }
                    }
                }
                acc[oy * ow + ox] = a;
            }
        }
        let res = res_seg(&residual, co * hw_out, hw_out);
        let seg = match &mut out {
            Output::U8(d, q) => {
                let (inv, zp) = out_params(*q);
                OutSeg::U8(&mut d[co * hw_out..(co + 1) * hw_out], inv, zp)
            }
            Output::F32(d) => OutSeg::F32(&mut d[co * hw_out..(co + 1) * hw_out]),
        };
        run_scalar(&acc, p.chan_exact(co), act, res, seg);
    }
}

//! The element-wise and pooling helpers a quantized model needs around its convs. Each has one
//! scalar body; on x86_64 it is also compiled with AVX2 and picked at run time (the same IEEE
//! operations, so the same results, only vectorised).

use rayon::prelude::*;

use crate::epilogue::{dequant, requant};
use crate::{Error, QParams};

/// Runs `f` compiled with AVX2 when the CPU has it. `f` must be `#[inline(always)]`.
macro_rules! with_avx2 {
    ($name:ident, fn($($arg:ident : $ty:ty),*) $body:block) => {
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) {
                generic($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            {
                if crate::x86::has_avx2() {
                    // SAFETY: AVX2 was detected just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

fn same_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Len { what, expected, got })
    }
}

/// One value: `clamp(round_half_even(x / scale) + zero_point, 0, 255)`, the division done as a
/// multiplication by [`QParams::inv_scale`] (exactly what the conv epilogue does).
#[inline]
pub fn quantize_value(x: f32, q: QParams) -> u8 {
    requant(x, q.inv_scale(), q.zero_point as i32)
}

with_avx2!(quantize_slice, fn(src: &[f32], inv: f32, zp: i32, dst: &mut [u8]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = requant(x, inv, zp);
    }
});

with_avx2!(dequantize_slice, fn(src: &[u8], zp: i32, scale: f32, dst: &mut [f32]) {
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = dequant(x, zp, scale);
    }
});

with_avx2!(requantize_float, fn(src: &[u8], from: QParams, to: QParams, dst: &mut [u8]) {
    let (zf, sf) = (from.zero_point as i32, from.scale);
    let (inv, zt) = (to.inv_scale(), to.zero_point as i32);
    for (d, &x) in dst.iter_mut().zip(src) {
        *d = requant(dequant(x, zf, sf), inv, zt);
    }
});

/// Each output byte depends on its input byte alone, so with AVX512-VBMI the two steps become a
/// 256-entry table (made with the same scalar rule, so the results are the same) looked up 64
/// bytes at a time; elsewhere the two steps run vectorised in f32.
fn requantize_slice(src: &[u8], from: QParams, to: QParams, dst: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        // Making the table costs 256 conversions: worth it from about 1 KiB.
        if src.len() >= 1024 && crate::x86::has_avx512_vbmi() {
            let mut lut = [0u8; 256];
            requantize_float(&std::array::from_fn::<u8, 256, _>(|i| i as u8), from, to, &mut lut);
            // SAFETY: AVX512-VBMI (and BW) were detected just above.
            return chunked(src, dst, |s, d| unsafe { crate::x86::lookup_avx512_vbmi(&lut, s, d) });
        }
    }
    chunked(src, dst, |s, d| requantize_float(s, from, to, d))
}

/// `f` over matching chunks of `src` and `dst` (equal lengths), split over the caller's rayon pool
/// when they are long: between two convs these element-wise passes would otherwise run on one
/// thread while the others wait (on 2 threads the requantization's wall time was twice its share
/// of CPU samples).
fn chunked<S: Sync, D: Send>(src: &[S], dst: &mut [D], f: impl Fn(&[S], &mut [D]) + Sync) {
    const MIN: usize = 1 << 15;
    let t = rayon::current_num_threads();
    if t == 1 || src.len() < 2 * MIN {
        return f(src, dst);
    }
    let chunk = src.len().div_ceil(t).next_multiple_of(64).max(MIN);
    src.par_chunks(chunk).zip(dst.par_chunks_mut(chunk)).for_each(|(s, d)| f(s, d));
}

/// f32 -> u8 with [`quantize_value`]'s rule (NaN becomes 0 - zero point saturated, i.e. 0).
pub fn quantize(src: &[f32], q: QParams, dst: &mut [u8]) -> Result<(), Error> {
    q.check("quantize")?;
    same_len("quantize destination", src.len(), dst.len())?;
    chunked(src, dst, |s, d| quantize_slice(s, q.inv_scale(), q.zero_point as i32, d));
    Ok(())
}

/// u8 -> f32: `(q - zero_point) as f32 * scale`.
pub fn dequantize(src: &[u8], q: QParams, dst: &mut [f32]) -> Result<(), Error> {
    same_len("dequantize destination", src.len(), dst.len())?;
    chunked(src, dst, |s, d| dequantize_slice(s, q.zero_point as i32, q.scale, d));
    Ok(())
}

/// u8 (from) -> u8 (to): dequantize then quantize, the same two steps as the f32 helpers.
pub fn requantize(src: &[u8], from: QParams, to: QParams, dst: &mut [u8]) -> Result<(), Error> {
    from.check("requantize source")?;
    to.check("requantize destination")?;
    same_len("requantize destination", src.len(), dst.len())?;
    if from == to {
        dst.copy_from_slice(src);
    } else {
        requantize_slice(src, from, to, dst);
    }
    Ok(())
}

with_avx2!(maxpool_plane, fn(plane: &[u8], h: usize, w: usize, p: usize, tmp: &mut [u8], out: &mut [u8]) {
    // Rows: tmp[y][x] = max plane[y][x-p..=x+p] clipped (the padding never wins a max).
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        let trow = &mut tmp[y * w..(y + 1) * w];
        trow.copy_from_slice(row);
        for d in 1..=p.min(w - 1) {
            for (t, &v) in trow[..w - d].iter_mut().zip(&row[d..]) {
                *t = (*t).max(v);
            }
            for (t, &v) in trow[d..].iter_mut().zip(&row[..w - d]) {
                *t = (*t).max(v);
            }
        }
    }
    // Columns.
    for y in 0..h {
        let orow = &mut out[y * w..(y + 1) * w];
        orow.copy_from_slice(&tmp[y * w..(y + 1) * w]);
        for yy in y.saturating_sub(p)..(y + p + 1).min(h) {
            for (o, &v) in orow.iter_mut().zip(&tmp[yy * w..(yy + 1) * w]) {
                *o = (*o).max(v);
            }
        }
    }
});

/// Max pooling with stride 1 and "same" padding k/2 (SPPF's `nn.MaxPool2d(k, 1, k // 2)`) on u8
/// CHW planes `[c, h*w]`. A max commutes with the (increasing) dequantization, so the result
/// keeps the input's quantization; the padding never wins.
pub fn maxpool_same(src: &[u8], c: usize, h: usize, w: usize, k: usize, dst: &mut [u8]) -> Result<(), Error> {
    same_len("maxpool source", c * h * w, src.len())?;
    same_len("maxpool destination", c * h * w, dst.len())?;
    if h == 0 || w == 0 || c == 0 {
        return Ok(());
    }
    let hw = h * w;
    let p = k / 2;
    let run = |(plane, o): (&[u8], &mut [u8])| {
        let mut tmp = vec![0u8; hw];
        maxpool_plane(plane, h, w, p, &mut tmp, o);
    };
    if c * hw < 1 << 15 {
        src.chunks_exact(hw).zip(dst.chunks_exact_mut(hw)).for_each(run);
    } else {
        src.par_chunks_exact(hw).zip(dst.par_chunks_exact_mut(hw)).for_each(run);
    }
    Ok(())
}

with_avx2!(upsample_plane, fn(plane: &[u8], h: usize, w: usize, out: &mut [u8]) {
    let w2 = 2 * w;
    for y in 0..h {
        let (r0, r1) = out[2 * y * w2..(2 * y + 2) * w2].split_at_mut(w2);
        for (o, &v) in r0.chunks_exact_mut(2).zip(&plane[y * w..(y + 1) * w]) {
            o[0] = v;
            o[1] = v;
        }
        r1.copy_from_slice(r0);
    }
});

/// Nearest-neighbour 2x upsampling (`nn.Upsample(scale_factor=2, mode="nearest")`) of u8 CHW
/// planes `[c, h*w]` into `[c, 2h*2w]`; the quantization is unchanged.
pub fn upsample2(src: &[u8], c: usize, h: usize, w: usize, dst: &mut [u8]) -> Result<(), Error> {
    same_len("upsample source", c * h * w, src.len())?;
    same_len("upsample destination", 4 * c * h * w, dst.len())?;
    if h == 0 || w == 0 || c == 0 {
        return Ok(());
    }
    let hw = h * w;
    let run = |(plane, o): (&[u8], &mut [u8])| upsample_plane(plane, h, w, o);
    if c * hw < 1 << 15 {
        src.chunks_exact(hw).zip(dst.chunks_exact_mut(4 * hw)).for_each(run);
    } else {
        src.par_chunks_exact(hw).zip(dst.par_chunks_exact_mut(4 * hw)).for_each(run);
    }
    Ok(())
}

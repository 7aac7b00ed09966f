//! The scalar reference: the definition of the correct tensor, written for clarity, not speed.
//!
//! For every tensor element: pad value `114 / 255` outside the content rectangle; inside it, the
//! bilinear sample (see [`crate::geometry`]) of the source converted to RGB8 (see [`crate::pixel`]):
//! `h0 = p00 + fx (p01 - p00)`, `h1 = p10 + fx (p11 - p10)`, `v = h0 + fy (h1 - h0)`, value `v / 255`.
//! Unlike OpenCV we keep `v` unrounded (OpenCV stores u8, then Ultralytics divides by 255), so the
//! tensor differs from Ultralytics' by at most OpenCV's rounding (≤ 0.5 LSB plus its 11-bit weights).

use perch_pipeline::{ImageBuf, Letterbox, TensorBuf};

use crate::geometry::tap;
use crate::pixel::{rgb_at, validate};
use crate::{check_target, PAD_VALUE};

/// Letterbox `src` into a `3 x dst_h x dst_w` tensor the slow, obviously correct way.
pub fn letterbox_into_reference(
    src: &ImageBuf,
    dst_w: u32,
    dst_h: u32,
    out: &mut TensorBuf,
) -> anyhow::Result<Letterbox> {
    validate(src)?;
    check_target(dst_w, dst_h)?;
    let lb = Letterbox::new(src.width, src.height, dst_w, dst_h);
    let (w, h) = (dst_w as usize, dst_h as usize);
    out.reshape([3, h, w]);
    out.data.fill(PAD_VALUE);
    for cy in 0..lb.content_h {
        let ty = tap(cy, src.height, lb.content_h);
        for cx in 0..lb.content_w {
            let tx = tap(cx, src.width, lb.content_w);
            let p00 = rgb_at(src, tx.i0, ty.i0);
            let p01 = rgb_at(src, tx.i1, ty.i0);
            let p10 = rgb_at(src, tx.i0, ty.i1);
            let p11 = rgb_at(src, tx.i1, ty.i1);
            let (oy, ox) = ((cy + lb.pad_top) as usize, (cx + lb.pad_left) as usize);
            for c in 0..3 {
                let (a, b) = (p00[c] as f32, p01[c] as f32);
                let h0 = a + tx.f * (b - a);
                let (a, b) = (p10[c] as f32, p11[c] as f32);
                let h1 = a + tx.f * (b - a);
                let v = h0 + ty.f * (h1 - h0);
                out.data[(c * h + oy) * w + ox] = v / 255.0;
            }
        }
    }
    Ok(lb)
}

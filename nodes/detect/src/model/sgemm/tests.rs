//! Every micro-kernel this CPU runs (x86: AVX-512, AVX2, portable; under qemu-aarch64: NEON,
//! portable) against a direct f64 convolution, on shapes that hit every edge: channel counts that
//! do not fill a panel, maps that do not fill a strip, strides, padding, split inputs, residuals,
//! and maps small enough that the work splits over panels instead of strips.

use super::*;
use crate::model::kernels::silu;

fn rng(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// act(conv(x, w) + b) + r in f64, straight from the definition.
fn direct(x: &[f32], g: &ConvGeom, w: &[f32], b: &[f32], act: Act, r: Option<&[f32]>) -> Vec<f64> {
    let (oh, ow) = g.out_hw();
    let mut out = vec![0f64; g.c_out * oh * ow];
    for co in 0..g.c_out {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut acc = b[co] as f64;
                for ci in 0..g.c_in {
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                            let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                            if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                continue;
                            }
                            let wv = w[((co * g.c_in + ci) * g.k + ky) * g.k + kx] as f64;
                            acc += wv * x[(ci * g.h + iy as usize) * g.w + ix as usize] as f64;
                        }
                    }
                }
                if act == Act::Silu {
                    acc = silu(acc as f32) as f64;
                }
                let j = (co * oh + oy) * ow + ox;
                out[j] = acc + r.map_or(0.0, |r| r[j] as f64);
            }
        }
    }
    out
}

/// A random input, weights (scaled by `w_scale`), bias and residual for the conv `g`.
fn random_conv(r: &mut impl FnMut() -> f32, g: &ConvGeom, w_scale: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (oh, ow) = g.out_hw();
    let x = (0..g.c_in * g.h * g.w).map(|_| r()).collect();
    let wt = (0..g.c_out * g.c_in * g.k * g.k).map(|_| r() * w_scale).collect();
    let b = (0..g.c_out).map(|_| r()).collect();
    let res = (0..g.c_out * oh * ow).map(|_| r()).collect();
    (x, wt, b, res)
}

fn assert_close(got: &[f32], want: &[f64], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let tol = 1e-4 * (1.0 + w.abs());
        assert!((*g as f64 - w).abs() <= tol, "{what}: value {i}: {g} vs {w}");
    }
}

#[test]
fn every_kernel_matches_the_direct_conv() {
    // (c_in, h, w, c_out, k, stride)
    let shapes = [
        (3, 17, 23, 16, 3, 2),  // the stem: k = 27, odd map
        (16, 9, 11, 19, 3, 1),  // c_out fills no panel size
        (8, 40, 40, 8, 3, 1),   // many strips, one panel
        (32, 5, 5, 64, 3, 2),   // 9 outputs: fewer strips than threads, split over panels
        (24, 13, 7, 5, 1, 1),   // 1x1, five output channels
        (64, 20, 20, 48, 1, 1), // 1x1, 400 pixels
        (7, 6, 6, 9, 5, 1),     // 5x5 with padding 2
        (5, 8, 10, 12, 3, 2),   // stride 2 on even sides
        (4, 1, 1, 8, 3, 1),     // a 1 x 1 map: every tap but the centre reads padding
        (6, 2, 3, 8, 3, 2),     // stride 2, one output row
        (3, 9, 14, 10, 5, 2),   // 5x5 stride 2
    ];
    let mut r = rng(7);
    for &(c_in, h, w, c_out, k, stride) in &shapes {
        let g = ConvGeom { c_in, h, w, c_out, k, stride, pad: k / 2 };
        let (x, wt, b, res) = random_conv(&mut r, &g, 0.3);
        for (act, rd) in [(Act::Silu, None), (Act::None, Some(&res[..])), (Act::Silu, Some(&res[..]))] {
            let want = direct(&x, &g, &wt, &b, act, rd);
            for isa in Isa::available() {
                let pw = PackedW::for_isa(&wt, c_out, c_in * k * k, isa);
                let what = format!("{isa:?} {c_in}x{h}x{w} -> {c_out} k{k} s{stride} {act:?} residual {}", rd.is_some());
                let got = if k == 1 { conv1x1(&[&x], h * w, &pw, &b, act, rd) } else { conv_im2col(&x, &g, &pw, &b, act, rd) };
                assert_close(&got, &want, &what);
                if k > 1 {
                    let pt = PackedW::for_taps_isa(&wt, c_out, c_in, k * k, isa);
                    assert_close(&conv_taps(&x, &g, &pt, &b, act, rd), &want, &format!("{what} (taps)"));
                }
            }
        }
    }
}

#[test]
fn a_split_input_equals_its_concatenation() {
    let mut r = rng(11);
    let (hw, c_out) = (7 * 9, 12);
    let parts: Vec<Vec<f32>> = [5usize, 16, 3].iter().map(|c| (0..c * hw).map(|_| r()).collect()).collect();
    let cat: Vec<f32> = parts.concat();
    let c_in = cat.len() / hw;
    let wt: Vec<f32> = (0..c_out * c_in).map(|_| r()).collect();
    let b: Vec<f32> = (0..c_out).map(|_| r()).collect();
    let g = ConvGeom { c_in, h: 7, w: 9, c_out, k: 1, stride: 1, pad: 0 };
    let want = direct(&cat, &g, &wt, &b, Act::Silu, None);
    let refs: Vec<&[f32]> = parts.iter().map(|p| &p[..]).collect();
    for isa in Isa::available() {
        let pw = PackedW::for_isa(&wt, c_out, c_in, isa);
        assert_close(&conv1x1(&refs, hw, &pw, &b, Act::Silu, None), &want, &format!("{isa:?} split"));
    }
}

/// Shapes whose k blocks are read in place (`Rhs::in_place`): concat parts and taps of at least
/// `MIN_SEGMENT` rows, blocks spanning several parts or taps, blocks that fall back to the copy
/// mid-conv (a 16-row piece of a tap), and maps whose last strip is copied.
#[test]
fn in_place_strips_match_the_direct_conv() {
    let mut r = rng(13);
    // (c_in, h, w, c_out, k, stride)
    let shapes = [
        (32, 12, 30, 16, 3, 1),  // 128-row blocks over four 32-channel taps
        (48, 14, 22, 9, 3, 2),   // stride 2: 48 + 48 + 32, then a 16-row tail of a tap (copied)
        (200, 6, 50, 8, 3, 1),   // blocks crossing a tap boundary mid-channel (72 + 56)
        (160, 10, 20, 24, 1, 1), // 1x1, two k blocks, last strip past the map's end
    ];
    for &(c_in, h, w, c_out, k, stride) in &shapes {
        let g = ConvGeom { c_in, h, w, c_out, k, stride, pad: k / 2 };
        let (x, wt, b, res) = random_conv(&mut r, &g, 0.1);
        let want = direct(&x, &g, &wt, &b, Act::Silu, Some(&res));
        for isa in Isa::available() {
            let what = format!("{isa:?} {c_in}x{h}x{w} -> {c_out} k{k} s{stride}");
            let got = if k == 1 {
                conv1x1(&[&x], h * w, &PackedW::for_isa(&wt, c_out, c_in, isa), &b, Act::Silu, Some(&res))
            } else {
                conv_taps(&x, &g, &PackedW::for_taps_isa(&wt, c_out, c_in, k * k, isa), &b, Act::Silu, Some(&res))
            };
            assert_close(&got, &want, &what);
        }
    }
    // A 1x1 over parts of 40 and 32 channels (read in place) and over 40, 16, 16 (the block is
    // copied: 16-row parts are too short): the same values in the same order, so equal bits.
    let hw = 9 * 20;
    let x: Vec<f32> = (0..72 * hw).map(|_| r()).collect();
    let wt: Vec<f32> = (0..20 * 72).map(|_| r() * 0.1).collect();
    let b: Vec<f32> = (0..20).map(|_| r()).collect();
    for isa in Isa::available() {
        let pw = PackedW::for_isa(&wt, 20, 72, isa);
        let two = conv1x1(&[&x[..40 * hw], &x[40 * hw..]], hw, &pw, &b, Act::Silu, None);
        let three = conv1x1(&[&x[..40 * hw], &x[40 * hw..56 * hw], &x[56 * hw..]], hw, &pw, &b, Act::Silu, None);
        assert!(two == three, "{isa:?}: in place and copied strips differ");
    }
}

#[test]
fn packing_pads_the_last_panel_with_zeros() {
    let w: Vec<f32> = (0..5 * 3).map(|v| v as f32 + 1.0).collect();
    let p = PackedW::for_isa(&w, 5, 3, Isa::Portable); // MR = 4: two panels, the second 1 row
    assert_eq!(p.data.len(), 2 * 3 * 4);
    // panel 0, k = 0: rows 0..4 of column 0
    assert_eq!(&p.data[..4], &[1.0, 4.0, 7.0, 10.0]);
    // panel 1, k = 2: row 4 of column 2, then three zero rows
    assert_eq!(&p.data[12 + 8..12 + 12], &[15.0, 0.0, 0.0, 0.0]);
}


/// softmax(q^T k / sqrt(d)) v per (area, head), straight from the definition, in f64.
fn attention_direct(qkv: &[f32], c: usize, n: usize, heads: usize, area: usize) -> Vec<f64> {
    let d = c / heads;
    let na = n / area;
    let mut out = vec![0f64; c * n];
    let at = |ch: usize, tok: usize| qkv[ch * n + tok] as f64;
    for a in 0..area {
        for h in 0..heads {
            let (qc, kc, vc) = (h * 3 * d, h * 3 * d + d, h * 3 * d + 2 * d);
            for i in 0..na {
                let s: Vec<f64> = (0..na)
                    .map(|j| (0..d).map(|t| at(qc + t, a * na + i) * at(kc + t, a * na + j)).sum::<f64>() / (d as f64).sqrt())
                    .collect();
                let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for t in 0..d {
                    out[(h * d + t) * n + a * na + i] = (0..na).map(|j| e[j] * at(vc + t, a * na + j)).sum::<f64>() / z;
                }
            }
        }
    }
    out
}

#[test]
fn area_attention_matches_the_definition() {
    let mut r = rng(5);
    // (c, n, heads, area): YOLOv12n-like (d = 32), tokens that fill no strip or panel, one area,
    // a head size that fills no panel (d = 12), more queries than one block holds.
    for &(c, n, heads, area) in &[(64usize, 4 * 100, 2usize, 4usize), (32, 53, 1, 1), (24, 2 * 37, 2, 2), (64, 1200, 2, 1)] {
        let qkv: Vec<f32> = (0..3 * c * n).map(|_| r() * 2.0).collect();
        let want = attention_direct(&qkv, c, n, heads, area);
        for isa in Isa::available() {
            let mut got = vec![0f32; c * n];
            area_attention_isa(&qkv, c, n, heads, area, &mut got, isa);
            assert_close(&got, &want, &format!("{isa:?} attention c{c} n{n} heads{heads} area{area}"));
        }
    }
}

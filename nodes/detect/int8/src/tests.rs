//! Unit tests of the reference and the helpers (the SIMD variants are checked against the
//! reference in tests/variants.rs).

use super::*;
use crate::epilogue::{dequant, requant};

/// A small deterministic generator (tests must not depend on an RNG crate's stream).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn u8(&mut self) -> u8 {
        self.next() as u8
    }
    fn i8(&mut self, range: i8) -> i8 {
        ((self.next() % (2 * range as u32 + 1)) as i32 - range as i32) as i8
    }
    fn f32(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 - 0.5
    }
}

#[test]
fn fast_exp_is_accurate() {
    let mut worst = 0f32;
    let mut x = -80.0f32;
    while x < 80.0 {
        let rel = ((fast_exp(x) - x.exp()) / x.exp()).abs();
        worst = worst.max(rel);
        x += 0.0137;
    }
    assert!(worst < 3e-7, "worst relative error {worst}");
    // Saturates instead of overflowing; NaN-free for infinities.
    assert!(fast_exp(1000.0).is_finite() && fast_exp(-1000.0) > 0.0);
    assert!(fast_exp(f32::INFINITY).is_finite() && fast_exp(f32::NEG_INFINITY) >= 0.0);
    assert!((silu(2.0) - 2.0 / (1.0 + (-2f32).exp())).abs() < 1e-6);
}

#[test]
fn requantization_rounds_half_to_even_and_saturates() {
    let q = QParams::new(0.5, 10);
    // y / 0.5 = 2y: ties at y = k/2 + 1/4.
    for (y, want) in [(0.25f32, 10u8), (0.75, 12), (1.25, 12), (-0.25, 10), (-0.75, 8), (-1.25, 8), (0.26, 11)] {
        assert_eq!(quantize_value(y, q), want, "y = {y}");
    }
    // Saturation at both ends, just inside and far outside.
    assert_eq!(quantize_value(122.5, q), 255); // 245 + 10 = 255
    assert_eq!(quantize_value(122.75, q), 255); // 245.5 -> 246 (even) + 10 -> 256 -> 255
    assert_eq!(quantize_value(122.0, q), 254);
    assert_eq!(quantize_value(-5.0, q), 0); // -10 + 10
    assert_eq!(quantize_value(-5.5, q), 0);
    assert_eq!(quantize_value(-4.5, q), 1);
    assert_eq!(quantize_value(1e30, q), 255);
    assert_eq!(quantize_value(-1e30, q), 0);
    assert_eq!(quantize_value(f32::INFINITY, q), 255);
    assert_eq!(quantize_value(f32::NEG_INFINITY, q), 0);
    // NaN is documented to saturate low.
    assert_eq!(quantize_value(f32::NAN, q), 0);
    // Zero point 0 and 255.
    assert_eq!(quantize_value(-0.1, QParams::new(1.0, 0)), 0);
    assert_eq!(quantize_value(0.1, QParams::new(1.0, 255)), 255);
    assert_eq!(quantize_value(-0.5, QParams::new(1.0, 255)), 255); // -0 + 255
    assert_eq!(quantize_value(-1.5, QParams::new(1.0, 255)), 253); // -2 + 255
    assert_eq!(requant(2.5, 1.0, 0), 2);
    assert_eq!(requant(3.5, 1.0, 0), 4);
}

#[test]
fn quantize_dequantize_round_trip() {
    for &(scale, zp) in &[(1.0f32 / 255.0, 0u8), (0.037, 128), (0.011, 3), (2.5, 255)] {
        let q = QParams::new(scale, zp);
        let all: Vec<u8> = (0..=255).collect();
        let mut f = vec![0f32; 256];
        dequantize(&all, q, &mut f).unwrap();
        for (i, v) in f.iter().enumerate() {
            assert_eq!(*v, (i as i32 - zp as i32) as f32 * scale);
        }
        let mut back = vec![0u8; 256];
        quantize(&f, q, &mut back).unwrap();
        assert_eq!(back, all, "scale {scale} zp {zp}");
        // Requantizing to the same parameters is the identity, to others matches the two steps.
        let to = QParams::new(scale * 1.7, zp / 2);
        let mut r = vec![0u8; 256];
        requantize(&all, q, to, &mut r).unwrap();
        for i in 0..256 {
            assert_eq!(r[i], quantize_value(f[i], to));
        }
        // Long inputs take the table path where the CPU has one (64-byte blocks and a tail), and
        // the longest are split over the pool's threads.
        let long: Vec<u8> = (0..4133u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let mut rl = vec![0u8; long.len()];
        requantize(&long, q, to, &mut rl).unwrap();
        for (x, y) in long.iter().zip(&rl) {
            assert_eq!(*y, r[*x as usize], "byte {x}");
        }
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let huge: Vec<u8> = (0..200_003u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
        let (mut rh, mut fh, mut qh) = (vec![0u8; huge.len()], vec![0f32; huge.len()], vec![0u8; huge.len()]);
        pool.install(|| {
            requantize(&huge, q, to, &mut rh).unwrap();
            dequantize(&huge, q, &mut fh).unwrap();
            quantize(&fh, to, &mut qh).unwrap();
        });
        for (i, x) in huge.iter().enumerate() {
            assert_eq!((rh[i], fh[i], qh[i]), (r[*x as usize], f[*x as usize], r[*x as usize]), "value {i}");
        }
    }
    // pixel / 255 is exact: u8 pixels are their own quantization at scale 1/255, zp 0.
    let q = QParams::new(1.0 / 255.0, 0);
    let px: Vec<f32> = (0..=255).map(|v| v as f32 / 255.0).collect();
    let mut back = vec![0u8; 256];
    quantize(&px, q, &mut back).unwrap();
    assert!(back.iter().enumerate().all(|(i, &v)| v as usize == i));
    // Bad input is an error, not a panic.
    assert!(matches!(quantize(&px, q, &mut back[..3]), Err(Error::Len { .. })));
    assert!(matches!(quantize(&px, QParams::new(0.0, 0), &mut back), Err(Error::BadScale { .. })));
}

#[test]
fn maxpool_and_upsample_match_bruteforce() {
    let mut g = Lcg(7);
    for &(c, h, w, k) in &[(3usize, 7usize, 9usize, 5usize), (2, 1, 1, 5), (1, 4, 3, 3), (70, 20, 24, 5)] {
        let x: Vec<u8> = (0..c * h * w).map(|_| g.u8()).collect();
        let mut y = vec![0u8; c * h * w];
        maxpool_same(&x, c, h, w, k, &mut y).unwrap();
        let p = (k / 2) as isize;
        for ch in 0..c {
            for yy in 0..h as isize {
                for xx in 0..w as isize {
                    let mut m = 0u8;
                    for dy in -p..=p {
                        for dx in -p..=p {
                            let (iy, ix) = (yy + dy, xx + dx);
                            if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                                m = m.max(x[ch * h * w + iy as usize * w + ix as usize]);
                            }
                        }
                    }
                    assert_eq!(y[ch * h * w + yy as usize * w + xx as usize], m);
                }
            }
        }
        let mut u = vec![0u8; 4 * c * h * w];
        upsample2(&x, c, h, w, &mut u).unwrap();
        for ch in 0..c {
            for yy in 0..2 * h {
                for xx in 0..2 * w {
                    assert_eq!(u[ch * 4 * h * w + yy * 2 * w + xx], x[ch * h * w + yy / 2 * w + xx / 2]);
                }
            }
        }
    }
    let mut y = vec![0u8; 5];
    assert!(maxpool_same(&[0u8; 6], 1, 2, 3, 5, &mut y).is_err());
}

/// The reference against an f32 convolution of the dequantized tensors: the integer part is
/// exact, so the f32 outputs agree to float rounding and the u8 outputs to one step.
#[test]
fn reference_matches_float_convolution() {
    let mut g = Lcg(42);
    let cases = [
        (ConvShape::dense(3, 5, 3, 2, 1), 9usize, 11usize),
        (ConvShape::dense(6, 4, 1, 1, 0), 5, 4),
        (ConvShape::dense(4, 3, 5, 1, 2), 6, 7),
        (ConvShape::depthwise(5, 3, 1, 1), 8, 6),
        (ConvShape::depthwise(3, 7, 1, 3), 9, 9),
        (ConvShape::depthwise(4, 3, 2, 1), 9, 8),
    ];
    for (s, h, w) in cases {
        let kdim = s.kdim();
        let wq: Vec<i8> = (0..s.c_out * kdim).map(|_| g.i8(127)).collect();
        let ws: Vec<f32> = (0..s.c_out).map(|_| 0.002 + g.f32().abs() * 0.01).collect();
        let bias: Vec<f32> = (0..s.c_out).map(|_| g.f32()).collect();
        let qin = QParams::new(0.02, 37);
        let x: Vec<u8> = (0..s.c_in * h * w).map(|_| g.u8()).collect();
        let p = PackedConv::new(s, &wq, &ws, &bias, qin).unwrap();
        let (oh, ow) = s.out_hw(h, w).unwrap();
        let n = s.c_out * oh * ow;
        let res: Vec<f32> = (0..n).map(|_| g.f32()).collect();
        let mut got = vec![0f32; n];
        conv_reference(&p, &[&x], h, w, Act::Silu, Residual::F32(&res), Output::F32(&mut got)).unwrap();
        // f32 direct convolution of the dequantized values.
        let cin_g = s.c_in / s.groups;
        for co in 0..s.c_out {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut a = 0f64;
                    for ci in 0..cin_g {
                        let c = if s.is_depthwise() { co } else { ci };
                        for ky in 0..s.k {
                            for kx in 0..s.k {
                                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let xv = qin.scale as f64 * (x[c * h * w + iy as usize * w + ix as usize] as f64 - 37.0);
                                let wv = ws[co] as f64 * wq[(co * cin_g + ci) * s.k * s.k + ky * s.k + kx] as f64;
                                a += xv * wv;
                            }
                        }
                    }
                    let y = a + bias[co] as f64;
                    let y = y / (1.0 + (-y).exp());
                    let j = co * oh * ow + oy * ow + ox;
                    let want = y + res[j] as f64;
                    assert!((got[j] as f64 - want).abs() < 1e-4 * (1.0 + want.abs()), "{s:?} at {j}: {} vs {want}", got[j]);
                }
            }
        }
        // u8 output = the f32 output quantized (same epilogue), here checked through the residual
        // path of U8 residuals too.
        let qout = QParams::new(0.05, 100);
        let mut got_u8 = vec![0u8; n];
        let mut plain = vec![0f32; n];
        conv_reference(&p, &[&x], h, w, Act::None, Residual::None, Output::U8(&mut got_u8, qout)).unwrap();
        conv_reference(&p, &[&x], h, w, Act::None, Residual::None, Output::F32(&mut plain)).unwrap();
        for j in 0..n {
            assert_eq!(got_u8[j], quantize_value(plain[j], qout));
        }
        let qr = QParams::new(0.03, 20);
        let r8: Vec<u8> = (0..n).map(|_| g.u8()).collect();
        let mut with_r = vec![0f32; n];
        conv_reference(&p, &[&x], h, w, Act::None, Residual::U8(&r8, qr), Output::F32(&mut with_r)).unwrap();
        for j in 0..n {
            // The residual is added fused: (q - zp) * scale + y with one rounding.
            assert_eq!(with_r[j], ((r8[j] as i32 - 20) as f32).mul_add(0.03, plain[j]));
            assert!((with_r[j] - (plain[j] + dequant(r8[j], 20, 0.03))).abs() <= 1e-6 * (1.0 + plain[j].abs()));
        }
    }
}

#[test]
fn padding_reads_the_zero_point() {
    // A 3x3 all-ones kernel over a constant map at the zero point gives exactly the bias
    // everywhere, borders included (padding with 0 instead of zp would not).
    let s = ConvShape::dense(2, 1, 3, 1, 1);
    let p = PackedConv::new(s, &[1i8; 18], &[0.1], &[0.25], QParams::new(0.5, 200)).unwrap();
    let x = [200u8; 2 * 4 * 5];
    let mut out = [0f32; 20];
    conv_reference(&p, &[&x[..20], &x[20..]], 4, 5, Act::None, Residual::None, Output::F32(&mut out)).unwrap();
    assert!(out.iter().all(|&v| v == 0.25), "{out:?}");
    // One pixel above the zero point shows up in all 9 positions around it with weight 1.
    let mut x2 = x;
    x2[2 * 5 + 2] = 201;
    conv_reference(&p, &[&x2], 4, 5, Act::None, Residual::None, Output::F32(&mut out)).unwrap();
    let hit = out.iter().filter(|&&v| v != 0.25).count();
    assert_eq!(hit, 9);
    assert!(out.iter().all(|&v| v == 0.25 || v == 1.0 * 0.5 * 0.1 + 0.25));
}

#[test]
fn bad_input_is_a_clear_error() {
    let q = QParams::new(0.1, 0);
    let s = ConvShape::dense(4, 2, 3, 1, 1);
    let w = vec![1i8; 2 * 36];
    let err = PackedConv::new(s, &w[..70], &[1.0; 2], &[0.0; 2], q).unwrap_err();
    assert_eq!(err, Error::Len { what: "weights", expected: 72, got: 70 });
    let mut bad = w.clone();
    bad[40] = -128;
    let err = PackedConv::new(s, &bad, &[1.0; 2], &[0.0; 2], q).unwrap_err();
    assert!(err.to_string().contains("output channel 1"), "{err}");
    let err = PackedConv::new(s, &w, &[1.0, f32::NAN], &[0.0; 2], q).unwrap_err();
    assert!(err.to_string().contains("weight scale[1]"), "{err}");
    assert!(PackedConv::new(ConvShape { groups: 2, ..s }, &w, &[1.0; 2], &[0.0; 2], q).is_err());
    assert!(PackedConv::new(s, &w, &[1.0; 2], &[0.0; 2], QParams::new(-1.0, 0)).is_err());
    let p = PackedConv::new(s, &w, &[1.0; 2], &[0.0; 2], q).unwrap();
    let x = vec![0u8; 4 * 3 * 3];
    let mut out = vec![0u8; 2 * 9];
    let run = |parts: &[&[u8]], h, w, out: &mut [u8]| conv(&p, parts, h, w, Act::None, Residual::None, Output::U8(out, q));
    assert_eq!(run(&[&x[..27]], 3, 3, &mut out), Err(Error::Channels { expected: 4, got: 3 }));
    assert_eq!(run(&[&x[..10], &x[10..]], 3, 3, &mut out), Err(Error::Part { index: 0, len: 10, h: 3, w: 3 }));
    assert_eq!(run(&[&x], 3, 3, &mut out[..17]), Err(Error::Len { what: "output", expected: 18, got: 17 }));
    assert!(run(&[&x], 3, 3, &mut out).is_ok());
    let p5 = PackedConv::new(ConvShape::dense(1, 1, 5, 1, 0), &[0i8; 25], &[1.0], &[0.0], q).unwrap();
    assert!(matches!(
        conv(&p5, &[&x[..9]], 3, 3, Act::None, Residual::None, Output::U8(&mut out[..1], q)),
        Err(Error::MapTooSmall { .. })
    ));
}

#[test]
fn variant_selection_is_consistent() {
    assert!(Variant::Scalar.available());
    let name = active_kernel();
    assert!(Variant::ALL.iter().any(|v| v.name() == name));
    let q = QParams::new(0.1, 0);
    let s = ConvShape::dense(2, 2, 1, 1, 0);
    let p7 = PackedConv::new(s, &[63, -63, 1, 2], &[1.0; 2], &[0.0; 2], q).unwrap();
    let p8 = PackedConv::new(s, &[64, -63, 1, 2], &[1.0; 2], &[0.0; 2], q).unwrap();
    assert_eq!(p7.max_abs_weight(), 63);
    assert!(!Variant::Avx2Madd7.supports(&p8));
    assert!(Variant::select(&p8).supports(&p8) && Variant::select(&p7).supports(&p7));
    let _ = weight_range();
}

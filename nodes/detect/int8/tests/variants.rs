//! Every kernel variant this CPU can run equals the scalar reference bit for bit: random shapes,
//! strides, paddings, 1x1 over several parts, depthwise, residual kinds, both outputs, SiLU.
//! Under qemu-aarch64 the same tests check the NEON variants (see ci.sh).

use perch_int8::*;
use proptest::prelude::*;

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
    fn f32(&mut self) -> f32 {
        self.next() as f32 / (1u64 << 31) as f32 - 0.5
    }
}

#[derive(Debug, Clone, Copy)]
enum ResKind {
    None,
    U8,
    F32,
}

#[derive(Debug, Clone)]
struct Case {
    shape: ConvShape,
    h: usize,
    w: usize,
    /// Channel counts of the input parts (sum = c_in).
    parts: Vec<usize>,
    /// Weights in [-range, range].
    range: i8,
    act: Act,
    res: ResKind,
    out_u8: bool,
    seed: u64,
}

/// Runs `case` with every available variant and compares with the reference.
fn check(case: &Case) -> Result<(), String> {
    let Case { shape: s, h, w, ref parts, range, act, res, out_u8, seed } = *case;
    let mut g = Lcg(seed);
    let kdim = s.kdim();
    let wq: Vec<i8> =
        (0..s.c_out * kdim).map(|_| (g.below(2 * range as u32 + 1) as i32 - range as i32) as i8).collect();
    let ws: Vec<f32> = (0..s.c_out).map(|_| (0.5 + g.f32()) * 0.02 / range as f32).collect();
    let bias: Vec<f32> = (0..s.c_out).map(|_| g.f32() * 4.0).collect();
    let qin = QParams::new(0.02 + g.f32().abs() * 0.05, g.next() as u8);
    let p = PackedConv::new(s, &wq, &ws, &bias, qin).map_err(|e| e.to_string())?;
    let x: Vec<u8> = (0..s.c_in * h * w).map(|_| g.next() as u8).collect();
    let mut views = Vec::new();
    let mut c0 = 0;
    for &c in parts {
        views.push(&x[c0 * h * w..(c0 + c) * h * w]);
        c0 += c;
    }
    let (oh, ow) = s.out_hw(h, w).map_err(|e| e.to_string())?;
    let n = s.c_out * oh * ow;
    let r8: Vec<u8> = (0..n).map(|_| g.next() as u8).collect();
    let rf: Vec<f32> = (0..n).map(|_| g.f32() * 3.0).collect();
    let qr = QParams::new(0.01 + g.f32().abs() * 0.05, g.next() as u8);
    // A scale that makes the outputs span (and saturate at) both ends of 0..=255.
    let qout = QParams::new(0.02 + g.f32().abs() * 0.05, g.next() as u8);
    let residual = match res {
        ResKind::None => Residual::None,
        ResKind::U8 => Residual::U8(&r8, qr),
        ResKind::F32 => Residual::F32(&rf),
    };
    let run = |v: Option<Variant>| -> Result<(Vec<u8>, Vec<u32>), String> {
        let mut o8 = vec![0u8; if out_u8 { n } else { 0 }];
        let mut of = vec![0f32; if out_u8 { 0 } else { n }];
        let out = if out_u8 { Output::U8(&mut o8, qout) } else { Output::F32(&mut of) };
        match v {
            None => conv_reference(&p, &views, h, w, act, residual, out),
            Some(v) => conv_with(v, &p, &views, h, w, act, residual, out),
        }
        .map_err(|e| e.to_string())?;
        Ok((o8, of.iter().map(|v| v.to_bits()).collect()))
    };
    let want = run(None)?;
    for v in Variant::ALL {
        if !v.supports(&p) {
            continue;
        }
        let got = run(Some(v))?;
        if let Some(i) = (0..n).find(|&i| if out_u8 { got.0[i] != want.0[i] } else { got.1[i] != want.1[i] }) {
            let (gv, wv) = if out_u8 {
                (got.0[i].to_string(), want.0[i].to_string())
            } else {
                (f32::from_bits(got.1[i]).to_string(), f32::from_bits(want.1[i]).to_string())
            };
            return Err(format!("{} differs from the reference at {i} (channel {}): {gv} vs {wv}", v.name(), i / (oh * ow)));
        }
    }
    Ok(())
}

fn split(c: usize, cuts: &[usize]) -> Vec<usize> {
    let mut pts: Vec<usize> = cuts.iter().map(|&x| 1 + x % c.max(1)).filter(|&x| x < c).collect();
    pts.sort_unstable();
    pts.dedup();
    let mut out = Vec::new();
    let mut last = 0;
    for p in pts {
        out.push(p - last);
        last = p;
    }
    out.push(c - last);
    out
}

fn act_of(b: bool) -> Act {
    if b {
        Act::Silu
    } else {
        Act::None
    }
}

fn res_of(i: u8) -> ResKind {
    [ResKind::None, ResKind::U8, ResKind::F32][i as usize % 3]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn dense_equals_reference(
        c_in in 1usize..24, c_out in 1usize..21, k in prop::sample::select(vec![1usize, 2, 3, 5]),
        stride in 1usize..4, pad_extra in 0usize..3, h in 1usize..19, w in 1usize..23,
        cuts in prop::collection::vec(0usize..64, 0..4), seven in any::<bool>(),
        silu in any::<bool>(), res in 0u8..3, out_u8 in any::<bool>(), seed in any::<u64>(),
    ) {
        let pad = (k / 2 + pad_extra).min(k);
        let shape = ConvShape::dense(c_in, c_out, k, stride, pad);
        prop_assume!(shape.out_hw(h, w).is_ok());
        let case = Case {
            shape, h, w, parts: split(c_in, &cuts), range: if seven { 63 } else { 127 },
            act: act_of(silu), res: res_of(res), out_u8, seed,
        };
        check(&case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn pointwise_over_parts_equals_reference(
        c_in in 1usize..48, c_out in 1usize..40, hw in 1usize..30,
        cuts in prop::collection::vec(0usize..64, 0..5), seven in any::<bool>(),
        silu in any::<bool>(), res in 0u8..3, out_u8 in any::<bool>(), seed in any::<u64>(),
    ) {
        let case = Case {
            shape: ConvShape::dense(c_in, c_out, 1, 1, 0), h: hw, w: hw + 3, parts: split(c_in, &cuts),
            range: if seven { 63 } else { 127 }, act: act_of(silu), res: res_of(res), out_u8, seed,
        };
        check(&case).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn depthwise_equals_reference(
        c in 1usize..12, k in prop::sample::select(vec![3usize, 5, 7]), stride in 1usize..3,
        h in 1usize..26, w in 1usize..37, cuts in prop::collection::vec(0usize..64, 0..3),
        silu in any::<bool>(), res in 0u8..3, out_u8 in any::<bool>(), seed in any::<u64>(),
    ) {
        let shape = ConvShape::depthwise(c, k, stride, k / 2);
        prop_assume!(shape.out_hw(h, w).is_ok());
        let case = Case { shape, h, w, parts: split(c, &cuts), range: 127, act: act_of(silu), res: res_of(res), out_u8, seed };
        check(&case).map_err(TestCaseError::fail)?;
    }
}

/// YOLO-sized layers: several column tiles, channel counts that are not multiples of the
/// register blocks, and 1, 2 and 4 threads (tiles must cover the map exactly however it splits).
#[test]
fn yolo_shapes_on_1_2_4_threads() {
    let cases = [
        (ConvShape::dense(16, 32, 3, 2, 1), 40, 40, vec![16]),
        (ConvShape::dense(32, 30, 3, 1, 1), 24, 28, vec![32]),
        (ConvShape::dense(96, 64, 1, 1, 0), 40, 40, vec![32, 16, 16, 32]),
        (ConvShape::dense(3, 16, 3, 2, 1), 64, 64, vec![3]),
        (ConvShape::depthwise(64, 7, 1, 3), 20, 20, vec![64]),
        (ConvShape::depthwise(40, 3, 2, 1), 33, 31, vec![20, 20]),
        (ConvShape::depthwise(24, 3, 1, 1), 40, 40, vec![24]),
    ];
    for threads in [1, 2, 4] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for (i, (shape, h, w, parts)) in cases.iter().enumerate() {
            for (j, (act, res, out_u8)) in [(Act::Silu, ResKind::None, true), (Act::None, ResKind::U8, false), (Act::Silu, ResKind::F32, true)]
                .into_iter()
                .enumerate()
            {
                let case = Case { shape: *shape, h: *h, w: *w, parts: parts.clone(), range: 127, act, res, out_u8, seed: (i * 10 + j) as u64 };
                pool.install(|| check(&case)).unwrap_or_else(|e| panic!("{threads} threads, {shape:?} {h}x{w}: {e}"));
                let case7 = Case { range: 63, ..case };
                pool.install(|| check(&case7)).unwrap_or_else(|e| panic!("{threads} threads, 7-bit {shape:?} {h}x{w}: {e}"));
            }
        }
    }
}

/// Extreme values: all-255 inputs with all-(+/-)127 weights (the largest sums, the i16 pair
/// limits of `smull`/`vpmaddubsw`), zero points 0 and 255, outputs saturating at both ends.
#[test]
fn extreme_values_equal_reference() {
    for (xv, wv, zp) in [(255u8, 127i8, 0u8), (255, -127, 0), (0, 127, 255), (0, -127, 255), (255, 127, 255), (128, -127, 128)] {
        for shape in [ConvShape::dense(40, 9, 3, 1, 1), ConvShape::dense(64, 5, 1, 1, 0), ConvShape::depthwise(9, 7, 1, 3)] {
            let (h, w) = (9, 13);
            let p = PackedConv::new(shape, &vec![wv; shape.c_out * shape.kdim()], &vec![0.01; shape.c_out], &vec![0.5; shape.c_out], QParams::new(0.1, zp))
                .unwrap();
            let x = vec![xv; shape.c_in * h * w];
            let (oh, ow) = shape.out_hw(h, w).unwrap();
            let n = shape.c_out * oh * ow;
            for qout in [QParams::new(0.01, 0), QParams::new(0.01, 255), QParams::new(1000.0, 128)] {
                let mut want = vec![0u8; n];
                conv_reference(&p, &[&x], h, w, Act::None, Residual::None, Output::U8(&mut want, qout)).unwrap();
                for v in Variant::ALL.into_iter().filter(|v| v.supports(&p)) {
                    let mut got = vec![0u8; n];
                    conv_with(v, &p, &[&x], h, w, Act::None, Residual::None, Output::U8(&mut got, qout)).unwrap();
                    assert_eq!(got, want, "{} x={xv} w={wv} zp={zp} {shape:?}", v.name());
                }
                let mut wantf = vec![0f32; n];
                conv_reference(&p, &[&x], h, w, Act::Silu, Residual::None, Output::F32(&mut wantf)).unwrap();
                for v in Variant::ALL.into_iter().filter(|v| v.supports(&p)) {
                    let mut got = vec![0f32; n];
                    conv_with(v, &p, &[&x], h, w, Act::Silu, Residual::None, Output::F32(&mut got)).unwrap();
                    assert!(got.iter().zip(&wantf).all(|(a, b)| a.to_bits() == b.to_bits()), "{} f32 x={xv} w={wv}", v.name());
                }
            }
        }
    }
}

#[test]
fn forcing_an_unavailable_variant_is_an_error() {
    let q = QParams::new(0.1, 3);
    let p = PackedConv::new(ConvShape::dense(1, 1, 1, 1, 0), &[100], &[1.0], &[0.0], q).unwrap();
    let mut out = [0u8; 4];
    let err = conv_with(Variant::Avx2Madd7, &p, &[&[1, 2, 3, 4]], 2, 2, Act::None, Residual::None, Output::U8(&mut out, q)).unwrap_err();
    assert!(matches!(err, Error::Unavailable("avx2_madd7", _)), "{err}");
    for v in Variant::ALL {
        println!("{:>12}: available {}", v.name(), v.available());
    }
    println!("active kernel: {}", active_kernel());
}

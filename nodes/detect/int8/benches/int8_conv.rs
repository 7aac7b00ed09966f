//! int8 conv kernels against the f32 path on YOLO layer shapes.
//!
//! `cargo bench -p perch-int8 --bench int8_conv` runs criterion groups (one per shape and
//! thread count). `PERCH_INT8_REPORT=1 cargo bench -p perch-int8 --bench int8_conv` instead runs
//! interleaved rounds (every implementation once per round, so machine load hits all alike)
//! and prints a Markdown table: median / p99 per implementation, GOPS, and int8/f32 ratios.
//! `PERCH_INT8_ROUNDS` sets the rounds (default 41).
//!
//! The f32 side is what perch-detect's f32 path does for the same layer: a tiled im2col into
//! the `gemm` crate (the GEMM Candle uses) with bias + SiLU fused per tile for dense convs, an
//! AVX2 direct loop for depthwise ones.

use std::time::Instant;

use criterion::{criterion_group, Criterion};
use perch_int8::*;

#[derive(Clone, Copy)]
struct Layer {
    name: &'static str,
    shape: ConvShape,
    h: usize,
    w: usize,
    parts: usize,
}

fn layers() -> Vec<Layer> {
    let d = ConvShape::dense;
    vec![
        Layer { name: "3x3 s2 16->32 @160 (v8n/v12n P2, 640)", shape: d(16, 32, 3, 2, 1), h: 160, w: 160, parts: 1 },
        Layer { name: "3x3 32->32 @80 (C2f bottleneck, 640)", shape: d(32, 32, 3, 1, 1), h: 80, w: 80, parts: 1 },
        Layer { name: "1x1 cat 96->64 @80 (C2f cv2, 3 parts)", shape: d(96, 64, 1, 1, 0), h: 80, w: 80, parts: 3 },
        Layer { name: "3x3 64->64 @40 (P4 bottleneck, 640)", shape: d(64, 64, 3, 1, 1), h: 40, w: 40, parts: 1 },
        Layer { name: "3x3 s2 64->128 @40 (P4->P5, 640)", shape: d(64, 128, 3, 2, 1), h: 40, w: 40, parts: 1 },
        Layer { name: "1x1 256->256 @20 (P5, 640)", shape: d(256, 256, 1, 1, 0), h: 20, w: 20, parts: 1 },
        Layer { name: "3x3 32->32 @40 (C2f bottleneck, 320)", shape: d(32, 32, 3, 1, 1), h: 40, w: 40, parts: 1 },
        Layer { name: "3x3 s2 3->16 @320 (stem, 640)", shape: d(3, 16, 3, 2, 1), h: 640, w: 640, parts: 1 },
        Layer { name: "dw 7x7 128 @20 (AAttn pe, 640)", shape: ConvShape::depthwise(128, 7, 1, 3), h: 20, w: 20, parts: 1 },
        Layer { name: "dw 3x3 64 @80 (head cv3, 640)", shape: ConvShape::depthwise(64, 3, 1, 1), h: 80, w: 80, parts: 1 },
        Layer { name: "dw 3x3 s2 64 @80", shape: ConvShape::depthwise(64, 3, 2, 1), h: 80, w: 80, parts: 1 },
    ]
}

fn macs(l: &Layer) -> f64 {
    let (oh, ow) = l.shape.out_hw(l.h, l.w).unwrap();
    (l.shape.c_out * oh * ow * l.shape.kdim()) as f64
}

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }
}

/// One layer's data for both precisions.
struct Data {
    l: Layer,
    packed7: PackedConv,
    packed8: PackedConv,
    x: Vec<u8>,
    out: Vec<u8>,
    wf: Vec<f32>,
    bf: Vec<f32>,
    xf: Vec<f32>,
    outf: Vec<f32>,
    col: Vec<f32>,
}

fn data(l: Layer) -> Data {
    let s = l.shape;
    let mut g = Lcg(1);
    let kdim = s.kdim();
    let w8: Vec<i8> = (0..s.c_out * kdim).map(|_| ((g.next() % 255) as i32 - 127) as i8).collect();
    let w7: Vec<i8> = w8.iter().map(|&v| v / 2).collect();
    let ws = vec![0.001f32; s.c_out];
    let bias = vec![0.1f32; s.c_out];
    let q = QParams::new(0.05, 20);
    let x: Vec<u8> = (0..s.c_in * l.h * l.w).map(|_| g.next() as u8).collect();
    let (oh, ow) = s.out_hw(l.h, l.w).unwrap();
    Data {
        l,
        packed7: PackedConv::new(s, &w7, &ws, &bias, q).unwrap(),
        packed8: PackedConv::new(s, &w8, &ws, &bias, q).unwrap(),
        xf: x.iter().map(|&v| v as f32 * 0.01).collect(),
        x,
        out: vec![0u8; s.c_out * oh * ow],
        wf: w8.iter().map(|&v| v as f32 * 0.001).collect(),
        bf: bias,
        outf: vec![0f32; s.c_out * oh * ow],
        col: Vec::new(),
    }
}

fn run_int8(d: &mut Data, v: Variant) {
    let l = d.l;
    let hw = l.h * l.w;
    let c = l.shape.c_in / l.parts;
    let mut parts: Vec<&[u8]> = (0..l.parts - 1).map(|i| &d.x[i * c * hw..(i + 1) * c * hw]).collect();
    parts.push(&d.x[(l.parts - 1) * c * hw..]);
    let p = if v == Variant::Avx2Madd7 { &d.packed7 } else { &d.packed8 };
    conv_with(v, p, &parts, l.h, l.w, Act::Silu, Residual::None, Output::U8(&mut d.out, QParams::new(0.02, 10))).unwrap();
}

// ---- the f32 side -------------------------------------------------------------------------

/// im2col rows [c*k*k, j0..j1) for a dense conv (zero padding), like perch-detect's f32 path.
fn im2col(x: &[f32], s: &ConvShape, h: usize, w: usize, j0: usize, j1: usize, col: &mut [f32]) {
    let (_, ow) = s.out_hw(h, w).unwrap();
    let tw = j1 - j0;
    for c in 0..s.c_in {
        for ky in 0..s.k {
            for kx in 0..s.k {
                let r = (c * s.k + ky) * s.k + kx;
                for (i, j) in (j0..j1).enumerate() {
                    let (oy, ox) = (j / ow, j % ow);
                    let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                    let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                    col[r * tw + i] = if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                        x[c * h * w + iy as usize * w + ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

#[inline(always)]
fn silu(x: f32) -> f32 {
    x / (1.0 + perch_int8::fast_exp(-x))
}

#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
fn epilogue_f32(row: &mut [f32], b: f32) {
    row.iter_mut().for_each(|v| *v = silu(*v + b));
}

#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
fn dw_f32(x: &[f32], s: &ConvShape, h: usize, w: usize, wt: &[f32], b: &[f32], out: &mut [f32]) {
    let (oh, ow) = s.out_hw(h, w).unwrap();
    let k = s.k;
    for c in 0..s.c_out {
        let o = &mut out[c * oh * ow..(c + 1) * oh * ow];
        o.fill(b[c]);
        for oy in 0..oh {
            for ky in 0..k {
                let iy = (oy * s.stride + ky) as isize - s.pad as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let row = &x[c * h * w + iy as usize * w..][..w];
                for kx in 0..k {
                    let wv = wt[c * k * k + ky * k + kx];
                    for ox in 0..ow {
                        let ix = (ox * s.stride + kx) as isize - s.pad as isize;
                        if ix >= 0 && (ix as usize) < w {
                            o[oy * ow + ox] += wv * row[ix as usize];
                        }
                    }
                }
            }
        }
        o.iter_mut().for_each(|v| *v = silu(*v));
    }
}

fn run_f32(d: &mut Data, threads: usize) {
    let l = d.l;
    let s = l.shape;
    if s.is_depthwise() {
        #[allow(unused_unsafe)]
        // SAFETY: `main` checked AVX2 and FMA (x86_64).
        unsafe {
            dw_f32(&d.xf, &s, l.h, l.w, &d.wf, &d.bf, &mut d.outf)
        };
        return;
    }
    let (oh, ow) = s.out_hw(l.h, l.w).unwrap();
    let n = oh * ow;
    let kdim = s.kdim();
    let direct = s.k == 1 && s.stride == 1 && s.pad == 0;
    // Tiles of ~256 KiB of im2col, like perch-detect's column_tile; the GEMM itself runs with
    // `threads` (the f32 path parallelises over tiles; here one GEMM per tile, gemm's own
    // parallelism, which is what perch-detect used before the tiling and is no slower).
    let tile = if direct { n } else { ((256 * 1024 / 4) / kdim).clamp(32, 1024) / 16 * 16 };
    d.col.resize(kdim * tile, 0.0);
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    for j0 in (0..n).step_by(tile) {
        let j1 = (j0 + tile).min(n);
        let tw = j1 - j0;
        let (rhs, rs) = if direct {
            (d.xf.as_ptr(), n)
        } else {
            im2col(&d.xf, &s, l.h, l.w, j0, j1, &mut d.col);
            (d.col.as_ptr(), tw)
        };
        // SAFETY: rhs holds kdim rows of `rs` stride covering tw columns, the output c_out rows
        // of n, the weights c_out x kdim.
        unsafe {
            gemm::gemm(
                s.c_out,
                tw,
                kdim,
                d.outf.as_mut_ptr().add(j0),
                1,
                n as isize,
                false,
                d.wf.as_ptr(),
                1,
                kdim as isize,
                rhs,
                1,
                rs as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
        for co in 0..s.c_out {
            #[allow(unused_unsafe)]
            // SAFETY: `main` checked AVX2 and FMA (x86_64).
            unsafe { epilogue_f32(&mut d.outf[co * n + j0..co * n + j1], d.bf[co]) };
        }
    }
}

fn variants(d: &Data) -> Vec<Variant> {
    Variant::ALL.into_iter().filter(|&v| v != Variant::Scalar && v.supports(if v == Variant::Avx2Madd7 { &d.packed7 } else { &d.packed8 })).collect()
}

// ---- interleaved report -------------------------------------------------------------------

fn pct(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn report() {
    let rounds: usize = std::env::var("PERCH_INT8_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(41);
    println!("active kernel: {}; rounds (n) per cell: {rounds}; times in microseconds (median / p99)\n", active_kernel());
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        println!("### {threads} thread(s)\n");
        let mut header = false;
        for l in layers() {
            let mut d = data(l);
            let vs = variants(&d);
            if !header {
                let names: Vec<String> = vs.iter().map(|v| format!("{} µs | GOPS | /f32", v.name())).collect();
                println!("| layer | MMAC | f32 µs | f32 GOPS | {} |", names.join(" | "));
                println!("|---|---|---|---|{}|", vec!["---|---|---"; vs.len()].join("|"));
                header = true;
            }
            let mut t_f32 = Vec::new();
            let mut t_v: Vec<Vec<f64>> = vec![Vec::new(); vs.len()];
            pool.install(|| {
                // warm-up
                run_f32(&mut d, threads);
                for &v in &vs {
                    run_int8(&mut d, v);
                }
                for _ in 0..rounds {
                    let t = Instant::now();
                    run_f32(&mut d, threads);
                    t_f32.push(t.elapsed().as_secs_f64() * 1e6);
                    for (i, &v) in vs.iter().enumerate() {
                        let t = Instant::now();
                        run_int8(&mut d, v);
                        t_v[i].push(t.elapsed().as_secs_f64() * 1e6);
                    }
                }
            });
            let ops = 2.0 * macs(&l);
            let mf = pct(&mut t_f32, 0.5);
            let pf = pct(&mut t_f32, 0.99);
            let mut cells = Vec::new();
            for t in &mut t_v {
                let m = pct(t, 0.5);
                let p = pct(t, 0.99);
                cells.push(format!("{m:.0} / {p:.0} | {:.0} | {:.2}", ops / m / 1e3, m / mf));
            }
            println!("| {} | {:.1} | {mf:.0} / {pf:.0} | {:.0} | {} |", l.name, macs(&l) / 1e6, ops / mf / 1e3, cells.join(" | "));
        }
        println!();
    }
}

// ---- criterion ------------------------------------------------------------------------------

fn bench(c: &mut Criterion) {
    for threads in [1usize, 2] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        for l in layers() {
            let mut d = data(l);
            let mut g = c.benchmark_group(format!("{} t{threads}", l.name));
            g.throughput(criterion::Throughput::Elements((2.0 * macs(&l)) as u64));
            g.sample_size(20);
            // (`install` per iteration: criterion's state cannot move into the pool.)
            g.bench_function("f32", |b| b.iter(|| pool.install(|| run_f32(&mut d, threads))));
            for v in variants(&d) {
                g.bench_function(v.name(), |b| b.iter(|| pool.install(|| run_int8(&mut d, v))));
            }
            g.finish();
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    #[cfg(target_arch = "x86_64")]
    assert!(std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"), "the bench's f32 side needs AVX2+FMA");
    if std::env::var_os("PERCH_INT8_REPORT").is_some() {
        report();
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}

//! int8 conv kernels against the f32 path on YOLO layer shapes.
//!
//! `cargo bench -p perch-int8 --bench int8_conv` runs criterion groups (one per shape and
//! thread count). `PERCH_INT8_REPORT=1 cargo bench -p perch-int8 --bench int8_conv` instead runs
//! interleaved rounds (every implementation once per round, so machine load hits all alike)
//! and prints a Markdown table: median / p99 per implementation, GOPS, and int8/f32 ratios.
//! `PERCH_INT8_ROUNDS` sets the rounds (default 41), `PERCH_INT8_ONLY` keeps the layers whose
//! name contains it, `PERCH_INT8_VARIANTS` (comma-separated) the variants named.
//!
//! The f32 side re-implements what perch-detect's f32 path (`src/model/kernels.rs`) does for the
//! same layer, compiled the same way (AVX2+FMA): tiles of ~256 KiB of im2col, each a serial
//! `gemm` crate GEMM (the one Candle uses) with bias + SiLU over the tile, run in parallel over
//! tiles (a 1x1 conv reads the planes in place); depthwise on a zero-bordered copy with 2 rows
//! x 16 columns in registers.

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

/// The layers, filtered by `PERCH_INT8_ONLY` (a substring of the name) when set.
fn layers() -> Vec<Layer> {
    let only = std::env::var("PERCH_INT8_ONLY").unwrap_or_default();
    all_layers().into_iter().filter(|l| l.name.contains(only.as_str())).collect()
}

fn all_layers() -> Vec<Layer> {
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

/// Valid output x range [lo, hi) for kernel column `kx`.
fn valid_ox(kx: usize, pad: usize, stride: usize, w: usize, ow: usize) -> (usize, usize) {
    let lo = if kx >= pad { 0 } else { (pad - kx).div_ceil(stride) };
    let hi = if w + pad > kx { ((w - 1 + pad - kx) / stride + 1).min(ow) } else { 0 };
    (lo.min(hi), hi)
}

/// im2col rows [c*k*k, j0..j1) (zero padding), row segments copied as slices: what
/// perch-detect's f32 path did before it had its own GEMM (`model::sgemm`).
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
fn im2col(x: &[f32], s: &ConvShape, h: usize, w: usize, j0: usize, j1: usize, col: &mut [f32]) {
    let (_, ow) = s.out_hw(h, w).unwrap();
    let tw = j1 - j0;
    let (k, st, p) = (s.k, s.stride, s.pad);
    for c in 0..s.c_in {
        let plane = &x[c * h * w..(c + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let r = (c * k + ky) * k + kx;
                let dst = &mut col[r * tw..(r + 1) * tw];
                let (xlo, xhi) = valid_ox(kx, p, st, w, ow);
                let mut j = j0;
                while j < j1 {
                    let oy = j / ow;
                    let ox0 = j - oy * ow;
                    let ox1 = (ox0 + (j1 - j)).min(ow);
                    let seg = &mut dst[j - j0..j - j0 + (ox1 - ox0)];
                    let iy = (oy * st + ky) as isize - p as isize;
                    if iy < 0 || iy >= h as isize {
                        seg.fill(0.0);
                    } else {
                        let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                        let a = xlo.clamp(ox0, ox1);
                        let b = xhi.clamp(a, ox1);
                        seg[..a - ox0].fill(0.0);
                        seg[b - ox0..].fill(0.0);
                        if b > a {
                            let ix0 = a * st + kx - p;
                            if st == 1 {
                                seg[a - ox0..b - ox0].copy_from_slice(&src[ix0..ix0 + (b - a)]);
                            } else {
                                for (i, o) in seg[a - ox0..b - ox0].iter_mut().enumerate() {
                                    *o = src[ix0 + i * st];
                                }
                            }
                        }
                    }
                    j += ox1 - ox0;
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

/// Depthwise f32 as perch-detect does it: stride 1 on a zero-bordered copy with 2 rows x 16
/// columns in registers, stride 2 direct; then bias + SiLU.
#[allow(clippy::too_many_arguments)]
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
fn dw_f32_channel(plane: &[f32], s: &ConvShape, h: usize, w: usize, wk: &[f32], b: f32, out: &mut [f32], pad: &mut Vec<f32>) {
    let (oh, ow) = s.out_hw(h, w).unwrap();
    let (k, p) = (s.k, s.pad);
    if s.stride == 1 {
        let owc = ow.div_ceil(16) * 16;
        let pw = (w + 2 * p).max(owc + k - 1);
        let ph = (h + 2 * p).max(oh + k);
        pad.clear();
        pad.resize(pw * ph, 0.0);
        for y in 0..h {
            pad[(y + p) * pw + p..(y + p) * pw + p + w].copy_from_slice(&plane[y * w..(y + 1) * w]);
        }
        for oy in (0..oh).step_by(2) {
            for ox0 in (0..owc).step_by(16) {
                let mut a0 = [b; 16];
                let mut a1 = [b; 16];
                for ky in 0..k {
                    let r0 = &pad[(oy + ky) * pw + ox0..][..16 + k - 1];
                    let r1 = &pad[(oy + 1 + ky) * pw + ox0..][..16 + k - 1];
                    for kx in 0..k {
                        let wv = wk[ky * k + kx];
                        for (a, v) in a0.iter_mut().zip(&r0[kx..kx + 16]) {
                            *a += wv * *v;
                        }
                        for (a, v) in a1.iter_mut().zip(&r1[kx..kx + 16]) {
                            *a += wv * *v;
                        }
                    }
                }
                let n = 16.min(ow - ox0.min(ow));
                out[oy * ow + ox0..oy * ow + ox0 + n].copy_from_slice(&a0[..n]);
                if oy + 1 < oh {
                    out[(oy + 1) * ow + ox0..(oy + 1) * ow + ox0 + n].copy_from_slice(&a1[..n]);
                }
            }
        }
    } else {
        out.fill(b);
        for oy in 0..oh {
            for ky in 0..k {
                let iy = (oy * s.stride + ky) as isize - p as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let src = &plane[iy as usize * w..][..w];
                for kx in 0..k {
                    let wv = wk[ky * k + kx];
                    let (a, bb) = valid_ox(kx, p, s.stride, w, ow);
                    for ox in a..bb {
                        out[oy * ow + ox] += wv * src[ox * s.stride + kx - p];
                    }
                }
            }
        }
    }
    out.iter_mut().for_each(|v| *v = silu(*v));
}

thread_local! {
    static COL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint column ranges.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

fn run_f32(d: &mut Data, threads: usize) {
    use rayon::prelude::*;
    let l = d.l;
    let s = l.shape;
    let (oh, ow) = s.out_hw(l.h, l.w).unwrap();
    let n = oh * ow;
    if s.is_depthwise() {
        let kk = s.k * s.k;
        let (xf, wf, bf) = (&d.xf, &d.wf, &d.bf);
        d.outf.par_chunks_mut(n).enumerate().for_each(|(c, o)| {
            let mut pad = Vec::new();
            #[allow(unused_unsafe)]
            // SAFETY: `main` checked AVX2 and FMA (x86_64).
            unsafe {
                dw_f32_channel(&xf[c * l.h * l.w..(c + 1) * l.h * l.w], &s, l.h, l.w, &wf[c * kk..(c + 1) * kk], bf[c], o, &mut pad)
            };
        });
        return;
    }
    let kdim = s.kdim();
    let direct = s.k == 1 && s.stride == 1 && s.pad == 0;
    // perch-detect's former column_tile: ~256 KiB of im2col per tile, at least two tiles per thread.
    let mut tile = ((256 * 1024 / 4) / kdim).clamp(32, 1024) / 16 * 16;
    if n.div_ceil(tile) < 2 * threads {
        tile = n.div_ceil(2 * threads).div_ceil(16) * 16;
    }
    let tiles = n.div_ceil(tile);
    let outp = SendPtr(d.outf.as_mut_ptr());
    let (xf, wf, bf) = (&d.xf, &d.wf, &d.bf);
    let run_tile = |t: usize| {
        #[allow(clippy::redundant_locals)] // captures the Send wrapper, not its raw field
        let outp = outp;
        let j0 = t * tile;
        let j1 = (j0 + tile).min(n);
        let tw = j1 - j0;
        COL.with(|col| {
            let mut col = col.borrow_mut();
            let (rhs, rs) = if direct {
                (xf.as_ptr().wrapping_add(j0), n)
            } else {
                col.resize(kdim * tw, 0.0);
                #[allow(unused_unsafe)]
                // SAFETY: `main` checked AVX2 and FMA (x86_64).
                unsafe {
                    im2col(xf, &s, l.h, l.w, j0, j1, &mut col)
                };
                (col.as_ptr(), tw)
            };
            // SAFETY: rhs holds kdim rows of stride `rs` covering tw columns, the output c_out
            // rows of n (this tile's columns written by this task only), the weights c_out x
            // kdim.
            unsafe {
                gemm::gemm(
                    s.c_out, tw, kdim, outp.0.add(j0), 1, n as isize, false, wf.as_ptr(), 1, kdim as isize, rhs, 1,
                    rs as isize, 0.0, 1.0, false, false, false, gemm::Parallelism::None,
                );
            }
        });
        #[allow(clippy::needless_range_loop)]
        for co in 0..s.c_out {
            // SAFETY: this tile's columns of row co belong to this task.
            let row = unsafe { std::slice::from_raw_parts_mut(outp.0.add(co * n + j0), tw) };
            #[allow(unused_unsafe)]
            // SAFETY: `main` checked AVX2 and FMA (x86_64).
            unsafe {
                epilogue_f32(row, bf[co])
            };
        }
    };
    if tiles == 1 {
        run_tile(0);
    } else {
        (0..tiles).into_par_iter().for_each(run_tile);
    }
}

/// The SIMD variants this CPU runs, filtered by `PERCH_INT8_VARIANTS` (comma-separated names).
fn variants(d: &Data) -> Vec<Variant> {
    let only = std::env::var("PERCH_INT8_VARIANTS").unwrap_or_default();
    Variant::ALL
        .into_iter()
        .filter(|&v| v != Variant::Scalar && v.supports(if v == Variant::Avx2Madd7 { &d.packed7 } else { &d.packed8 }))
        .filter(|v| only.is_empty() || only.split(',').any(|o| o == v.name()))
        .collect()
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

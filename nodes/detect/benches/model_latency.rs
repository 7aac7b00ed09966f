//! Per-frame latency of the native model's forward pass (no decode/NMS), plus per-conv-kernel
//! comparisons. Plain timing harness (`harness = false`); set RAYON_NUM_THREADS for the thread count.
//!
//! cargo bench -p perch-detect --bench model_latency -- [WEIGHTS] [IMGSZ] [RUNS] [arch: yolov12|yolov8] [nc]
//! PERCH_PROFILE_LAYERS=1 prints the time of every layer on stderr; `--model-only` skips the
//! kernel sections (for a profile of the forward pass alone, e.g. perf).

use std::time::Instant;

use candle_core::{Device, Tensor};
use perch_detect::model::conv::{Conv, ConvKernel};
use perch_detect::model::kernels::Act;
use perch_detect::model::{Arch, Scale, YoloModel};

fn stats(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    let n = ms.len();
    let q = |p: f64| ms[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    format!("median {:.2} ms, p99 {:.2} ms, min {:.2} ms, n {n}", q(0.5), q(0.99), ms[0])
}

fn time<F: FnMut()>(runs: usize, mut f: F) -> Vec<f64> {
    f();
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let weights = args.first().cloned().unwrap_or_else(|| "models/yolov12n/model.safetensors".into());
    let imgsz: usize = args.get(1).map(|s| s.parse().unwrap()).unwrap_or(640);
    let runs: usize = args.get(2).map(|s| s.parse().unwrap()).unwrap_or(20);
    let arch = match args.get(3).map(String::as_str) {
        Some("yolov8") => Arch::Yolov8,
        _ => Arch::Yolov12,
    };
    let nc: usize = args.get(4).map(|s| s.parse().unwrap()).unwrap_or(80);
    let dev = Device::Cpu;
    println!("threads: {}", rayon::current_num_threads());
    if !std::env::args().any(|a| a == "--model-only") {
        kernel_sections(&dev);
    }
    model_section(&weights, imgsz, runs, arch, nc, &dev);
}

fn kernel_sections(dev: &Device) {
    let dev = dev.clone();

    // Conv kernels on YOLO shapes: fused F32 vs Candle conv2d + bias + SiLU.
    for &(ci, co, k, s, g, hw) in &[(3, 16, 3, 2, 1, 640), (16, 32, 3, 2, 1, 320), (64, 64, 3, 1, 1, 80), (64, 128, 1, 1, 1, 80), (64, 64, 7, 1, 64, 40)] {
        let w = Tensor::randn(0f32, 0.1, (co, ci / g, k, k), &dev).unwrap();
        let b = Tensor::randn(0f32, 0.1, co, &dev).unwrap();
        let x = Tensor::rand(0f32, 1.0, (1, ci, hw, hw), &dev).unwrap();
        for kern in [ConvKernel::F32, ConvKernel::Reference] {
            let c = Conv::from_tensors(w.clone(), b.clone(), s, g, Act::Silu, kern).unwrap();
            let ms = time(10, || {
                c.forward(&x).unwrap();
            });
            println!("conv {ci}->{co} k{k} s{s} g{g} @{hw}x{hw} {kern:?}: {}", stats(ms));
        }
    }

    // perch's conv GEMM alone on YOLO shapes, each path it has, in GFLOP/s (2 * MACs).
    for &(c_in, hw, c_out, k, s) in &[(64usize, 80usize, 64usize, 3usize, 1usize), (32, 160, 64, 3, 2), (256, 20, 256, 3, 1), (128, 40, 128, 1, 1), (64, 80, 64, 1, 1)] {
        use perch_detect::model::kernels::ConvGeom;
        use perch_detect::model::sgemm::{self, PackedW};
        let g = ConvGeom { c_in, h: hw, w: hw, c_out, k, stride: s, pad: k / 2 };
        let (oh, ow) = g.out_hw();
        let x: Vec<f32> = (0..c_in * hw * hw).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let w: Vec<f32> = (0..c_out * c_in * k * k).map(|i| ((i * 104729) % 1000) as f32 / 5000.0 - 0.1).collect();
        let b = vec![0.1f32; c_out];
        let gflop = 2.0 * (c_out * c_in * k * k * oh * ow) as f64 / 1e9;
        let pw = PackedW::new(&w, c_out, c_in * k * k);
        let pt = PackedW::for_taps(&w, c_out, c_in, k * k);
        type Path<'a> = (&'static str, Box<dyn Fn() + 'a>);
        let mut paths: Vec<Path> = Vec::new();
        if k == 1 {
            paths.push(("1x1", Box::new(|| drop(sgemm::conv1x1(&[&x], hw * hw, &pw, &b, Act::Silu, None)))));
        } else {
            paths.push(("im2col", Box::new(|| drop(sgemm::conv_im2col(&x, &g, &pw, &b, Act::Silu, None)))));
            paths.push(("taps", Box::new(|| drop(sgemm::conv_taps(&x, &g, &pt, &b, Act::Silu, None)))));
        }
        for (name, f) in paths {
            let ms = time(20, &f);
            let med = { let mut v = ms.clone(); v.sort_by(|a, b| a.total_cmp(b)); v[v.len() / 2] };
            println!("sgemm {name} {c_in}->{c_out} k{k} s{s} @{hw}x{hw} ({}): {} ({:.0} GFLOP/s)", pw.isa().name(), stats(ms), gflop / med * 1e3);
        }
    }

    // YOLOv12n's area attention at 640: layer 6 (64 ch, 40x40, 2 heads, 4 areas), layer 8
    // (128 ch, 20x20, 4 heads, 1 area). FLOPs: q^T k and v S^T, 2 * 2 * d * na^2 per head and area.
    for &(c, hw, heads, area) in &[(64usize, 40usize, 2usize, 4usize), (128, 20, 4, 1)] {
        let n = hw * hw;
        let qkv: Vec<f32> = (0..3 * c * n).map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5).collect();
        let ms = time(20, || {
            perch_detect::model::kernels::area_attention(&qkv, c, n, heads, area);
        });
        let na = n / area;
        let gflop = (4 * (c / heads) * na * na * heads * area) as f64 / 1e9;
        let med = { let mut v = ms.clone(); v.sort_by(|a, b| a.total_cmp(b)); v[v.len() / 2] };
        println!("area attention {c} ch @{hw}x{hw} {heads} heads {area} areas: {} ({:.0} GFLOP/s)", stats(ms), gflop / med * 1e3);
    }
}

fn model_section(weights: &str, imgsz: usize, runs: usize, arch: Arch, nc: usize, dev: &Device) {
    let p = std::path::Path::new(weights);
    if !p.exists() {
        println!("{weights} not found: skipping the model benchmark");
        return;
    }
    let t = Instant::now();
    let model = YoloModel::load(p, arch, Scale::N, nc, dev).unwrap();
    println!("load: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    let x = Tensor::full(0.45f32, (1, 3, imgsz, imgsz), dev).unwrap();
    // Inside a pool, as `Detector` runs it: called from outside, every parallel loop would
    // wake a worker and put this thread to sleep.
    let pool = rayon::ThreadPoolBuilder::new().build().unwrap();
    let ms = pool.install(|| {
        time(runs, || {
            model.forward(&x).unwrap();
        })
    });
    println!("{arch:?} forward @{imgsz}: {}", stats(ms));
}

//! Letterbox + normalise + CHW for the cases: ours (runtime SIMD dispatch; in the steady
//! state, where the tensor keeps its padding, and with the padding rewritten), ours built for the
//! baseline target only, and the library path (fast_image_resize bilinear resize, then a
//! separate pad/normalise/transpose pass; YUV first converted to RGB8 by a plain loop, since
//! fast_image_resize has no YUV input).
//!
//! `cargo bench -p perch-preprocess --bench preprocess`

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use perch_pipeline::{ImageBuf, Letterbox, PixelFormat, TensorBuf};
use perch_preprocess::pixel::yuv_to_rgb;
use perch_preprocess::{Path, Preprocessor, PAD_VALUE};

/// The YUV cases have an RGB case of the same size beside them: the goal is YUV within 1.5x of it.
const CASES: [(&str, PixelFormat, u32, u32, u32); 6] = [
    ("1920x1080_rgb_640", PixelFormat::Rgb8, 1920, 1080, 640),
    ("1280x720_rgb_640", PixelFormat::Rgb8, 1280, 720, 640),
    ("1280x720_nv12_640", PixelFormat::Nv12, 1280, 720, 640),
    ("768x576_rgb_320", PixelFormat::Rgb8, 768, 576, 320),
    ("640x480_rgb_320", PixelFormat::Rgb8, 640, 480, 320),
    ("640x480_yuyv_320", PixelFormat::Yuyv, 640, 480, 320),
];

fn source(format: PixelFormat, w: u32, h: u32) -> ImageBuf {
    let mut img = ImageBuf::default();
    img.reshape(format, w, h);
    for (i, d) in img.data.iter_mut().enumerate() {
        *d = ((i as u32).wrapping_mul(2654435761) >> 13) as u8;
    }
    img
}

/// fast_image_resize + a separate normalise/transpose pass, with every buffer reused.
struct Library {
    resizer: Resizer,
    rgb: Vec<u8>,
    dst: Image<'static>,
}

impl Library {
    fn run(&mut self, src: &ImageBuf, t: u32, out: &mut TensorBuf) {
        let lb = Letterbox::new(src.width, src.height, t, t);
        let (w, h) = (src.width as usize, src.height as usize);
        let rgb: &[u8] = match src.format {
            PixelFormat::Rgb8 => &src.data,
            PixelFormat::Yuyv => {
                self.rgb.resize(w * h * 3, 0);
                for (p, o) in src.data.chunks_exact(4).zip(self.rgb.chunks_exact_mut(6)) {
                    o[..3].copy_from_slice(&yuv_to_rgb(p[0], p[1], p[3]));
                    o[3..].copy_from_slice(&yuv_to_rgb(p[2], p[1], p[3]));
                }
                &self.rgb
            }
            PixelFormat::Nv12 => {
                self.rgb.resize(w * h * 3, 0);
                let (ys, uv) = src.data.split_at(w * h);
                for y in 0..h {
                    let uvrow = &uv[(y / 2) * w..];
                    for x in 0..w {
                        let c = (x / 2) * 2;
                        let px = yuv_to_rgb(ys[y * w + x], uvrow[c], uvrow[c + 1]);
                        self.rgb[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&px);
                    }
                }
                &self.rgb
            }
            f => unimplemented!("{f:?}"),
        };
        if (self.dst.width(), self.dst.height()) != (lb.content_w, lb.content_h) {
            self.dst = Image::new(lb.content_w, lb.content_h, PixelType::U8x3);
        }
        let src_view = ImageRef::new(src.width, src.height, rgb, PixelType::U8x3).unwrap();
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear));
        self.resizer.resize(&src_view, &mut self.dst, &opts).unwrap();
        let (t, cw, ch) = (t as usize, lb.content_w as usize, lb.content_h as usize);
        let (left, top) = (lb.pad_left as usize, lb.pad_top as usize);
        out.reshape([3, t, t]);
        out.data.fill(PAD_VALUE);
        out.padded_for = None;
        let px = self.dst.buffer();
        for y in 0..ch {
            for x in 0..cw {
                for c in 0..3 {
                    out.data[(c * t + y + top) * t + x + left] = px[(y * cw + x) * 3 + c] as f32 * (1.0 / 255.0);
                }
            }
        }
    }
}

fn bench(c: &mut Criterion) {
    for (name, format, w, h, t) in CASES {
        let img = source(format, w, h);
        let mut g = c.benchmark_group(name);
        g.sample_size(30).warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(3));
        let mut out = TensorBuf::default();
        for (id, path) in [("ours_simd", Path::Auto), ("ours_baseline", Path::Baseline)] {
            let mut pre = Preprocessor::new(path);
            g.bench_function(id, |b| b.iter(|| pre.run(black_box(&img), t, t, &mut out).unwrap()));
        }
        // The same, but the padding is rewritten every time (a tensor fresh from the pool, or one
        // last used with another geometry): the steady state above writes only the content.
        let mut pre = Preprocessor::new(Path::Auto);
        g.bench_function("ours_simd_repad", |b| {
            b.iter(|| {
                out.padded_for = None;
                pre.run(black_box(&img), t, t, &mut out).unwrap()
            })
        });
        let mut lib = Library { resizer: Resizer::new(), rgb: Vec::new(), dst: Image::new(1, 1, PixelType::U8x3) };
        g.bench_function("fir_plus_normalize", |b| b.iter(|| lib.run(black_box(&img), t, &mut out)));
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

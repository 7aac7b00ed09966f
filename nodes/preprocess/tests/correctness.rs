//! The fast path against the scalar reference, the reference against independent implementations,
//! BT.601 colours, box mapping, the stage and its config.

use perch_pipeline::{BBox, ImageBuf, Letterbox, PixelFormat, TensorBuf};
use perch_preprocess::pixel::yuv_to_rgb;
use perch_preprocess::reference::letterbox_into_reference;
use perch_preprocess::{letterbox_into, Path, PreprocessConfig, PreprocessStage, Preprocessor, PAD_VALUE};
use proptest::prelude::*;

const FORMATS: [PixelFormat; 6] =
    [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Rgba8, PixelFormat::Gray8, PixelFormat::Yuyv, PixelFormat::Nv12];

/// Bound of |fast - reference| in tensor units: 0.01 of one 0..255 LSB. The fast path blends the
/// same integer RGB values horizontally in exact integers with the tap fraction rounded to 1/2^14
/// (error ≤ |b - a| 2^-15 ≤ 255/32768 ≈ 0.0078 LSB), then vertically in f32 with the reference's
/// weight (a convex combination, so the error stays ≤ 0.0078 LSB), plus a few f32 roundings of
/// 2^-24 relative on values ≤ 1 (≈ 1e-5 LSB): inside this bound, and far inside the 1 LSB asked for.
const FAST_VS_REFERENCE: f32 = 0.01 / 255.0;

fn image(format: PixelFormat, w: u32, h: u32, bytes: &[u8]) -> ImageBuf {
    let mut img = ImageBuf::default();
    img.reshape(format, w, h);
    for (i, d) in img.data.iter_mut().enumerate() {
        *d = bytes[i % bytes.len()];
    }
    img
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn arb_case() -> impl Strategy<Value = (PixelFormat, u32, u32, u32, u32, Vec<u8>)> {
    (0..FORMATS.len(), 1u32..80, 1u32..80, 1u32..100, 1u32..100, proptest::collection::vec(any::<u8>(), 1..4096))
        .prop_map(|(f, w, h, dw, dh, bytes)| {
            let format = FORMATS[f];
            let w = if format == PixelFormat::Yuyv { w * 2 } else { w };
            (format, w, h, dw, dh, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn fast_paths_match_reference((format, w, h, dw, dh, bytes) in arb_case()) {
        let img = image(format, w, h, &bytes);
        let mut want = TensorBuf::default();
        let lb_ref = letterbox_into_reference(&img, dw, dh, &mut want).unwrap();
        for path in [Path::Auto, Path::Baseline] {
            let mut got = TensorBuf::default();
            let lb = Preprocessor::new(path).run(&img, dw, dh, &mut got).unwrap();
            prop_assert_eq!(lb, lb_ref);
            prop_assert_eq!(got.shape, [3, dh as usize, dw as usize]);
            let d = max_diff(&got.data, &want.data);
            prop_assert!(d <= FAST_VS_REFERENCE, "{:?} {}x{} -> {}x{} via {:?}: max diff {} (bound {})", format, w, h, dw, dh, path, d, FAST_VS_REFERENCE);
        }
    }

    /// Model box -> source -> model is the identity within 1e-4 px (boxes inside the content area,
    /// model inputs up to 640: beyond 1024 px an f32 coordinate itself is coarser than 1e-4).
    #[test]
    fn box_round_trip(sw in 1u32..4000, sh in 1u32..4000, side in 1u32..=20, a in 0f32..1.0, b in 0f32..1.0, c in 0f32..1.0, d in 0f32..1.0) {
        let dst = side * 32;
        let lb = Letterbox::new(sw, sh, dst, dst);
        let (x0, y0) = (lb.pad_left as f32, lb.pad_top as f32);
        let (cw, ch) = (lb.content_w as f32, lb.content_h as f32);
        let m = BBox { x1: x0 + a.min(b) * cw, y1: y0 + c.min(d) * ch, x2: x0 + a.max(b) * cw, y2: y0 + c.max(d) * ch };
        let s = lb.box_to_source(m);
        let back = lb.box_to_model(s);
        for (p, q) in [(m.x1, back.x1), (m.y1, back.y1), (m.x2, back.x2), (m.y2, back.y2)] {
            prop_assert!((p - q).abs() <= 1e-4, "{}x{} -> {}: {:?} -> {:?} -> {:?}", sw, sh, dst, m, s, back);
        }
    }
}

#[test]
fn box_round_trip_inside_content_is_exact() {
    for (sw, sh, dst) in [(1920, 1080, 640), (1280, 720, 640), (768, 576, 320), (640, 480, 320), (100, 300, 640)] {
        let lb = Letterbox::new(sw, sh, dst, dst);
        let m = BBox {
            x1: lb.pad_left as f32 + 3.25,
            y1: lb.pad_top as f32 + 7.5,
            x2: lb.pad_left as f32 + lb.content_w as f32 - 2.0,
            y2: lb.pad_top as f32 + lb.content_h as f32 - 1.0,
        };
        let back = lb.box_to_model(lb.box_to_source(m));
        for (p, q) in [(m.x1, back.x1), (m.y1, back.y1), (m.x2, back.x2), (m.y2, back.y2)] {
            assert!((p - q).abs() <= 1e-4, "{sw}x{sh}->{dst}: {m:?} -> {back:?}");
        }
    }
}

#[test]
fn boxes_on_the_padding_border_map_to_source_edges() {
    for (sw, sh, dst) in [(1920, 1080, 640), (1280, 720, 640), (768, 576, 320), (480, 640, 320), (100, 300, 640), (640, 640, 640)] {
        let lb = Letterbox::new(sw, sh, dst, dst);
        // The content rectangle's corners map to the source corners.
        let content = BBox {
            x1: lb.pad_left as f32,
            y1: lb.pad_top as f32,
            x2: (lb.pad_left + lb.content_w) as f32,
            y2: (lb.pad_top + lb.content_h) as f32,
        };
        let s = lb.box_to_source(content);
        assert_eq!((s.x1, s.y1), (0.0, 0.0), "{sw}x{sh}->{dst}");
        assert_eq!((s.x2, s.y2), (sw as f32, sh as f32), "{sw}x{sh}->{dst}");
        // A box covering the whole model input, padding included, is clipped to exactly the source.
        let all = lb.box_to_source(BBox { x1: 0.0, y1: 0.0, x2: dst as f32, y2: dst as f32 });
        assert_eq!(all, BBox { x1: 0.0, y1: 0.0, x2: sw as f32, y2: sh as f32 }, "{sw}x{sh}->{dst}");
        // A box lying in the top/left padding collapses onto the source edge.
        if lb.pad_top > 0 {
            let b = lb.box_to_source(BBox { x1: 10.0, y1: 0.0, x2: 20.0, y2: lb.pad_top as f32 });
            assert_eq!((b.y1, b.y2), (0.0, 0.0));
        }
        if lb.pad_left > 0 {
            let b = lb.box_to_source(BBox { x1: 0.0, y1: 10.0, x2: lb.pad_left as f32, y2: 20.0 });
            assert_eq!((b.x1, b.x2), (0.0, 0.0));
        }
    }
}

#[test]
fn geometry_matches_ultralytics_letterbox() {
    // (src w, h, target) -> (content w, h, pad left, top), worked out with Ultralytics' formulas.
    for ((sw, sh, t), want) in [
        ((1920, 1080, 640), (640, 360, 0, 140)),
        ((1280, 720, 640), (640, 360, 0, 140)),
        ((768, 576, 320), (320, 240, 0, 40)),
        ((640, 480, 320), (320, 240, 0, 40)),
        ((768, 576, 640), (640, 480, 0, 80)),
        ((480, 640, 640), (480, 640, 80, 0)),
        ((100, 50, 640), (640, 320, 0, 160)),
        ((1, 1, 640), (640, 640, 0, 0)),
        ((639, 1, 640), (640, 1, 0, 319)),
        ((128, 5, 64), (64, 2, 0, 31)),
        ((3, 2, 64), (64, 43, 0, 10)),
    ] {
        let lb = Letterbox::new(sw, sh, t, t);
        assert_eq!((lb.content_w, lb.content_h, lb.pad_left, lb.pad_top), want, "{sw}x{sh}->{t}");
    }
}

/// Independent implementation: fast_image_resize's bilinear filter. When enlarging, a bilinear
/// convolution is exactly OpenCV's INTER_LINEAR (same half-pixel centres, clamped edges); it rounds to
/// u8 with 8-bit fixed-point weights, hence the tolerance of 1 LSB.
#[test]
fn enlarged_content_matches_fast_image_resize() {
    use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (sw, sh) = (97, 61);
    let bytes: Vec<u8> = (0..sw * sh * 3).map(|i| ((i * 7919) % 251) as u8 ^ (i / 13) as u8).collect();
    let img = image(PixelFormat::Rgb8, sw, sh, &bytes);
    for t in [320, 256] {
        let mut got = TensorBuf::default();
        let lb = letterbox_into(&img, t, t, &mut got).unwrap();
        let src = ImageRef::new(sw, sh, &img.data, PixelType::U8x3).unwrap();
        let mut dst = Image::new(lb.content_w, lb.content_h, PixelType::U8x3);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        Resizer::new().resize(&src, &mut dst, &opts).unwrap();
        let (cw, ch, plane) = (lb.content_w as usize, lb.content_h as usize, (t * t) as usize);
        let mut worst = 0f32;
        for y in 0..ch {
            for x in 0..cw {
                for c in 0..3 {
                    let ours = got.data[c * plane + (y + lb.pad_top as usize) * t as usize + x + lb.pad_left as usize] * 255.0;
                    let theirs = dst.buffer()[(y * cw + x) * 3 + c] as f32;
                    worst = worst.max((ours - theirs).abs());
                }
            }
        }
        assert!(worst <= 1.0, "{sw}x{sh} -> {t}: worst |ours - fast_image_resize| = {worst} (0..255 scale)");
    }
}

/// When shrinking, OpenCV's INTER_LINEAR (and so ours) does not antialias while fast_image_resize's
/// bilinear filter widens its support, so the two agree only on smooth content: on a smooth image
/// (period ≥ 64 px) they stay within 2 LSB.
#[test]
fn shrunk_smooth_content_matches_fast_image_resize() {
    use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    let (sw, sh) = (1280u32, 720u32);
    let mut img = ImageBuf::default();
    img.reshape(PixelFormat::Rgb8, sw, sh);
    for y in 0..sh {
        for x in 0..sw {
            let i = ((y * sw + x) * 3) as usize;
            let (fx, fy) = (x as f32 / 64.0, y as f32 / 80.0);
            img.data[i] = (127.5 + 120.0 * (fx * 0.7).sin()) as u8;
            img.data[i + 1] = (127.5 + 120.0 * (fy * 0.9).cos()) as u8;
            img.data[i + 2] = (127.5 + 120.0 * ((fx + fy) * 0.5).sin()) as u8;
        }
    }
    let t = 640;
    let mut got = TensorBuf::default();
    let lb = letterbox_into(&img, t, t, &mut got).unwrap();
    let src = ImageRef::new(sw, sh, &img.data, PixelType::U8x3).unwrap();
    let mut dst = Image::new(lb.content_w, lb.content_h, PixelType::U8x3);
    let opts = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(&src, &mut dst, &opts).unwrap();
    let (cw, ch, plane) = (lb.content_w as usize, lb.content_h as usize, (t * t) as usize);
    let mut worst = 0f32;
    for y in 0..ch {
        for x in 0..cw {
            for c in 0..3 {
                let ours = got.data[c * plane + (y + lb.pad_top as usize) * t as usize + x] * 255.0;
                worst = worst.max((ours - dst.buffer()[(y * cw + x) * 3 + c] as f32).abs());
            }
        }
    }
    assert!(worst <= 2.0, "worst |ours - fast_image_resize| = {worst}");
}

/// fast_image_resize's `Interpolation(Bilinear)` (fixed 2-tap kernel, no antialiasing) is OpenCV's
/// INTER_LINEAR also when shrinking: on noisy content ours stays within 1 LSB of it.
#[test]
fn shrunk_noisy_content_matches_fast_image_resize_interpolation() {
    use fast_image_resize::{images::Image, images::ImageRef, FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
    for (sw, sh, t) in [(1280u32, 720u32, 640u32), (1920, 1080, 640), (768, 576, 320), (333, 517, 96)] {
        let bytes: Vec<u8> = (0..sw * sh * 3).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let img = image(PixelFormat::Rgb8, sw, sh, &bytes);
        let mut got = TensorBuf::default();
        let lb = letterbox_into(&img, t, t, &mut got).unwrap();
        let src = ImageRef::new(sw, sh, &img.data, PixelType::U8x3).unwrap();
        let mut dst = Image::new(lb.content_w, lb.content_h, PixelType::U8x3);
        let opts = ResizeOptions::new().resize_alg(ResizeAlg::Interpolation(FilterType::Bilinear));
        Resizer::new().resize(&src, &mut dst, &opts).unwrap();
        let (cw, ch, plane) = (lb.content_w as usize, lb.content_h as usize, (t * t) as usize);
        let mut worst = 0f32;
        for y in 0..ch {
            for x in 0..cw {
                for c in 0..3 {
                    let ours = got.data[c * plane + (y + lb.pad_top as usize) * t as usize + x + lb.pad_left as usize] * 255.0;
                    worst = worst.max((ours - dst.buffer()[(y * cw + x) * 3 + c] as f32).abs());
                }
            }
        }
        assert!(worst <= 1.0, "{sw}x{sh} -> {t}: worst |ours - fast_image_resize| = {worst}");
    }
}

#[test]
fn padding_and_identity_content_are_exact() {
    // 64x32 RGB into 64x64: no resize, 16 rows of padding above and below.
    let bytes: Vec<u8> = (0..64 * 32 * 3).map(|i| (i % 256) as u8).collect();
    let img = image(PixelFormat::Rgb8, 64, 32, &bytes);
    let mut t = TensorBuf::default();
    let lb = letterbox_into(&img, 64, 64, &mut t).unwrap();
    assert_eq!((lb.content_w, lb.content_h, lb.pad_left, lb.pad_top), (64, 32, 0, 16));
    for c in 0..3 {
        for y in 0..64 {
            for x in 0..64 {
                let v = t.data[(c * 64 + y) * 64 + x];
                if (16..48).contains(&y) {
                    let want = img.data[((y - 16) * 64 + x) * 3 + c] as f32 / 255.0;
                    assert!((v - want).abs() <= 1e-7, "c{c} y{y} x{x}: {v} vs {want}");
                } else {
                    assert_eq!(v, PAD_VALUE);
                }
            }
        }
    }
}

#[test]
fn bgr_rgba_gray_select_the_right_channels() {
    let px = [10u8, 20, 30, 40];
    let cases: [(PixelFormat, &[u8], [u8; 3]); 4] = [
        (PixelFormat::Rgb8, &px[..3], [10, 20, 30]),
        (PixelFormat::Bgr8, &px[..3], [30, 20, 10]),
        (PixelFormat::Rgba8, &px[..4], [10, 20, 30]),
        (PixelFormat::Gray8, &px[..1], [10, 10, 10]),
    ];
    for (format, bytes, rgb) in cases {
        let img = image(format, 32, 32, bytes);
        let mut t = TensorBuf::default();
        letterbox_into(&img, 32, 32, &mut t).unwrap();
        for c in 0..3 {
            assert!(t.data[c * 1024..(c + 1) * 1024].iter().all(|&v| (v - rgb[c] as f32 / 255.0).abs() < 1e-7), "{format:?} c{c}");
        }
    }
}

/// The fixed-point conversion against BT.601 limited range in floating point, over every Y/U/V:
/// within 1 (rounding of the 3-decimal coefficients near .5), and exact on the reference colours.
#[test]
fn yuv_matches_bt601_float_reference() {
    let f = |y: u8, u: u8, v: u8| {
        let (y, u, v) = ((y as f64 - 16.0).max(0.0), u as f64 - 128.0, v as f64 - 128.0);
        let r = 1.164 * y + 1.596 * v;
        let g = 1.164 * y - 0.391 * u - 0.813 * v;
        let b = 1.164 * y + 2.018 * u;
        [r, g, b].map(|x| x.round().clamp(0.0, 255.0) as i32)
    };
    for y in 0..=255u8 {
        for u in (0..=255u8).step_by(3) {
            for v in (0..=255u8).step_by(3) {
                let got = yuv_to_rgb(y, u, v).map(|x| x as i32);
                let want = f(y, u, v);
                for c in 0..3 {
                    assert!((got[c] - want[c]).abs() <= 1, "Y{y} U{u} V{v}: {got:?} vs {want:?}");
                }
            }
        }
    }
    // Studio-swing colour bars (BT.601, 100 % amplitude): black, white, red, green, blue.
    assert_eq!(yuv_to_rgb(16, 128, 128), [0, 0, 0]);
    assert_eq!(yuv_to_rgb(235, 128, 128), [255, 255, 255]);
    // The 8-bit bar values are themselves rounded: pure red comes back as 254 (float formula: 254.4).
    assert_eq!(yuv_to_rgb(81, 90, 240), [254, 0, 0]);
    assert_eq!(yuv_to_rgb(145, 54, 34), [0, 255, 1]);
    assert_eq!(yuv_to_rgb(41, 240, 110), [0, 0, 255]);
}

/// Known colours through the whole pipeline in YUYV and NV12 (no resize: 64x64 into 64).
#[test]
fn yuyv_and_nv12_known_colours() {
    let colours = [((16u8, 128u8, 128u8), [0u8, 0, 0]), ((235, 128, 128), [255, 255, 255]), ((81, 90, 240), [254, 0, 0]), ((41, 240, 110), [0, 0, 255])];
    for ((y, u, v), rgb) in colours {
        let mut yuyv = ImageBuf::default();
        yuyv.reshape(PixelFormat::Yuyv, 64, 64);
        for p in yuyv.data.chunks_exact_mut(4) {
            p.copy_from_slice(&[y, u, y, v]);
        }
        let mut nv12 = ImageBuf::default();
        nv12.reshape(PixelFormat::Nv12, 64, 64);
        nv12.data[..64 * 64].fill(y);
        for p in nv12.data[64 * 64..].chunks_exact_mut(2) {
            p.copy_from_slice(&[u, v]);
        }
        for img in [&yuyv, &nv12] {
            let mut t = TensorBuf::default();
            letterbox_into(img, 64, 64, &mut t).unwrap();
            for c in 0..3 {
                let want = rgb[c] as f32 / 255.0;
                assert!(t.data[c * 4096..(c + 1) * 4096].iter().all(|&x| (x - want).abs() < 1e-6), "{:?} YUV({y},{u},{v}) c{c}", img.format);
            }
        }
    }
}

#[test]
fn nv12_chroma_is_shared_by_2x2_blocks_and_yuyv_by_pairs() {
    // Odd NV12 size: the last column/row of chroma covers one pixel.
    let (w, h) = (5u32, 3u32);
    let mut img = ImageBuf::default();
    img.reshape(PixelFormat::Nv12, w, h);
    for (i, d) in img.data.iter_mut().enumerate() {
        *d = (i * 37 % 256) as u8;
    }
    let mut t = TensorBuf::default();
    let lb = letterbox_into(&img, 5, 5, &mut t).unwrap();
    assert_eq!((lb.content_w, lb.content_h, lb.pad_top), (5, 3, 1));
    for y in 0..3usize {
        for x in 0..5usize {
            let uv = 15 + (y / 2) * 6 + (x / 2) * 2;
            let rgb = yuv_to_rgb(img.data[y * 5 + x], img.data[uv], img.data[uv + 1]);
            for c in 0..3 {
                assert!((t.data[c * 25 + (y + 1) * 5 + x] - rgb[c] as f32 / 255.0).abs() < 1e-6);
            }
        }
    }
}

#[test]
fn bad_buffers_and_targets_are_clear_errors() {
    let mut img = ImageBuf::default();
    img.reshape(PixelFormat::Rgb8, 10, 10);
    img.data.pop();
    let mut t = TensorBuf::default();
    let e = letterbox_into(&img, 64, 64, &mut t).unwrap_err().to_string();
    assert!(e.contains("300 bytes") && e.contains("299"), "{e}");
    img.reshape(PixelFormat::Yuyv, 7, 2);
    let e = letterbox_into(&img, 64, 64, &mut t).unwrap_err().to_string();
    assert!(e.contains("even width"), "{e}");
    img.reshape(PixelFormat::Rgb8, 0, 10);
    assert!(letterbox_into(&img, 64, 64, &mut t).unwrap_err().to_string().contains("empty"));
    img.reshape(PixelFormat::Rgb8, 4, 4);
    assert!(letterbox_into(&img, 0, 64, &mut t).unwrap_err().to_string().contains("out of range"));
}

#[test]
fn steady_state_reuses_the_tensor_allocation() {
    let img = image(PixelFormat::Nv12, 128, 72, &[1, 50, 200, 7]);
    let mut t = TensorBuf::default();
    let mut pre = Preprocessor::new(Path::Auto);
    pre.run(&img, 64, 64, &mut t).unwrap();
    let ptr = t.data.as_ptr();
    for _ in 0..3 {
        pre.run(&img, 64, 64, &mut t).unwrap();
        assert_eq!(t.data.as_ptr(), ptr);
    }
}

#[test]
fn config_validation_and_serde() {
    assert_eq!(PreprocessConfig::default().imgsz, 640);
    assert!(PreprocessStage::new(&PreprocessConfig::default()).is_ok());
    for bad in [0, 100, 630, 16] {
        let e = PreprocessStage::new(&PreprocessConfig { imgsz: bad }).err().unwrap().to_string();
        assert!(e.contains("multiple of 32") && e.contains("detect.imgsz"), "{e}");
    }
    let c: PreprocessConfig = toml::from_str("imgsz = 320").unwrap();
    assert_eq!(c.imgsz, 320);
    let e = toml::from_str::<PreprocessConfig>("imgsize = 320").unwrap_err().to_string();
    assert!(e.contains("imgsize"), "{e}");
}

#[test]
fn f16_output_is_the_f32_tensor_rounded() {
    let img = image(PixelFormat::Bgr8, 50, 30, &[3, 99, 250, 17, 128]);
    let mut pre = Preprocessor::new(Path::Auto);
    let mut h = Vec::new();
    let lb16 = pre.run_f16(&img, 64, 64, &mut h).unwrap();
    let mut t = TensorBuf::default();
    let lb = pre.run(&img, 64, 64, &mut t).unwrap();
    assert_eq!(lb, lb16);
    assert_eq!(h.len(), t.data.len());
    for (a, b) in h.iter().zip(&t.data) {
        // f16 has 11 significant bits: relative error ≤ 2^-11 (well under 1 LSB of 0..255 for values ≤ 1).
        assert!((a.to_f32() - b).abs() <= b.abs() * (1.0 / 2048.0) + 1e-7);
    }
}

/// Camera-sized frames (where the SIMD kernels run on whole 32-pixel groups and 8-output windows,
/// with tails), a shrink beyond the windows' reach (3840 → 320, portable fallback) and an odd
/// enlargement: `Path::Auto` (AVX2 kernels) and `Path::Baseline` give bit-identical tensors, and
/// both stay within the bound of the scalar reference.
#[test]
fn simd_and_baseline_are_bit_identical_at_camera_sizes() {
    let noise: Vec<u8> = (0..7919u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    for format in FORMATS {
        for (w, h, t) in [(1280, 720, 640), (1920, 1080, 640), (3840, 2160, 320), (640, 480, 320), (98, 61, 640), (1282, 722, 640)] {
            let img = image(format, w, h, &noise);
            let (mut simd, mut base, mut want) = (TensorBuf::default(), TensorBuf::default(), TensorBuf::default());
            Preprocessor::new(Path::Auto).run(&img, t, t, &mut simd).unwrap();
            Preprocessor::new(Path::Baseline).run(&img, t, t, &mut base).unwrap();
            assert!(simd.data == base.data, "{format:?} {w}x{h} -> {t}: SIMD and baseline differ");
            if w * h <= 1920 * 1080 {
                letterbox_into_reference(&img, t, t, &mut want).unwrap();
                let d = max_diff(&simd.data, &want.data);
                assert!(d <= FAST_VS_REFERENCE, "{format:?} {w}x{h} -> {t}: max diff {d}");
            }
        }
    }
}

/// One tensor reused across geometries, as the frame pool does: the padding is skipped only when
/// the buffer holds this letterbox's padding, so the result always equals a fresh tensor's; a
/// writer that resets `padded_for` gets the padding rewritten.
#[test]
fn reused_tensor_keeps_or_rewrites_padding_exactly() {
    let noise: Vec<u8> = (0..4099u32).map(|i| (i.wrapping_mul(2246822519) >> 11) as u8).collect();
    let mut pre = Preprocessor::new(Path::Auto);
    let mut reused = TensorBuf::default();
    for (w, h, t) in [(1280, 720, 320), (1280, 720, 320), (720, 1280, 320), (640, 640, 320), (1280, 720, 320), (333, 517, 320), (1280, 720, 640)] {
        let img = image(PixelFormat::Rgb8, w, h, &noise);
        let lb = pre.run(&img, t, t, &mut reused).unwrap();
        assert_eq!(reused.padded_for, Some(lb));
        let mut fresh = TensorBuf::default();
        Preprocessor::new(Path::Auto).run(&img, t, t, &mut fresh).unwrap();
        assert!(reused.data == fresh.data, "{w}x{h} -> {t} after another geometry");
    }
    let img = image(PixelFormat::Rgb8, 1280, 720, &noise);
    let mut fresh = TensorBuf::default();
    pre.run(&img, 640, 640, &mut fresh).unwrap();
    reused.data.fill(0.0);
    reused.padded_for = None;
    pre.run(&img, 640, 640, &mut reused).unwrap();
    assert!(reused.data == fresh.data, "padding not rewritten after padded_for was reset");
}

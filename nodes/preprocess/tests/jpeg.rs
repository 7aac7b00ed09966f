//! JPEG decode into pooled buffers, on the real vtest frames (768x576 pedestrians, in the repo).

use perch_pipeline::{ImageBuf, PixelFormat, TensorBuf};
use perch_preprocess::{decode_jpeg_into, letterbox_into, PAD_VALUE};

fn vtest_frame(n: u32) -> Option<Vec<u8>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../datasets/vtest/img1/{n:06}.jpg"));
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            perch_pipeline::fixtures::missing(&format!("fixture {} unreadable: {e}", p.display()));
            None
        }
    }
}

#[test]
fn decodes_vtest_frames_into_a_reused_buffer() {
    let (Some(a), Some(b)) = (vtest_frame(1), vtest_frame(2)) else { return };
    let mut img = ImageBuf::default();
    decode_jpeg_into(&a, &mut img).unwrap();
    assert_eq!((img.format, img.width, img.height), (PixelFormat::Rgb8, 768, 576));
    assert_eq!(img.data.len(), 768 * 576 * 3);
    let mean = img.data.iter().map(|&x| x as f64).sum::<f64>() / img.data.len() as f64;
    assert!((40.0..220.0).contains(&mean), "implausible mean {mean}");
    // Real content, not a flat fill: many distinct values.
    let mut seen = [false; 256];
    img.data.iter().for_each(|&x| seen[x as usize] = true);
    assert!(seen.iter().filter(|&&s| s).count() > 200);
    let ptr = img.data.as_ptr();
    decode_jpeg_into(&b, &mut img).unwrap();
    assert_eq!(img.data.as_ptr(), ptr, "the second frame must reuse the first frame's allocation");

    // And through the letterbox: 768x576 -> 640 has 80 rows of padding above and below.
    let mut t = TensorBuf::default();
    let lb = letterbox_into(&img, 640, 640, &mut t).unwrap();
    assert_eq!((lb.content_w, lb.content_h, lb.pad_top), (640, 480, 80));
    for c in 0..3 {
        let plane = &t.data[c * 640 * 640..(c + 1) * 640 * 640];
        assert!(plane[..80 * 640].iter().chain(&plane[560 * 640..]).all(|&v| v == PAD_VALUE));
        let content = &plane[80 * 640..560 * 640];
        // 0..1 up to f32 rounding of the folded 1/255 weights (a 255 may come out as 1 + 1 ulp).
        assert!(content.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)));
        let m = content.iter().map(|&v| v as f64).sum::<f64>() / content.len() as f64 * 255.0;
        let src_mean = img.data.iter().skip(c).step_by(3).map(|&x| x as f64).sum::<f64>() / (768.0 * 576.0);
        assert!((m - src_mean).abs() < 1.0, "channel {c}: tensor mean {m} vs source mean {src_mean}");
    }
}

#[test]
fn garbage_is_a_clear_error() {
    let mut img = ImageBuf::default();
    let e = decode_jpeg_into(b"definitely not a jpeg", &mut img).unwrap_err().to_string();
    assert!(e.contains("JPEG"), "{e}");
    let e = decode_jpeg_into(&[], &mut img).unwrap_err().to_string();
    assert!(e.contains("JPEG"), "{e}");
}

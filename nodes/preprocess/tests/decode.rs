//! JPEG and PNG decode into pooled buffers, on the real vtest frames (768x576 pedestrians, in the
//! repo): complete frames decode, truncated/corrupt/oversized ones are errors (never partial frames).

use perch_pipeline::{ImageBuf, PixelFormat, TensorBuf};
use perch_preprocess::{decode_jpeg_into, letterbox_into, DecodeLimits, ImageDecoder, PAD_VALUE};

fn vtest_frame(n: u32) -> Option<Vec<u8>> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../datasets/vtest/img1/{n:06}.jpg"));
    match std::fs::read(&p) {
        Ok(b) => Some(b),
        Err(e) => {
            perch_pipeline::fixtures::missing(&format!("fixture {} missing: {e}", p.display()));
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

/// Every cut of a real JPEG that loses entropy-coded data is an error: a half-written frame must
/// never come out as a (grey-filled) complete one.
#[test]
fn truncated_jpeg_is_an_error_at_every_cut() {
    let Some(full) = vtest_frame(3) else { return };
    let mut img = ImageBuf::default();
    decode_jpeg_into(&full, &mut img).unwrap();
    // Cuts spread over the file, the first 300 bytes (the reproduction) and the last bytes
    // before the EOI marker.
    let mut cuts: Vec<usize> = (1..full.len() - 2).step_by(full.len() / 40).collect();
    cuts.extend([300, full.len() - 3, full.len() - 4, full.len() - 16]);
    for cut in cuts {
        let e = decode_jpeg_into(&full[..cut], &mut img);
        assert!(e.is_err(), "a JPEG cut at {cut} of {} bytes decoded as a complete frame", full.len());
    }
    let e = decode_jpeg_into(&full[..300], &mut img).unwrap_err().to_string();
    assert!(e.contains("JPEG"), "{e}");
}

/// A marker in the middle of the scan (what a corrupt write or a dropped USB packet leaves) is an error.
#[test]
fn corrupt_jpeg_scan_data_is_an_error() {
    let Some(full) = vtest_frame(3) else { return };
    let mut img = ImageBuf::default();
    for at in [full.len() / 3, full.len() / 2, full.len() * 4 / 5] {
        let mut bad = full.clone();
        bad[at] = 0xff;
        bad[at + 1] = 0xd9; // EOI long before the last MCU
        assert!(decode_jpeg_into(&bad, &mut img).is_err(), "EOI at {at} decoded");
        let mut bad = full.clone();
        bad[at] = 0xff;
        bad[at + 1] = 0xc4; // a table definition inside the entropy-coded data
        assert!(decode_jpeg_into(&bad, &mut img).is_err(), "DHT at {at} decoded");
    }
}

/// A JPEG whose SOF claims 60000x60000 is refused from the header, before any buffer is sized.
#[test]
fn oversized_jpeg_header_is_refused_before_allocating() {
    let Some(mut bytes) = vtest_frame(1) else { return };
    let sof = bytes.windows(2).position(|w| w == [0xff, 0xc0]).expect("baseline SOF0");
    bytes[sof + 5..sof + 9].copy_from_slice(&[0xea, 0x60, 0xea, 0x60]); // height, width = 60000
    let mut img = ImageBuf::default();
    let e = format!("{:#}", decode_jpeg_into(&bytes, &mut img).unwrap_err());
    assert!(e.contains("60000x60000") && e.contains("max_pixels"), "{e}");
    assert!(img.data.capacity() < 1 << 20, "a buffer was sized from the claimed header");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

fn png_of(img: &ImageBuf, color: image::ExtendedColorType, pixels: &[u8]) -> Vec<u8> {
    use image::ImageEncoder;
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out).write_image(pixels, img.width, img.height, color).unwrap();
    out
}

/// PNGs in every colour type the replay sees decode to the same RGB8 pixels.
#[test]
fn png_colour_types_decode_to_rgb8() {
    let Some(jpeg) = vtest_frame(1) else { return };
    let mut rgb = ImageBuf::default();
    decode_jpeg_into(&jpeg, &mut rgb).unwrap();
    let mut dec = ImageDecoder::default();
    let mut out = ImageBuf::default();
    dec.decode(&png_of(&rgb, image::ExtendedColorType::Rgb8, &rgb.data), &mut out).unwrap();
    assert_eq!((out.width, out.height, &out.data), (768, 576, &rgb.data));
    let rgba: Vec<u8> = rgb.data.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 200]).collect();
    dec.decode(&png_of(&rgb, image::ExtendedColorType::Rgba8, &rgba), &mut out).unwrap();
    assert_eq!(out.data, rgb.data);
    let gray: Vec<u8> = rgb.data.chunks_exact(3).map(|p| p[1]).collect();
    dec.decode(&png_of(&rgb, image::ExtendedColorType::L8, &gray), &mut out).unwrap();
    assert!(out.data.chunks_exact(3).zip(&gray).all(|(p, &g)| p == [g, g, g]));
    let rgb16: Vec<u8> = rgb.data.iter().flat_map(|&v| (v as u16 * 257).to_ne_bytes()).collect();
    dec.decode(&png_of(&rgb, image::ExtendedColorType::Rgb16, &rgb16), &mut out).unwrap();
    assert_eq!(out.data, rgb.data);
}

/// Every cut of a PNG, and a flipped byte in its image data, is an error.
#[test]
fn truncated_or_corrupt_png_is_an_error() {
    let Some(jpeg) = vtest_frame(2) else { return };
    let mut rgb = ImageBuf::default();
    decode_jpeg_into(&jpeg, &mut rgb).unwrap();
    let full = png_of(&rgb, image::ExtendedColorType::Rgb8, &rgb.data);
    let mut dec = ImageDecoder::default();
    let mut out = ImageBuf::default();
    for cut in (1..full.len() - 12).step_by(full.len() / 40).chain([full.len() - 13]) {
        assert!(dec.decode(&full[..cut], &mut out).is_err(), "a PNG cut at {cut} of {} decoded", full.len());
    }
    let mut bad = full.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x55;
    let e = dec.decode(&bad, &mut out).unwrap_err().to_string();
    assert!(e.contains("PNG") && e.contains("corrupt"), "{e}");
}

/// The reproduction: a 274-byte-class PNG whose IHDR claims 50000x50000 is refused before
/// any pixel buffer is sized (it once aborted the run allocating 7.5 GB).
#[test]
fn oversized_png_header_is_refused_before_allocating() {
    let img = ImageBuf { format: PixelFormat::Rgb8, width: 4, height: 4, data: vec![7; 48] };
    let mut png = png_of(&img, image::ExtendedColorType::Rgb8, &img.data);
    // IHDR: length(4) "IHDR"(4) width(4) height(4) ... crc(4), right after the 8-byte signature.
    png[16..20].copy_from_slice(&50_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&50_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    assert!(png.len() < 400, "{} bytes", png.len());
    let mut out = ImageBuf::default();
    let e = format!("{:#}", ImageDecoder::default().decode(&png, &mut out).unwrap_err());
    assert!(e.contains("50000x50000") && e.contains("max_pixels"), "{e}");
    assert!(out.data.capacity() < 1 << 20);
    // Under a lower limit, an ordinary frame is refused the same way.
    let mut small = ImageDecoder::new(DecodeLimits { max_pixels: 1000 });
    let Some(jpeg) = vtest_frame(1) else { return };
    assert!(format!("{:#}", small.decode(&jpeg, &mut out).unwrap_err()).contains("768x576"));
}

/// Small JPEGs of the kinds encoders write (4:2:0, 4:2:2, 4:4:4 with odd sizes, grayscale,
/// restart intervals per MCU row and per 3 MCUs, default and optimised Huffman tables, progressive),
/// made from vtest frames with ffmpeg and libjpeg-turbo's cjpeg/jpegtran (`tests/data/README.md`).
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg") && !p.to_string_lossy().contains("arith"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    v.sort();
    assert!(v.len() >= 8, "{} fixtures", v.len());
    v
}

/// No false alarms: every real frame and every fixture is complete, and decodes.
#[test]
fn complete_jpegs_pass_the_completeness_check() {
    let mut img = ImageBuf::default();
    for (name, bytes) in fixtures() {
        perch_preprocess::jpeg_check::check_complete(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        decode_jpeg_into(&bytes, &mut img).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vtest/img1");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    let mut n = 0;
    for e in entries {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        perch_preprocess::jpeg_check::check_complete(&bytes).unwrap();
        n += 1;
    }
    assert_eq!(n, 200);
}

/// Every cut of every fixture that loses scan data, and an EOI written into the middle of the scan
/// (the data ends early but the file looks finished), are errors.
#[test]
fn every_cut_and_early_eoi_of_every_fixture_is_an_error() {
    let mut img = ImageBuf::default();
    for (name, full) in fixtures() {
        let eoi = full.len() - 2;
        assert_eq!(&full[eoi..], [0xff, 0xd9], "{name}");
        let sos = full.windows(2).position(|w| w == [0xff, 0xda]).unwrap();
        for cut in (2..eoi).chain([eoi + 1]) {
            assert!(decode_jpeg_into(&full[..cut], &mut img).is_err(), "{name} cut at {cut} of {} decoded", full.len());
        }
        if name.contains("progressive") {
            // Progressive: the last scans missing (cut before the last SOS, then EOI) is incomplete.
            let last_sos = full.windows(2).rposition(|w| w == [0xff, 0xda]).unwrap();
            let mut short = full[..last_sos].to_vec();
            short.extend([0xff, 0xd9]);
            assert!(decode_jpeg_into(&short, &mut img).is_err(), "{name}: without its last scan decoded");
            continue;
        }
        // The scan data stops early, and a proper EOI follows: the frame is still incomplete.
        for at in [sos + 40, (sos + eoi) / 2, eoi - 8] {
            let mut short = full[..at].to_vec();
            short.extend([0xff, 0xd9]);
            assert!(decode_jpeg_into(&short, &mut img).is_err(), "{name}: scan cut at {at} + EOI decoded");
        }
    }
}

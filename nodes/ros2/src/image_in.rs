//! Raw `sensor_msgs/Image` pixels into perch's pooled [`ImageBuf`], in their native layout.
//!
//! perch's preprocessing converts RGB8, BGR8, RGBA8, GRAY8, YUYV and NV12 itself (fused with the
//! resize), so a raw image is only copied: row by row when the publisher pads its rows (`step` >
//! the row's bytes), in one copy when it does not. `data` is sized once and reused (`reshape`), so
//! a steady stream of same-sized images allocates nothing here. Nothing is trusted: the size the
//! message claims is checked against `source.max_pixels` and against `step` and the data's length
//! before anything is sized or copied.

use perch_pipeline::{ImageBuf, PixelFormat};
use perch_preprocess::DecodeLimits;

/// The `encoding`s perch reads (`sensor_msgs/image_encodings`, plus `yuyv`, which some V4L2
/// drivers publish for `yuv422_yuy2`).
pub const SUPPORTED_ENCODINGS: &str = "rgb8, bgr8, rgba8, mono8, yuv422_yuy2 (yuyv), nv12";

/// perch's layout for a ROS image encoding; `None`: not supported (e.g. `yuv422` is UYVY, `bayer_*`,
/// 16-bit and float encodings).
pub fn pixel_format(encoding: &str) -> Option<PixelFormat> {
    Some(match encoding {
        "rgb8" => PixelFormat::Rgb8,
        "bgr8" => PixelFormat::Bgr8,
        "rgba8" => PixelFormat::Rgba8,
        "mono8" => PixelFormat::Gray8,
        "yuv422_yuy2" | "yuyv" => PixelFormat::Yuyv,
        "nv12" => PixelFormat::Nv12,
        _ => return None,
    })
}

/// Why a received image did not become a frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Its `encoding` (or `CompressedImage.format`) is not one perch reads.
    Unsupported,
    /// Its geometry, `step` or data length do not fit together, or it is larger than
    /// `source.max_pixels`, or (compressed) it does not decode.
    Malformed(String),
}

/// The fields of a `sensor_msgs/Image` that say where its pixels are.
#[derive(Clone, Copy, Debug)]
pub struct RawImage<'a> {
    pub width: u32,
    pub height: u32,
    pub step: u32,
    pub data: &'a [u8],
}

/// Rows of each plane and the bytes of one tightly packed row (NV12: the Y plane, then the
/// interleaved UV plane at half height).
fn planes(format: PixelFormat, w: usize, h: usize) -> [(usize, usize); 2] {
    match format {
        PixelFormat::Rgb8 | PixelFormat::Bgr8 => [(h, w * 3), (0, 0)],
        PixelFormat::Rgba8 => [(h, w * 4), (0, 0)],
        PixelFormat::Gray8 => [(h, w), (0, 0)],
        PixelFormat::Yuyv => [(h, w * 2), (0, 0)],
        PixelFormat::Nv12 => [(h, w), (h.div_ceil(2), 2 * w.div_ceil(2))],
    }
}

/// Copy `raw` into `out` as `format`, rows tightly packed. On error `out` holds no frame.
pub fn copy_raw(format: PixelFormat, raw: RawImage<'_>, limits: &DecodeLimits, out: &mut ImageBuf) -> Result<(), Reject> {
    let malformed = |m: String| Reject::Malformed(m);
    limits.check(raw.width as u64, raw.height as u64).map_err(|e| malformed(format!("{e:#}")))?;
    let (w, h, step) = (raw.width as usize, raw.height as usize, raw.step as usize);
    if format == PixelFormat::Yuyv && w % 2 == 1 {
        return Err(malformed(format!("a {w}x{h} YUYV image: YUYV needs an even width (two pixels share U and V)")));
    }
    let planes = planes(format, w, h);
    let widest = planes.iter().map(|p| p.1).max().unwrap_or(0);
    if step < widest {
        return Err(malformed(format!("step {step} is less than the {widest} bytes of one {w}-pixel row")));
    }
    // Every row is `step` apart (NV12's UV rows too); the last row need not be padded.
    let rows: usize = planes.iter().map(|p| p.0).sum();
    let last_row = planes.iter().rev().find(|p| p.0 > 0).map_or(0, |p| p.1);
    let (min, max) = (step * (rows - 1) + last_row, step * rows);
    if !(min..=max).contains(&raw.data.len()) {
        return Err(malformed(format!(
            "data is {} bytes; a {w}x{h} image with step {step} has {max} ({rows} rows of {step} bytes)",
            raw.data.len()
        )));
    }
    out.reshape(format, raw.width, raw.height);
    let mut src = 0;
    let mut dst = 0;
    for (n, row) in planes {
        if n == 0 {
            continue;
        }
        if step == row {
            out.data[dst..dst + n * row].copy_from_slice(&raw.data[src..src + n * row]);
        } else {
            for r in 0..n {
                let s = src + r * step;
                out.data[dst + r * row..dst + (r + 1) * row].copy_from_slice(&raw.data[s..s + row]);
            }
        }
        src += n * step;
        dst += n * row;
    }
    debug_assert_eq!(dst, out.data.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `w`x`h` image of `format` whose rows are `pad` bytes longer than its widest row (the
    /// padding is 0xEE, pixel bytes count up), its step, and the tight bytes perch must end up with.
    fn padded(format: PixelFormat, w: usize, h: usize, pad: usize) -> (Vec<u8>, u32, Vec<u8>) {
        let step = planes(format, w, h).iter().map(|p| p.1).max().unwrap() + pad;
        let (mut data, mut tight, mut v) = (Vec::new(), Vec::new(), 0u8);
        for (n, row) in planes(format, w, h) {
            for _ in 0..n {
                for _ in 0..row {
                    data.push(v);
                    tight.push(v);
                    v = v.wrapping_add(7);
                }
                data.extend(std::iter::repeat_n(0xEE, step - row));
            }
        }
        (data, step as u32, tight)
    }

    fn convert(encoding: &str, w: u32, h: u32, step: u32, data: &[u8]) -> Result<ImageBuf, Reject> {
        let format = pixel_format(encoding).ok_or(Reject::Unsupported)?;
        let mut out = ImageBuf::default();
        copy_raw(format, RawImage { width: w, height: h, step, data }, &DecodeLimits::default(), &mut out)?;
        Ok(out)
    }

    #[test]
    fn every_encoding_with_and_without_row_padding() {
        for (encoding, format) in [
            ("rgb8", PixelFormat::Rgb8),
            ("bgr8", PixelFormat::Bgr8),
            ("rgba8", PixelFormat::Rgba8),
            ("mono8", PixelFormat::Gray8),
            ("yuv422_yuy2", PixelFormat::Yuyv),
            ("yuyv", PixelFormat::Yuyv),
            ("nv12", PixelFormat::Nv12),
        ] {
            for (w, h) in [(4usize, 3usize), (6, 4), (2, 1)] {
                for pad in [0, 1, 5, 64] {
                    let (data, step, tight) = padded(format, w, h, pad);
                    let out = convert(encoding, w as u32, h as u32, step, &data).unwrap_or_else(|e| panic!("{encoding} {w}x{h} pad {pad}: {e:?}"));
                    assert_eq!((out.format, out.width, out.height), (format, w as u32, h as u32), "{encoding}");
                    assert_eq!(out.data.len(), format.buffer_len(w as u32, h as u32), "{encoding} {w}x{h} pad {pad}");
                    assert_eq!(out.data, tight, "{encoding} {w}x{h} pad {pad}");
                }
            }
        }
    }

    #[test]
    fn nv12_with_an_odd_size_keeps_its_half_resolution_chroma() {
        let (w, h) = (5usize, 3usize);
        let (data, step, tight) = padded(PixelFormat::Nv12, w, h, 2);
        assert_eq!(step, 6 + 2); // the UV row (2 * ceil(5/2) = 6 bytes) is the widest
        let out = convert("nv12", w as u32, h as u32, step, &data).unwrap();
        assert_eq!(out.data.len(), 5 * 3 + 6 * 2);
        assert_eq!(out.data, tight);
    }

    #[test]
    fn the_last_row_may_omit_its_padding() {
        let (mut data, step, tight) = padded(PixelFormat::Rgb8, 4, 2, 4);
        data.truncate(data.len() - 4);
        assert_eq!(convert("rgb8", 4, 2, step, &data).unwrap().data, tight);
    }

    #[test]
    fn reuses_the_pooled_allocation() {
        let (data, step, _) = padded(PixelFormat::Rgb8, 8, 8, 3);
        let mut out = ImageBuf::default();
        copy_raw(PixelFormat::Rgb8, RawImage { width: 8, height: 8, step, data: &data }, &DecodeLimits::default(), &mut out).unwrap();
        let ptr = out.data.as_ptr();
        for _ in 0..3 {
            copy_raw(PixelFormat::Rgb8, RawImage { width: 8, height: 8, step, data: &data }, &DecodeLimits::default(), &mut out).unwrap();
            assert_eq!(out.data.as_ptr(), ptr);
        }
    }

    #[test]
    fn unsupported_encodings() {
        for e in ["yuv422", "bayer_rggb8", "mono16", "32FC1", "16UC1", "bgra8", "RGB8", ""] {
            assert_eq!(pixel_format(e), None, "{e}");
        }
    }

    #[test]
    fn malformed_sizes_are_rejected_with_the_reason() {
        let bad = |enc: &str, w, h, step, len: usize| match convert(enc, w, h, step, &vec![0; len]) {
            Err(Reject::Malformed(m)) => m,
            other => panic!("{enc} {w}x{h} step {step} len {len}: {other:?}"),
        };
        assert!(bad("rgb8", 4, 2, 11, 24).contains("step 11 is less than the 12 bytes"));
        assert!(bad("rgb8", 4, 2, 12, 23).contains("data is 23 bytes"));
        assert!(bad("rgb8", 4, 2, 12, 25).contains("data is 25 bytes"));
        assert!(bad("nv12", 4, 2, 4, 8).contains("data is 8 bytes")); // the UV plane is missing
        assert!(bad("mono8", 0, 2, 0, 0).contains("empty"));
        assert!(bad("yuyv", 3, 2, 6, 12).contains("even width"));
        let e = match copy_raw(
            PixelFormat::Gray8,
            RawImage { width: 100, height: 100, step: 100, data: &[0; 10_000] },
            &DecodeLimits { max_pixels: 9_999 },
            &mut ImageBuf::default(),
        ) {
            Err(Reject::Malformed(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(e.contains("source.max_pixels"), "{e}");
        // A huge claimed size with tiny data is refused before anything is sized.
        assert!(bad("rgb8", 60_000, 60_000, 180_000, 16).contains("source.max_pixels"));
    }
}

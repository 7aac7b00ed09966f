//! A driver buffer into the frame's pooled image: YUYV copied once (rows re-packed when the driver
//! pads them), MJPEG decoded to RGB8 by the preprocess crate's zune-jpeg path. No allocation once
//! the buffers have grown to the frame size (the JPEG decoder's own working state aside).

use anyhow::{bail, ensure};
use perch_pipeline::{ImageBuf, PixelFormat};

use super::modes::{fourcc_str, MJPG, YUYV};

/// The wire format of the frames, as granted by the driver (`VIDIOC_G_FMT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WireFormat {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    /// Bytes per row for YUYV (may exceed `2 * width`); unused for MJPEG.
    pub stride: u32,
}

/// Fill `out` from `bytes` (the `bytesused` part of a dequeued buffer).
pub fn into_image(wire: &WireFormat, bytes: &[u8], out: &mut ImageBuf, scratch: &mut Vec<u8>) -> anyhow::Result<()> {
    match wire.fourcc {
        YUYV => yuyv_into(wire, bytes, out),
        MJPG => mjpeg_into(bytes, out, scratch),
        other => bail!("pixel format {} is not read by perch", fourcc_str(other)),
    }
}

fn yuyv_into(wire: &WireFormat, bytes: &[u8], out: &mut ImageBuf) -> anyhow::Result<()> {
    let (w, h) = (wire.width as usize, wire.height as usize);
    let row = w * 2;
    let stride = (wire.stride as usize).max(row);
    // The last row need not carry its padding.
    let need = stride * h.saturating_sub(1) + row;
    ensure!(
        bytes.len() >= need,
        "short YUYV frame: {} of {need} bytes for {w}x{h} (a frame cut off by the driver)",
        bytes.len()
    );
    out.reshape(PixelFormat::Yuyv, wire.width, wire.height);
    if stride == row {
        out.data.copy_from_slice(&bytes[..row * h]);
    } else {
        for (dst, src) in out.data.chunks_exact_mut(row).zip(bytes.chunks(stride)) {
            dst.copy_from_slice(&src[..row]);
        }
    }
    Ok(())
}

/// MJPEG frames from USB cameras usually omit the Huffman tables (the standard ones of JPEG Annex K
/// are implied). zune-jpeg fills them in for frames marked `AVI1` in APP0, as AVI-style MJPEG is;
/// a frame with neither tables nor that marker gets the marker spliced in (into `scratch`, reused).
fn mjpeg_into(bytes: &[u8], out: &mut ImageBuf, scratch: &mut Vec<u8>) -> anyhow::Result<()> {
    ensure!(bytes.len() >= 4 && bytes[0] == 0xFF && bytes[1] == 0xD8, "not a JPEG frame ({} bytes, no SOI marker)", bytes.len());
    let data = if needs_avi1_marker(bytes) {
        const AVI1_APP0: [u8; 11] = [0xFF, 0xE0, 0x00, 0x09, b'A', b'V', b'I', b'1', 0, 0, 0];
        scratch.clear();
        scratch.extend_from_slice(&bytes[..2]);
        scratch.extend_from_slice(&AVI1_APP0);
        scratch.extend_from_slice(&bytes[2..]);
        &scratch[..]
    } else {
        bytes
    };
    perch_preprocess::decode_jpeg_into(data, out)
}

/// True when the headers before the scan hold no Huffman table (DHT) and no `AVI1` APP0.
fn needs_avi1_marker(bytes: &[u8]) -> bool {
    let mut i = 2;
    while i + 4 <= bytes.len() && bytes[i] == 0xFF {
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        match marker {
            0xC4 => return false,
            0xE0 if bytes.get(i + 4..i + 8) == Some(b"AVI1") => return false,
            0xDA => return true,
            _ => {}
        }
        i += 2 + len;
    }
    false // malformed headers: let the decoder say what is wrong
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn vtest_frame() -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/vtest/img1/000001.jpg");
        std::fs::read(p).unwrap()
    }

    /// Strip every DHT segment, as UVC cameras send MJPEG.
    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        while jpeg[i] == 0xFF && jpeg[i + 1] != 0xDA {
            let len = u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]) as usize;
            if jpeg[i + 1] != 0xC4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
        out.extend_from_slice(&jpeg[i..]);
        out
    }

    #[test]
    fn yuyv_is_copied_and_padded_rows_are_repacked() {
        let wire = WireFormat { fourcc: YUYV, width: 4, height: 2, stride: 12 };
        let bytes: Vec<u8> = (0..24).collect();
        let mut img = ImageBuf::default();
        into_image(&wire, &bytes, &mut img, &mut Vec::new()).unwrap();
        assert_eq!((img.format, img.width, img.height), (PixelFormat::Yuyv, 4, 2));
        assert_eq!(img.data, [0, 1, 2, 3, 4, 5, 6, 7, 12, 13, 14, 15, 16, 17, 18, 19]);
        let e = into_image(&wire, &bytes[..15], &mut img, &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("short YUYV frame: 15 of 20 bytes"), "{e}");
    }

    #[test]
    fn mjpeg_decodes_like_the_replay_path() {
        let jpeg = vtest_frame();
        let mut img = ImageBuf::default();
        into_image(&WireFormat { fourcc: MJPG, width: 768, height: 576, stride: 0 }, &jpeg, &mut img, &mut Vec::new()).unwrap();
        let reference = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!((img.format, img.width, img.height), (PixelFormat::Rgb8, 768, 576));
        assert_eq!(img.data, reference.as_raw().as_slice(), "same decoder (zune-jpeg) as the replay source");
    }

    #[test]
    fn mjpeg_without_huffman_tables_decodes_with_the_standard_ones() {
        // image's encoder writes the standard Annex K tables: stripping them leaves a UVC-style frame.
        let rgb = image::load_from_memory(&vtest_frame()).unwrap().to_rgb8();
        let mut encoded = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut encoded, 85).encode_image(&rgb).unwrap();
        let mut with_tables = ImageBuf::default();
        perch_preprocess::decode_jpeg_into(&encoded, &mut with_tables).unwrap();
        let bare = strip_dht(&encoded);
        assert!(bare.len() < encoded.len() && needs_avi1_marker(&bare) && !needs_avi1_marker(&encoded));
        assert!(perch_preprocess::decode_jpeg_into(&bare, &mut ImageBuf::default()).is_err(), "the decoder alone cannot");
        let (mut img, mut scratch) = (ImageBuf::default(), Vec::new());
        mjpeg_into(&bare, &mut img, &mut scratch).unwrap();
        assert_eq!(img.data, with_tables.data, "the implied tables are the standard ones");
    }

    #[test]
    fn corrupt_mjpeg_is_an_error() {
        let mut jpeg = vtest_frame();
        jpeg[2..600].fill(0);
        let e = mjpeg_into(&jpeg, &mut ImageBuf::default(), &mut Vec::new());
        assert!(e.is_err());
        let e = mjpeg_into(b"not a jpeg", &mut ImageBuf::default(), &mut Vec::new()).unwrap_err().to_string();
        assert!(e.contains("no SOI marker"), "{e}");
    }
}

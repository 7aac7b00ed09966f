//! Encoded images (JPEG, PNG) into pooled RGB8 [`ImageBuf`]s: the one decode path of the replay
//! source, `perch detect` and camera MJPEG frames.
//!
//! Two rules make a decoded frame trustworthy:
//! * **Complete or an error.** JPEG is decoded strictly (zune-jpeg's strict mode): data that ends
//!   before the last MCU row, corrupt entropy-coded data and markers where none belong are errors,
//!   never a grey-filled half frame. PNG data that ends early or fails its zlib/CRC checks is an
//!   error too (the `png` crate).
//! * **Bounded by what the data can be, not what the header claims.** The size a header announces is
//!   checked against [`DecodeLimits::max_pixels`] before any pixel buffer is sized, so a 300-byte
//!   file claiming 50000x50000 is an error instead of a 7.5 GB allocation.

use std::io::Cursor;

use anyhow::{anyhow, bail, Context as _};
use image::{ColorType, ImageDecoder as _};
use perch_pipeline::{ImageBuf, PixelFormat};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// 7680 x 4320 (8K UHD): the largest frame perch decodes by default (~100 MB as RGB8).
pub const DEFAULT_MAX_PIXELS: u64 = 7680 * 4320;

/// What a decoded frame may claim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Most pixels (width x height) a frame may have; checked from the header before allocating.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_pixels: DEFAULT_MAX_PIXELS }
    }
}

impl DecodeLimits {
    /// Error unless `width x height` is a non-empty image within the limit.
    pub fn check(&self, width: u64, height: u64) -> anyhow::Result<()> {
        if width == 0 || height == 0 {
            bail!("the header claims an empty {width}x{height} image");
        }
        let pixels = width.saturating_mul(height);
        if pixels > self.max_pixels {
            bail!(
                "the header claims {width}x{height} ({:.1} megapixels), more than the limit of {} pixels \
                 (source.max_pixels)",
                pixels as f64 / 1e6,
                self.max_pixels
            );
        }
        Ok(())
    }
}

/// The container formats perch decodes, told apart by their first bytes (not the file name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodedFormat {
    Jpeg,
    Png,
}

impl EncodedFormat {
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(Self::Jpeg)
        } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(Self::Png)
        } else {
            None
        }
    }
}

/// Decodes JPEG and PNG into RGB8, keeping its conversion buffer between frames.
#[derive(Debug, Default)]
pub struct ImageDecoder {
    pub limits: DecodeLimits,
    /// Decoded pixels of a non-RGB8 PNG before conversion.
    scratch: Vec<u8>,
}

impl ImageDecoder {
    pub fn new(limits: DecodeLimits) -> Self {
        Self { limits, scratch: Vec::new() }
    }

    /// Decode a JPEG or PNG (by its first bytes) into `out` as RGB8. On error `out` holds no
    /// frame the caller may use. A panic inside a decoder (third-party code fed outside bytes) is
    /// caught and returned as an error, so one bad frame cannot end the capture thread.
    pub fn decode(&mut self, bytes: &[u8], out: &mut ImageBuf) -> anyhow::Result<()> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decode_unguarded(bytes, out))) {
            Ok(result) => result,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("unknown");
                bail!("the image decoder panicked on these {} bytes ({what})", bytes.len())
            }
        }
    }

    fn decode_unguarded(&mut self, bytes: &[u8], out: &mut ImageBuf) -> anyhow::Result<()> {
        match EncodedFormat::sniff(bytes) {
            Some(EncodedFormat::Jpeg) => decode_jpeg_with(bytes, &self.limits, out),
            Some(EncodedFormat::Png) => decode_png(bytes, &self.limits, out, &mut self.scratch),
            None if bytes.is_empty() => bail!("empty file"),
            None => bail!(
                "not a JPEG or PNG image (starts with {:02x?}; {} bytes)",
                &bytes[..bytes.len().min(4)],
                bytes.len()
            ),
        }
    }
}

/// Decode one JPEG (or MJPEG frame) into `out` as RGB8, reusing `out.data`'s allocation, with the
/// default [`DecodeLimits`]. Grayscale and CMYK/YCCK JPEGs are converted to RGB too. Truncated or
/// corrupt data is an error.
pub fn decode_jpeg_into(bytes: &[u8], out: &mut ImageBuf) -> anyhow::Result<()> {
    decode_jpeg_with(bytes, &DecodeLimits::default(), out)
}

/// [`decode_jpeg_into`] with explicit limits.
pub fn decode_jpeg_with(bytes: &[u8], limits: &DecodeLimits, out: &mut ImageBuf) -> anyhow::Result<()> {
    let side = usize::try_from(limits.max_pixels).unwrap_or(usize::MAX);
    let options = DecoderOptions::default()
        .jpeg_set_out_colorspace(ColorSpace::RGB)
        .set_strict_mode(true)
        .set_max_width(side)
        .set_max_height(side);
    let mut dec = JpegDecoder::new_with_options(Cursor::new(bytes), options);
    dec.decode_headers().map_err(|e| anyhow!("JPEG ({} bytes): bad headers: {e:?}", bytes.len()))?;
    let (w, h) = dec.dimensions().ok_or_else(|| anyhow!("JPEG: no image dimensions in the headers"))?;
    limits.check(w as u64, h as u64).context("JPEG")?;
    // zune-jpeg pads a scan that ends early with zero bits even in strict mode: check first that
    // every MCU is there (and the file reaches EOI), so a partial frame is an error.
    crate::jpeg_check::check_complete(bytes)?;
    let need = dec.output_buffer_size().ok_or_else(|| anyhow!("JPEG: {w}x{h} is too large"))?;
    if need != PixelFormat::Rgb8.buffer_len(w as u32, h as u32) {
        bail!("JPEG: the decoder wants {need} bytes for {w}x{h} RGB");
    }
    out.reshape(PixelFormat::Rgb8, w as u32, h as u32);
    dec.decode_into(&mut out.data).map_err(|e| anyhow!("JPEG ({w}x{h}, {} bytes): corrupt or truncated data: {e:?}", bytes.len()))?;
    Ok(())
}

fn decode_png(bytes: &[u8], limits: &DecodeLimits, out: &mut ImageBuf, scratch: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut png_limits = image::Limits::default();
    let side = u32::try_from(limits.max_pixels).unwrap_or(u32::MAX);
    png_limits.max_image_width = Some(side);
    png_limits.max_image_height = Some(side);
    // RGBA16 output plus the decoder's row buffers.
    png_limits.max_alloc = Some(limits.max_pixels.saturating_mul(8).saturating_add(1 << 20));
    let dec = image::codecs::png::PngDecoder::with_limits(Cursor::new(bytes), png_limits)
        .map_err(|e| anyhow!("PNG ({} bytes): bad header: {e}", bytes.len()))?;
    let (w, h) = dec.dimensions();
    limits.check(w as u64, h as u64).context("PNG")?;
    let color = dec.color_type();
    let corrupt = |e: image::ImageError| anyhow!("PNG ({w}x{h}, {} bytes): corrupt or truncated data: {e}", bytes.len());
    out.reshape(PixelFormat::Rgb8, w, h);
    if color == ColorType::Rgb8 {
        return dec.read_image(&mut out.data).map_err(corrupt);
    }
    let total = usize::try_from(dec.total_bytes()).map_err(|_| anyhow!("PNG: {w}x{h} is too large"))?;
    scratch.resize(total, 0);
    dec.read_image(scratch).map_err(corrupt)?;
    let (channels, wide) = match color {
        ColorType::L8 => (1, false),
        ColorType::La8 => (2, false),
        ColorType::Rgba8 => (4, false),
        ColorType::L16 => (1, true),
        ColorType::La16 => (2, true),
        ColorType::Rgb16 => (3, true),
        ColorType::Rgba16 => (4, true),
        other => bail!("PNG: colour type {other:?} is not supported"),
    };
    let bytes_per_sample = if wide { 2 } else { 1 };
    let px = channels * bytes_per_sample;
    if scratch.len() != out.data.len() / 3 * px {
        bail!("PNG: {} decoded bytes for {w}x{h} {color:?}", scratch.len());
    }
    // 16-bit samples are native-endian u16 here: keep the high byte.
    let sample = |s: &[u8], c: usize| if wide { (u16::from_ne_bytes([s[2 * c], s[2 * c + 1]]) >> 8) as u8 } else { s[c] };
    for (dst, src) in out.data.chunks_exact_mut(3).zip(scratch.chunks_exact(px)) {
        if channels < 3 {
            dst.fill(sample(src, 0));
        } else {
            for (c, d) in dst.iter_mut().enumerate() {
                *d = sample(src, c);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_refuse_empty_and_oversized_headers() {
        let l = DecodeLimits { max_pixels: 100 };
        l.check(10, 10).unwrap();
        assert!(l.check(0, 5).unwrap_err().to_string().contains("empty"));
        let e = l.check(11, 10).unwrap_err().to_string();
        assert!(e.contains("11x10") && e.contains("source.max_pixels"), "{e}");
        assert!(l.check(u64::MAX, u64::MAX).is_err());
    }

    #[test]
    fn formats_are_told_by_their_bytes() {
        assert_eq!(EncodedFormat::sniff(&[0xff, 0xd8, 0xff, 0xe0]), Some(EncodedFormat::Jpeg));
        assert_eq!(EncodedFormat::sniff(b"\x89PNG\r\n\x1a\nxxxx"), Some(EncodedFormat::Png));
        assert_eq!(EncodedFormat::sniff(b"GIF89a"), None);
        let e = ImageDecoder::default().decode(b"GIF89a", &mut ImageBuf::default()).unwrap_err().to_string();
        assert!(e.contains("not a JPEG or PNG"), "{e}");
    }
}

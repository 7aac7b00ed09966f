//! JPEG / MJPEG frames (what many USB cameras send) decoded with `zune-jpeg` into a pooled [`ImageBuf`].

use anyhow::{anyhow, bail};
use perch_pipeline::{ImageBuf, PixelFormat};
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

/// Decode one JPEG (or MJPEG frame) into `out` as RGB8, reusing `out.data`'s allocation.
/// Grayscale and CMYK/YCCK JPEGs are converted to RGB too. Corrupt or truncated data is an error.
pub fn decode_jpeg_into(bytes: &[u8], out: &mut ImageBuf) -> anyhow::Result<()> {
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut dec = JpegDecoder::new_with_options(std::io::Cursor::new(bytes), options);
    dec.decode_headers().map_err(|e| anyhow!("JPEG decode ({} bytes): bad headers: {e:?}", bytes.len()))?;
    let (w, h) = dec.dimensions().ok_or_else(|| anyhow!("JPEG decode: no image dimensions in headers"))?;
    if w == 0 || h == 0 {
        bail!("JPEG decode: empty image {w}x{h}");
    }
    out.reshape(PixelFormat::Rgb8, w as u32, h as u32);
    let need = dec.output_buffer_size().ok_or_else(|| anyhow!("JPEG decode: image too large"))?;
    if need != out.data.len() {
        bail!("JPEG decode: decoder wants {need} bytes for {w}x{h} RGB, expected {}", out.data.len());
    }
    dec.decode_into(&mut out.data).map_err(|e| anyhow!("JPEG decode ({w}x{h}, {} bytes): {e:?}", bytes.len()))?;
    Ok(())
}

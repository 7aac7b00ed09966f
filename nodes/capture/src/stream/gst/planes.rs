//! A decoded GStreamer frame into perch's pooled image: its layout, and the plane copy.

use gstreamer as gst;
use gstreamer_video as gst_video;
use gst_video::prelude::*;
use perch_pipeline::{ImageBuf, PixelFormat};

/// The layout of a sample, from its caps.
pub fn video_info(sample: &gst::Sample) -> Result<gst_video::VideoInfo, String> {
    let caps = sample.caps().ok_or("a frame without caps")?;
    gst_video::VideoInfo::from_caps(caps).map_err(|_| format!("caps perch cannot read: {caps}"))
}

fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    use gst_video::VideoFormat as V;
    Some(match f {
        V::Rgb => PixelFormat::Rgb8,
        V::Bgr => PixelFormat::Bgr8,
        V::Gray8 => PixelFormat::Gray8,
        V::Yuy2 => PixelFormat::Yuyv,
        V::Nv12 => PixelFormat::Nv12,
        _ => return None,
    })
}

/// Copy a decoded frame's planes into `out`, tightly packed (GStreamer rows may be padded).
pub fn copy_frame(buffer: &gst::BufferRef, info: &gst_video::VideoInfo, out: &mut ImageBuf) -> Result<(), String> {
    let format = pixel_format(info.format()).ok_or_else(|| format!("pixel format {} is not one perch reads", info.format().to_str()))?;
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info).map_err(|_| "the frame's memory could not be mapped".to_string())?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let planes: &[(usize, usize)] = match format {
        PixelFormat::Nv12 => &[(w, h), (2 * w.div_ceil(2), h.div_ceil(2))],
        PixelFormat::Yuyv => &[(2 * w, h)],
        PixelFormat::Rgb8 | PixelFormat::Bgr8 => &[(3 * w, h)],
        PixelFormat::Gray8 => &[(w, h)],
        PixelFormat::Rgba8 => &[(4 * w, h)],
    };
    out.reshape(format, info.width(), info.height());
    let mut offset = 0;
    for (plane, &(row, rows)) in planes.iter().enumerate() {
        let src = frame.plane_data(plane as u32).map_err(|_| format!("plane {plane} is missing"))?;
        let stride = frame.plane_stride()[plane].max(0) as usize;
        if rows > 0 && (stride < row || src.len() < (rows - 1) * stride + row) {
            return Err(format!("plane {plane} is shorter than {rows} rows of {row} bytes"));
        }
        for (r, dst) in out.data[offset..offset + row * rows].chunks_exact_mut(row).enumerate() {
            dst.copy_from_slice(&src[r * stride..r * stride + row]);
        }
        offset += row * rows;
    }
    Ok(())
}

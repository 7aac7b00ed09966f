//! Image files in, detections out: what `perch detect` runs for each image, and the decode +
//! letterbox path the reference scripts, benchmarks and tests share (so every tool feeds the
//! network exactly the tensor the pipeline would).

use std::path::Path;

use anyhow::Context;
use perch_pipeline::{Detection, ImageBuf, Letterbox, PixelFormat, TensorBuf};
use serde::Serialize;

use crate::detector::Detector;

/// One image's result, as `perch detect --json` prints it.
#[derive(Debug, Serialize)]
pub struct ImageResult {
    pub image: String,
    pub width: u32,
    pub height: u32,
    pub detections: Vec<DetectionOut>,
    pub inference_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct DetectionOut {
    pub class_id: u32,
    pub class: String,
    pub score: f32,
    /// [x1, y1, x2, y2] in source pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// Decode an image file into an RGB8 buffer.
pub fn load_image(path: &Path, into: &mut ImageBuf) -> anyhow::Result<()> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("opening {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("reading {}", path.display()))?
        .decode()
        .with_context(|| format!("{}: not a decodable image (JPEG and PNG are supported)", path.display()))?
        .into_rgb8();
    into.reshape(PixelFormat::Rgb8, img.width(), img.height());
    into.data.copy_from_slice(img.as_raw());
    Ok(())
}

/// The model input for an image file: decode + letterbox to `imgsz`, as the pipeline does.
pub fn input_for_file(path: &Path, imgsz: u32, image: &mut ImageBuf, tensor: &mut TensorBuf) -> anyhow::Result<Letterbox> {
    load_image(path, image)?;
    perch_preprocess::letterbox_into(image, imgsz, imgsz, tensor)
}

/// Detect objects in one image file with a loaded detector.
pub fn detect_file(detector: &mut Detector, path: &Path) -> anyhow::Result<ImageResult> {
    let (mut image, mut tensor) = (ImageBuf::default(), TensorBuf::default());
    let lb = input_for_file(path, detector.imgsz(), &mut image, &mut tensor)?;
    let mut dets: Vec<Detection> = Vec::new();
    let t = detector.detect(&tensor, &lb, &mut dets)?;
    let names = detector.class_names();
    Ok(ImageResult {
        image: path.display().to_string(),
        width: image.width,
        height: image.height,
        detections: dets
            .iter()
            .map(|d| DetectionOut {
                class_id: d.class_id,
                class: names.get(d.class_id as usize).cloned().unwrap_or_default(),
                score: d.score,
                bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
            })
            .collect(),
        inference_ms: (t.forward + t.postprocess).as_secs_f64() * 1e3,
    })
}

/// "4 persons, 1 car" (Ultralytics' summary line), or "(no detections)".
pub fn summary(r: &ImageResult) -> String {
    let mut counts: Vec<(u32, &str, usize)> = Vec::new();
    for d in &r.detections {
        match counts.iter_mut().find(|c| c.0 == d.class_id) {
            Some(c) => c.2 += 1,
            None => counts.push((d.class_id, &d.class, 1)),
        }
    }
    counts.sort_by_key(|c| c.0);
    if counts.is_empty() {
        return "(no detections)".into();
    }
    counts.iter().map(|(_, n, k)| format!("{k} {n}{}", if *k > 1 { "s" } else { "" })).collect::<Vec<_>>().join(", ")
}

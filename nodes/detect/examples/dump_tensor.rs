//! Writes the model input tensor perch builds for an image (decode + letterbox, exactly as
//! `perch detect` does) as raw little-endian f32 CHW, and prints its letterbox as JSON.
//! The reference scripts feed this tensor to ONNX Runtime so both sides see identical input.
//!
//! usage: dump_tensor IMAGE IMGSZ OUT.f32

use perch_pipeline::{ImageBuf, TensorBuf};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: dump_tensor IMAGE IMGSZ OUT.f32");
    let imgsz: u32 = args[2].parse()?;
    let mut image = ImageBuf::default();
    perch_detect::predict::load_image(args[1].as_ref(), &mut image)?;
    let mut tensor = TensorBuf::default();
    let lb = perch_preprocess::letterbox_into(&image, imgsz, imgsz, &mut tensor)?;
    let bytes: Vec<u8> = tensor.data.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&args[3], bytes)?;
    println!("{}", serde_json::to_string(&lb)?);
    Ok(())
}

//! `perch model import`: an Ultralytics ONNX export -> `model.safetensors` + `model.json`.
//!
//! The export's initializers are the network's parameters under their PyTorch module names
//! (`model.0.conv.weight`, BatchNorm already folded into the convs). We keep those (as f32),
//! drop the export's graph constants (`/model.21/Constant_output_0`, `onnx::Split_249`: shape
//! plumbing a native model does not need), and read the architecture, scale, input size and class
//! names from the Ultralytics metadata, cross-checked against the tensor names and shapes.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::meta::{ModelMeta, SourceInfo, META_FILE, WEIGHTS_FILE};
use crate::model::{Arch, Scale};
use crate::onnx::{data_type, decode_model, TensorProto};

/// A parameter tensor read from the export, converted to f32.
#[derive(Clone, Debug)]
pub struct Param {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Everything the importer extracted, before anything is written.
#[derive(Debug)]
pub struct Imported {
    pub meta: ModelMeta,
    pub params: BTreeMap<String, Param>,
}

/// Read and check an ONNX export without writing anything.
pub fn read_onnx(src: &Path) -> anyhow::Result<Imported> {
    let file = src.display().to_string();
    let bytes = std::fs::read(src).with_context(|| format!("reading {file}"))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let model = decode_model(&bytes).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
    let graph = model.graph.as_ref().ok_or_else(|| anyhow::anyhow!("{file}: not an ONNX model (no graph)"))?;
    let md: HashMap<&str, &str> = model.metadata_props.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();

    if let Some(task) = md.get("task") {
        if *task != "detect" {
            bail!("{file}: unsupported task '{task}' (perch imports Ultralytics detection models, task 'detect')");
        }
    }
    let names_text = md.get("names").ok_or_else(|| {
        anyhow::anyhow!("{file}: no 'names' in the ONNX metadata: perch imports Ultralytics exports (`yolo export format=onnx`), which carry the class names")
    })?;
    let class_names = parse_names(names_text).with_context(|| format!("{file}: metadata 'names'"))?;

    let mut params = BTreeMap::new();
    let mut dropped = 0usize;
    for t in &graph.initializer {
        if !t.name.starts_with("model.") {
            dropped += 1;
            continue;
        }
        let p = tensor_to_f32(t).with_context(|| format!("{file}: initializer '{}'", t.name))?;
        params.insert(t.name.clone(), p);
    }
    if params.is_empty() {
        bail!("{file}: no parameters named 'model.*' among {dropped} initializers: not an Ultralytics YOLO export");
    }

    let structure = infer_structure(&params).with_context(|| format!("{file}: recognising the architecture"))?;
    // The description names the model ("Ultralytics YOLOv12n model ..."); when it does, it must agree.
    let description = md.get("description").map(|s| s.trim().to_string());
    if let Some((arch, scale)) = description.as_deref().and_then(parse_description) {
        if (arch, scale) != (structure.arch, structure.scale) {
            bail!(
                "{file}: the metadata describes {arch:?}{scale:?} but the weights look like {:?}{:?}",
                structure.arch,
                structure.scale
            );
        }
    }
    if structure.num_classes != class_names.len() {
        bail!(
            "{file}: the detect head has {} classes but the metadata names {}",
            structure.num_classes,
            class_names.len()
        );
    }

    let mut synthesized = Vec::new();
    let dfl = format!("model.{}.dfl.conv.weight", structure.head);
    if !params.contains_key(&dfl) {
        // The DFL conv is a fixed projection onto 0..reg_max-1 (not trained); some exports fold it away.
        let reg_max = structure.reg_max;
        params.insert(dfl.clone(), Param { shape: vec![1, reg_max, 1, 1], data: (0..reg_max).map(|i| i as f32).collect() });
        synthesized.push(dfl);
    }

    let input = graph.input.first().ok_or_else(|| anyhow::anyhow!("{file}: the graph has no input"))?;
    let dims: Vec<_> = input
        .r#type
        .as_ref()
        .and_then(|t| t.tensor_type.as_ref())
        .and_then(|t| t.shape.as_ref())
        .map(|s| s.dim.clone())
        .unwrap_or_default();
    if dims.len() != 4 {
        bail!("{file}: input '{}' has {} dimensions, expected [batch, 3, height, width]", input.name, dims.len());
    }
    if dims[1].dim_value != Some(3) {
        bail!("{file}: input '{}' has {} channels, expected 3 (RGB)", input.name, dims[1].describe());
    }
    let dynamic_input = dims[2].dim_value.is_none() || dims[3].dim_value.is_none();
    let imgsz = match md.get("imgsz") {
        Some(s) => parse_imgsz(s).with_context(|| format!("{file}: metadata 'imgsz'"))?,
        None => match (dims[2].dim_value, dims[3].dim_value) {
            (Some(h), Some(w)) => [h as u32, w as u32],
            _ => bail!("{file}: dynamic input and no 'imgsz' in the metadata"),
        },
    };
    if !dynamic_input && (dims[2].dim_value != Some(imgsz[0] as i64) || dims[3].dim_value != Some(imgsz[1] as i64)) {
        bail!(
            "{file}: metadata imgsz {imgsz:?} disagrees with the input shape [{}, {}]",
            dims[2].describe(),
            dims[3].describe()
        );
    }
    let stride = match md.get("stride") {
        Some(s) => s.trim().parse().with_context(|| format!("{file}: metadata 'stride' = {s:?}"))?,
        None => 32,
    };

    let parameters = params.values().map(|p| p.data.len() as u64).sum();
    let opset = model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
    let meta = ModelMeta {
        format: 1,
        architecture: structure.arch,
        scale: structure.scale,
        task: "detect".into(),
        imgsz,
        dynamic_input,
        stride,
        num_classes: class_names.len(),
        class_names,
        parameters,
        synthesized,
        source: SourceInfo {
            file: src.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default(),
            bytes: bytes.len() as u64,
            sha256,
            producer: format!("{} {}", model.producer_name, model.producer_version).trim().to_string(),
            ir_version: model.ir_version,
            opset,
        },
        ultralytics_version: md.get("version").map(|s| s.to_string()),
        description,
        author: md.get("author").map(|s| s.to_string()),
        date: md.get("date").map(|s| s.to_string()),
        license: md.get("license").map(|s| s.to_string()),
        precision: crate::meta::Precision::F32,
        quantization: None,
    };
    Ok(Imported { meta, params })
}

/// Import `src` into the directory `out`: `model.safetensors` and `model.json`. Both are written
/// to temporary names and renamed into place, so a failed import leaves nothing half-written.
/// An existing `model.json` is only replaced with `force`. Other files in `out` (LICENSE,
/// PROVENANCE.md) are kept.
pub fn import_onnx(src: &Path, out: &Path, force: bool) -> anyhow::Result<ModelMeta> {
    let imported = read_onnx(src)?;
    let weights = safetensors_bytes(&imported.params, &imported.meta)?;
    install_model(out, force, "import", &[(WEIGHTS_FILE, &weights)], &imported.meta)?;
    Ok(imported.meta)
}

/// Writes a model directory atomically: `files` (name, bytes; the weights first) and then
/// `model.json`, each under a temporary name renamed into place. A directory that does not exist
/// yet is built beside its final place and renamed as a whole, so a failure leaves nothing
/// behind. An existing model is replaced only with `force`; other files in `out` are kept.
pub(crate) fn install_model(out: &Path, force: bool, what: &str, files: &[(&str, &[u8])], meta: &ModelMeta) -> anyhow::Result<()> {
    if out.join(META_FILE).exists() && !force {
        bail!("{} already holds a model (pass --force to replace it)", out.display());
    }
    if out.exists() {
        return write_files(files, meta, out, out);
    }
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let tmp = parent.join(format!(
        ".{}.{what}-{}",
        out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into()),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = write_files(files, meta, &tmp, out).and_then(|()| {
        std::fs::rename(&tmp, out).with_context(|| format!("renaming {} to {}", tmp.display(), out.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Write the files and `model.json` into `dir` under temporary names, then rename them (weights
/// first, so a `model.json` never points at weights that are not there).
fn write_files(files: &[(&str, &[u8])], meta: &ModelMeta, dir: &Path, shown_as: &Path) -> anyhow::Result<()> {
    let tmp_meta = dir.join(format!(".{META_FILE}.tmp"));
    let tmps: Vec<PathBuf> = files.iter().map(|(name, _)| dir.join(format!(".{name}.tmp"))).collect();
    let result = (|| -> anyhow::Result<()> {
        for ((_, bytes), tmp) in files.iter().zip(&tmps) {
            write_synced(tmp, bytes)?;
        }
        let mut json = serde_json::to_string_pretty(meta)?;
        json.push('\n');
        write_synced(&tmp_meta, json.as_bytes())?;
        for ((name, _), tmp) in files.iter().zip(&tmps) {
            std::fs::rename(tmp, dir.join(name))?;
        }
        std::fs::rename(&tmp_meta, dir.join(META_FILE))?;
        Ok(())
    })();
    if result.is_err() {
        tmps.iter().chain([&tmp_meta]).for_each(|t| {
            let _ = std::fs::remove_file(t);
        });
    }
    result.with_context(|| format!("writing the model into {}", shown_as.display()))
}

fn write_synced(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    f.sync_all().with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

struct F32View<'a>(&'a Param);

impl safetensors::View for F32View<'_> {
    fn dtype(&self) -> safetensors::Dtype {
        safetensors::Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        &self.0.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.0.data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.0.data.len() * 4
    }
}

fn safetensors_bytes(params: &BTreeMap<String, Param>, meta: &ModelMeta) -> anyhow::Result<Vec<u8>> {
    let info: HashMap<String, String> = [
        ("format".to_string(), "perch".to_string()),
        ("source_sha256".to_string(), meta.source.sha256.clone()),
    ]
    .into();
    let views = params.iter().map(|(k, p)| (k.as_str(), F32View(p)));
    safetensors::serialize(views, Some(info)).context("serialising safetensors")
}

fn tensor_to_f32(t: &TensorProto) -> anyhow::Result<Param> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        bail!("stored in an external data file, which perch does not read (re-export without external data)");
    }
    let shape: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| anyhow::anyhow!("negative dimension {d}")))
        .collect::<anyhow::Result<_>>()?;
    let n: usize = shape.iter().product();
    let raw = &t.raw_data;
    let elem = match t.data_type {
        data_type::FLOAT => 4,
        data_type::FLOAT16 | data_type::BFLOAT16 => 2,
        data_type::DOUBLE => 8,
        other => bail!("data type {} is not a floating-point type perch can import", data_type::name(other)),
    };
    let data: Vec<f32> = if !raw.is_empty() {
        if raw.len() != n * elem {
            bail!("raw_data has {} bytes but dims {:?} of {} need {}", raw.len(), shape, data_type::name(t.data_type), n * elem);
        }
        match t.data_type {
            data_type::FLOAT => raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            data_type::FLOAT16 => raw.chunks_exact(2).map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]]))).collect(),
            data_type::BFLOAT16 => {
                raw.chunks_exact(2).map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16)).collect()
            }
            _ => raw.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32).collect(),
        }
    } else {
        let v: Vec<f32> = match t.data_type {
            data_type::FLOAT => t.float_data.clone(),
            // float16/bfloat16 values live in int32_data, one per element.
            data_type::FLOAT16 => t.int32_data.iter().map(|&b| f16_to_f32(b as u16)).collect(),
            data_type::BFLOAT16 => t.int32_data.iter().map(|&b| f32::from_bits((b as u32 & 0xffff) << 16)).collect(),
            _ => t.double_data.iter().map(|&d| d as f32).collect(),
        };
        if v.len() != n {
            bail!("holds {} values but dims {:?} need {}", v.len(), shape, n);
        }
        v
    };
    Ok(Param { shape, data })
}

/// IEEE half -> single (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: normalise
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// What the parameter names and shapes say about the network.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Structure {
    pub arch: Arch,
    pub scale: Scale,
    /// Index of the detect head (`model.<head>.cv2...`).
    pub head: usize,
    pub num_classes: usize,
    pub reg_max: usize,
}

/// Recognise YOLOv8 / YOLO11 / YOLOv12 and the scale from the tensor names and shapes
/// (Ultralytics' published yaml definitions: layer indices, widths and depths per scale).
pub fn infer_structure(params: &BTreeMap<String, Param>) -> anyhow::Result<Structure> {
    if params.keys().any(|k| k.contains("one2one")) {
        bail!("a YOLOv10-style (one-to-one) head: not supported (YOLOv8, YOLO11 and YOLOv12 are)");
    }
    let head = params
        .keys()
        .filter_map(|k| {
            let rest = k.strip_prefix("model.")?;
            let (idx, tail) = rest.split_once('.')?;
            (tail == "cv2.0.0.conv.weight").then(|| idx.parse::<usize>().ok()).flatten()
        })
        .max()
        .ok_or_else(|| anyhow::anyhow!("no detect head (model.N.cv2.0.0.conv.weight) found"))?;
    let shape = |name: &str| -> anyhow::Result<&[usize]> {
        params.get(name).map(|p| p.shape.as_slice()).ok_or_else(|| anyhow::anyhow!("missing tensor {name}"))
    };
    let box_out = shape(&format!("model.{head}.cv2.0.2.weight"))?[0];
    if box_out % 4 != 0 {
        bail!("model.{head}.cv2.0.2.weight has {box_out} outputs, not 4 x reg_max");
    }
    let num_classes = shape(&format!("model.{head}.cv3.0.2.weight"))?[0];
    let nested_attn = params.keys().any(|k| k.contains(".m.0.0.attn."));
    let any_attn = params.keys().any(|k| k.contains(".attn."));
    let arch = match (nested_attn, any_attn, head) {
        (true, _, 21) => Arch::Yolov12,
        (false, true, 23) => Arch::Yolo11,
        (false, false, 22) => Arch::Yolov8,
        _ => bail!(
            "unsupported layout: detect head at model.{head}, area attention {nested_attn}, attention {any_attn} \
             (perch knows YOLOv8: head 22, YOLO11: head 23 + C2PSA, YOLOv12: head 21 + A2C2f)"
        ),
    };
    let width = shape("model.0.conv.weight")?[0];
    // Repeats of the first C2f/C3k2 block (model.2): depth multiple x 3 (v8) or x 2 (11, v12).
    let repeats = params
        .keys()
        .filter_map(|k| k.strip_prefix("model.2.m.")?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m + 1);
    let scale = match (arch, width, repeats) {
        (_, 16, _) => Scale::N,
        (_, 32, _) => Scale::S,
        (Arch::Yolov8, 48, _) => Scale::M,
        (Arch::Yolov8, 64, _) => Scale::L,
        (Arch::Yolov8, 80, _) => Scale::X,
        (_, 64, 1) => Scale::M,
        (_, 64, 2) => Scale::L,
        (_, 96, _) => Scale::X,
        _ => bail!("{arch:?} with first-layer width {width} and {repeats} repeats matches no n/s/m/l/x scale"),
    };
    Ok(Structure { arch, scale, head, num_classes, reg_max: box_out / 4 })
}

/// "Ultralytics YOLOv12n model trained on coco.yaml" -> (Yolov12, N). None when it names no model
/// (e.g. "Ultralytics best model trained on data.yml").
pub fn parse_description(desc: &str) -> Option<(Arch, Scale)> {
    for word in desc.split_whitespace() {
        let lower = word.to_ascii_lowercase();
        let Some(rest) = lower.strip_prefix("yolo") else { continue };
        let rest = rest.strip_prefix('v').unwrap_or(rest);
        let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let arch = match digits.as_str() {
            "8" => Arch::Yolov8,
            "11" => Arch::Yolo11,
            "12" => Arch::Yolov12,
            _ => return None,
        };
        let scale = match &rest[digits.len()..] {
            "n" => Scale::N,
            "s" => Scale::S,
            "m" => Scale::M,
            "l" => Scale::L,
            "x" => Scale::X,
            _ => return None,
        };
        return Some((arch, scale));
    }
    None
}

fn parse_imgsz(s: &str) -> anyhow::Result<[u32; 2]> {
    let v: Vec<u32> = s
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|x| x.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("{s:?}: {e}"))?;
    match v.as_slice() {
        [h, w] => Ok([*h, *w]),
        [s] => Ok([*s, *s]),
        _ => bail!("{s:?}: expected [height, width]"),
    }
}

/// Parse the Python dict literal Ultralytics stores: `{0: 'person', 1: "teddy's bear"}`.
pub fn parse_names(s: &str) -> anyhow::Result<Vec<String>> {
    let b = s.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let expect = |i: &mut usize, c: u8| -> anyhow::Result<()> {
        skip_ws(i);
        if b.get(*i) != Some(&c) {
            bail!("expected '{}' at character {} of {s:?}", c as char, *i);
        }
        *i += 1;
        Ok(())
    };
    expect(&mut i, b'{')?;
    let mut entries = BTreeMap::new();
    loop {
        skip_ws(&mut i);
        if b.get(i) == Some(&b'}') {
            i += 1;
            break;
        }
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let key: usize = s[start..i].parse().map_err(|_| anyhow::anyhow!("expected a class id at character {start}"))?;
        expect(&mut i, b':')?;
        skip_ws(&mut i);
        let quote = match b.get(i) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => bail!("expected a quoted class name at character {i}"),
        };
        i += 1;
        let mut name = String::new();
        let mut chars = s[i..].char_indices();
        let mut closed = false;
        while let Some((off, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        name.push(match e {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    }
                }
                c if c as u32 == quote as u32 => {
                    i += off + 1;
                    closed = true;
                    break;
                }
                c => name.push(c),
            }
        }
        if !closed {
            bail!("unterminated class name starting at character {}", start);
        }
        if entries.insert(key, name).is_some() {
            bail!("class id {key} appears twice");
        }
        skip_ws(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {
                i += 1;
                break;
            }
            _ => bail!("expected ',' or '}}' at character {i}"),
        }
    }
    skip_ws(&mut i);
    if i != b.len() {
        bail!("unexpected text after the closing brace at character {i}");
    }
    if entries.is_empty() {
        bail!("no classes");
    }
    for (expected, key) in entries.keys().enumerate() {
        if *key != expected {
            bail!("class ids are not 0..{}: id {expected} is missing", entries.len());
        }
    }
    Ok(entries.into_values().collect())
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a file, hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_like_python() {
        let n = parse_names("{0: 'person', 1: \"teddy's bear\", 2: 'a\\'b'}").unwrap();
        assert_eq!(n, vec!["person", "teddy's bear", "a'b"]);
        assert!(parse_names("{0: 'a', 2: 'c'}").unwrap_err().to_string().contains("id 1 is missing"));
        assert!(parse_names("{0: 'a'").is_err());
        assert!(parse_names("[0, 1]").is_err());
    }

    #[test]
    fn descriptions_name_the_model() {
        assert_eq!(parse_description("Ultralytics YOLOv12n model "), Some((Arch::Yolov12, Scale::N)));
        assert_eq!(parse_description("Ultralytics YOLO11s model trained on coco.yaml"), Some((Arch::Yolo11, Scale::S)));
        assert_eq!(parse_description("Ultralytics YOLOv8m model trained on x.yaml"), Some((Arch::Yolov8, Scale::M)));
        assert_eq!(parse_description("Ultralytics best model trained on data.yml"), None);
    }

    #[test]
    fn imgsz_forms() {
        assert_eq!(parse_imgsz("[640, 640]").unwrap(), [640, 640]);
        assert_eq!(parse_imgsz("[320, 480]").unwrap(), [320, 480]);
        assert!(parse_imgsz("big").is_err());
    }

    #[test]
    fn half_floats_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}

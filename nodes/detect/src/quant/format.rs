//! The int8 model file: a normal `model.safetensors` where each int8 conv (tensors under its
//! prefix `P`, e.g. `model.2.cv1.conv`) stores
//!
//! | tensor | dtype | shape | meaning |
//! |---|---|---|---|
//! | `P.weight` | I8 | [c_out, c_in/groups, k, k] | symmetric weights in [-r, r] (r = `weight_range` in model.json) |
//! | `P.weight_scale` | F32 | [c_out] | real weight = weight_scale[co] * weight |
//! | `P.bias` | F32 | [c_out] | as in the float model |
//! | `P.input_scale`, `P.input_zero_point` | F32, U8 | [1], [1] | the input's quantization: real = scale * (q - zero_point) |
//! | `P.output_scale`, `P.output_zero_point` | F32, U8 | [1], [1] | only when the output is requantized to u8 (an int8 layer reads it); absent: f32 output |
//!
//! and every other tensor (convs kept in f32, the DFL projection) is F32 as `perch model import`
//! writes it. Reading checks everything an int8 conv needs and names the tensor that is wrong.

use std::borrow::Cow;

use anyhow::{bail, Context, Result};
use safetensors::{Dtype, SafeTensors};

use crate::model::conv::ConvSpec;
use crate::model::fmap::QParams;

pub const WEIGHT: &str = "weight";
pub const WEIGHT_SCALE: &str = "weight_scale";
pub const BIAS: &str = "bias";
pub const INPUT_SCALE: &str = "input_scale";
pub const INPUT_ZERO_POINT: &str = "input_zero_point";
pub const OUTPUT_SCALE: &str = "output_scale";
pub const OUTPUT_ZERO_POINT: &str = "output_zero_point";

/// What an int8 conv is made of (read from or written to the file).
#[derive(Debug, Clone)]
pub struct Int8ConvTensors {
    /// Row-major [c_out, c_in/groups*k*k].
    pub w: Vec<i8>,
    pub w_scale: Vec<f32>,
    pub bias: Vec<f32>,
    pub input: QParams,
    pub output: Option<QParams>,
}

/// Parses a safetensors file, naming the first tensor whose data lies past the end of a
/// truncated file (the safetensors crate only says the buffer is incomplete).
pub fn open(bytes: &[u8]) -> Result<SafeTensors<'_>> {
    if bytes.len() < 8 {
        bail!("truncated safetensors file: {} bytes, not even the 8-byte header length", bytes.len());
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().context("header length")?) as usize;
    if bytes.len() < 8 + n {
        bail!("truncated safetensors file: the header needs {} bytes, the file has {}", 8 + n, bytes.len());
    }
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).context("not a safetensors file (the header is not a JSON object)")?;
    let data_len = bytes.len() - 8 - n;
    let mut past_end: Vec<(u64, &str)> = header
        .iter()
        .filter(|(k, _)| k.as_str() != "__metadata__")
        .filter_map(|(k, v)| {
            let end = v.get("data_offsets")?.get(1)?.as_u64()?;
            (end > data_len as u64).then_some((end, k.as_str()))
        })
        .collect();
    past_end.sort();
    if let Some((end, name)) = past_end.first() {
        bail!(
            "truncated safetensors file: tensor {name} ends at data byte {end} but the file holds {data_len} data bytes ({} tensors cut off)",
            past_end.len()
        );
    }
    SafeTensors::deserialize(bytes).map_err(|e| anyhow::anyhow!("corrupt safetensors file: {e}"))
}

/// Whether the conv under `prefix` is stored as int8 (its weight is I8).
pub fn is_int8_conv(st: &SafeTensors, prefix: &str) -> bool {
    st.tensor(&format!("{prefix}.{WEIGHT}")).is_ok_and(|t| t.dtype() == Dtype::I8)
}

/// The names of the int8 convs' weights in a file (tensors `P.weight` of dtype I8), sorted.
pub fn int8_prefixes(st: &SafeTensors) -> Vec<String> {
    let mut v: Vec<String> = st
        .iter()
        .filter(|(_, t)| t.dtype() == Dtype::I8)
        .filter_map(|(n, _)| n.strip_suffix(&format!(".{WEIGHT}")).map(str::to_string))
        .collect();
    v.sort();
    v
}

fn get<'a>(st: &'a SafeTensors, prefix: &str, key: &str, dtype: Dtype, shape: &[usize]) -> Result<safetensors::tensor::TensorView<'a>> {
    let name = format!("{prefix}.{key}");
    let t = st.tensor(&name).map_err(|_| {
        anyhow::anyhow!(
            "tensor {name} is missing: an int8 conv needs {prefix}.{{{WEIGHT}, {WEIGHT_SCALE}, {BIAS}, {INPUT_SCALE}, {INPUT_ZERO_POINT}}}"
        )
    })?;
    if t.dtype() != dtype {
        bail!("tensor {name} has dtype {:?}, expected {dtype:?}", t.dtype());
    }
    if t.shape() != shape {
        bail!("tensor {name} has shape {:?}, expected {shape:?}", t.shape());
    }
    Ok(t)
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn qparams(st: &SafeTensors, prefix: &str, scale_key: &str, zp_key: &str) -> Result<QParams> {
    let scale = f32s(get(st, prefix, scale_key, Dtype::F32, &[1])?.data())[0];
    let zero_point = get(st, prefix, zp_key, Dtype::U8, &[1])?.data()[0];
    if !(scale.is_finite() && scale > 0.0 && (1.0 / scale).is_finite()) {
        bail!("tensor {prefix}.{scale_key} = {scale} is not a positive finite scale");
    }
    Ok(QParams { scale, zero_point })
}

/// Reads and checks the int8 conv under `prefix` for a conv of `spec`.
pub fn read_int8_conv(st: &SafeTensors, prefix: &str, spec: &ConvSpec) -> Result<Int8ConvTensors> {
    let (c_out, cin_g, k) = (spec.c_out, spec.c_in / spec.groups, spec.k);
    let w: Vec<i8> = get(st, prefix, WEIGHT, Dtype::I8, &[c_out, cin_g, k, k])?.data().iter().map(|&b| b as i8).collect();
    let w_scale = f32s(get(st, prefix, WEIGHT_SCALE, Dtype::F32, &[c_out])?.data());
    if let Some((i, s)) = w_scale.iter().enumerate().find(|(_, s)| !(s.is_finite() && **s >= 0.0)) {
        bail!("tensor {prefix}.{WEIGHT_SCALE}[{i}] = {s} is not a finite scale >= 0");
    }
    if let Some(i) = w.iter().position(|&v| v == i8::MIN) {
        bail!("tensor {prefix}.{WEIGHT}: value -128 at index {i} (weights are symmetric, in [-127, 127])");
    }
    let bias = f32s(get(st, prefix, BIAS, Dtype::F32, &[c_out])?.data());
    let input = qparams(st, prefix, INPUT_SCALE, INPUT_ZERO_POINT)?;
    let has = |key: &str| st.tensor(&format!("{prefix}.{key}")).is_ok();
    let output = match (has(OUTPUT_SCALE), has(OUTPUT_ZERO_POINT)) {
        (true, true) => Some(qparams(st, prefix, OUTPUT_SCALE, OUTPUT_ZERO_POINT)?),
        (false, false) => None,
        (true, false) => bail!("tensor {prefix}.{OUTPUT_ZERO_POINT} is missing ({prefix}.{OUTPUT_SCALE} is there: both or neither)"),
        (false, true) => bail!("tensor {prefix}.{OUTPUT_SCALE} is missing ({prefix}.{OUTPUT_ZERO_POINT} is there: both or neither)"),
    };
    Ok(Int8ConvTensors { w, w_scale, bias, input, output })
}

/// A tensor to write: dtype, shape, little-endian bytes.
#[derive(Debug, Clone)]
pub struct OwnedTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl OwnedTensor {
    pub fn f32(shape: Vec<usize>, v: &[f32]) -> Self {
        Self { dtype: Dtype::F32, shape, data: v.iter().flat_map(|x| x.to_le_bytes()).collect() }
    }
}

impl safetensors::View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// The tensors of an int8 conv under `prefix`, as [`read_int8_conv`] reads them back.
pub fn int8_conv_tensors(prefix: &str, spec: &ConvSpec, t: &Int8ConvTensors) -> Vec<(String, OwnedTensor)> {
    let (c_out, cin_g, k) = (spec.c_out, spec.c_in / spec.groups, spec.k);
    let name = |key: &str| format!("{prefix}.{key}");
    let mut v = vec![
        (name(WEIGHT), OwnedTensor { dtype: Dtype::I8, shape: vec![c_out, cin_g, k, k], data: t.w.iter().map(|&x| x as u8).collect() }),
        (name(WEIGHT_SCALE), OwnedTensor::f32(vec![c_out], &t.w_scale)),
        (name(BIAS), OwnedTensor::f32(vec![c_out], &t.bias)),
        (name(INPUT_SCALE), OwnedTensor::f32(vec![1], &[t.input.scale])),
        (name(INPUT_ZERO_POINT), OwnedTensor { dtype: Dtype::U8, shape: vec![1], data: vec![t.input.zero_point] }),
    ];
    if let Some(o) = t.output {
        v.push((name(OUTPUT_SCALE), OwnedTensor::f32(vec![1], &[o.scale])));
        v.push((name(OUTPUT_ZERO_POINT), OwnedTensor { dtype: Dtype::U8, shape: vec![1], data: vec![o.zero_point] }));
    }
    v
}

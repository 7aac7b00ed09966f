//! The int8 arm of [`Conv`]: s8 weights (symmetric, one scale per output channel) packed once for
//! the `perch-int8` kernels, u8 activations (asymmetric, one scale and zero point per tensor),
//! f32 bias, and an epilogue that adds bias, applies SiLU and the residual in f32 and writes
//! either u8 (requantized for the next int8 layer) or f32 (for a float consumer).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use perch_int8::{ConvShape, Output, PackedConv, Residual};

use super::conv::{Conv, ConvKernel, ConvSpec};
use super::fmap::{u8_map, with_u8_data, with_u8_slices, Fmap, QParams};
use super::kernels::Act;
use crate::quant::format::{self, Int8ConvTensors};

/// The int8 state of a conv.
#[derive(Debug)]
pub struct QConv {
    packed: PackedConv,
    /// s8 weights, row-major [c_out, c_in/groups*k*k] (what the file stores).
    pub w: Vec<i8>,
    /// Real weight = w_scale[co] * w.
    pub w_scale: Vec<f32>,
    /// The quantization the input is read in (float inputs are quantized to it, u8 inputs in
    /// other parameters requantized).
    pub input: QParams,
    /// Some: the output is requantized to u8 with these parameters; None: written as f32.
    pub output: Option<QParams>,
}

/// Symmetric per-output-channel quantization of row-major weights [c_out, kdim] to
/// [-range, range]: scale = max |w| / range, q = round_half_even(w / scale). A channel of zeros
/// gets scale 0 (and zeros).
pub fn quantize_weights(w: &[f32], c_out: usize, range: i8) -> (Vec<i8>, Vec<f32>) {
    let kdim = w.len() / c_out.max(1);
    let r = range as f32;
    let mut q = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(c_out);
    for row in w.chunks_exact(kdim) {
        let m = row.iter().fold(0f32, |m, v| m.max(v.abs()));
        let s = m / r;
        scales.push(s);
        q.extend(row.iter().map(|&v| if s > 0.0 { (v / s).round_ties_even().clamp(-r, r) as i8 } else { 0 }));
    }
    (q, scales)
}

fn int8_act(act: Act) -> perch_int8::Act {
    match act {
        Act::None => perch_int8::Act::None,
        Act::Silu => perch_int8::Act::Silu,
    }
}

impl Conv {
    fn shape(&self) -> ConvShape {
        ConvShape { c_in: self.c_in, c_out: self.c_out, k: self.k, stride: self.stride, pad: self.pad, groups: self.groups }
    }

    /// An int8 conv from its quantized tensors.
    pub(crate) fn from_int8(prefix: &str, spec: ConvSpec, t: Int8ConvTensors) -> Result<Conv> {
        spec.check(prefix)?;
        let ConvSpec { c_in, c_out, k, stride, groups, act } = spec;
        let mut c = Conv {
            name: super::conv::module_name(prefix).to_string(),
            prefix: prefix.to_string(),
            weight: None,
            bias: None,
            w_cpu: Vec::new(),
            b_cpu: t.bias,
            q: None,
            c_in,
            c_out,
            k,
            stride,
            pad: k / 2,
            groups,
            act,
            kernel: ConvKernel::Int8,
        };
        let packed = PackedConv::new(c.shape(), &t.w, &t.w_scale, &c.b_cpu, t.input)
            .with_context(|| format!("packing the int8 weights of {prefix}"))?;
        c.q = Some(Arc::new(QConv { packed, w: t.w, w_scale: t.w_scale, input: t.input, output: t.output }));
        Ok(c)
    }

    /// Loads an int8 conv from a quantized model file (`prefix`: where its tensors are).
    pub fn load_int8(st: &safetensors::SafeTensors, prefix: &str, spec: ConvSpec) -> Result<Conv> {
        let t = format::read_int8_conv(st, prefix, &spec)?;
        Self::from_int8(prefix, spec, t)
    }

    /// This float conv quantized: weights per output channel to [-weight_range, weight_range],
    /// input read in `input`, output requantized to `output` (None: f32 output).
    pub fn to_int8(&self, input: QParams, output: Option<QParams>, weight_range: i8) -> Result<Conv> {
        let (w, b) = self.float_weights()?;
        let (wq, ws) = quantize_weights(&w, self.c_out, weight_range);
        Self::from_int8(&self.prefix, self.spec(), Int8ConvTensors { w: wq, w_scale: ws, bias: b, input, output })
    }

    /// The float conv this int8 conv stands for: the dequantized weights (w_scale * w) and the
    /// bias, on the fused f32 kernel (the oracle of the layer tests).
    pub fn dequantized(&self) -> Result<Conv> {
        let q = self.q.as_ref().with_context(|| format!("conv {} is not int8", self.name))?;
        let kdim = q.w.len() / self.c_out;
        let w: Vec<f32> = q.w.iter().enumerate().map(|(i, &v)| v as f32 * q.w_scale[i / kdim]).collect();
        let wt = Tensor::from_vec(w, (self.c_out, self.c_in / self.groups, self.k, self.k), &Device::Cpu)?;
        let bt = Tensor::from_vec(self.b_cpu.clone(), self.c_out, &Device::Cpu)?;
        let mut c = Conv::from_tensors(wt, bt, self.stride, self.groups, self.act, ConvKernel::F32)?;
        c.name = self.name.clone();
        c.prefix = self.prefix.clone();
        Ok(c)
    }

    /// The int8 conv with another output quantization (None: f32 output).
    pub fn with_output(&self, output: Option<QParams>) -> Result<Conv> {
        let q = self.q.as_ref().with_context(|| format!("conv {} is not int8", self.name))?;
        let t = Int8ConvTensors { w: q.w.clone(), w_scale: q.w_scale.clone(), bias: self.b_cpu.clone(), input: q.input, output };
        Self::from_int8(&self.prefix, self.spec(), t)
    }

    pub(super) fn forward_int8(&self, parts: &[Fmap], residual: Option<&Fmap>) -> Result<Fmap> {
        let q = self.q.as_ref().context("int8 conv without int8 weights")?;
        let (_, _, h, w) = parts[0].dims4()?;
        // Every part in the input quantization, as contiguous u8 tensors.
        let mut us = Vec::with_capacity(parts.len());
        for p in parts {
            let (_, c, ph, pw) = p.dims4()?;
            if (ph, pw) != (h, w) {
                bail!("concatenated maps differ in size: {h}x{w} and {ph}x{pw}");
            }
            us.push(match p {
                Fmap::U8(t, qp) if *qp == q.input => t.contiguous()?,
                Fmap::U8(t, qp) => {
                    let t = t.contiguous()?;
                    let d = with_u8_data(&t, |src| -> Result<Vec<u8>> {
                        let mut d = vec![0u8; src.len()];
                        perch_int8::requantize(src, *qp, q.input, &mut d)?;
                        Ok(d)
                    })??;
                    u8_map(d, c, h, w, q.input)?.tensor().clone()
                }
                Fmap::Float(t) => {
                    let t = t.to_dtype(DType::F32)?.contiguous()?;
                    let d = super::conv::with_cpu_data(&t, |src| -> Result<Vec<u8>> {
                        let mut d = vec![0u8; src.len()];
                        perch_int8::quantize(src, q.input, &mut d)?;
                        Ok(d)
                    })??;
                    u8_map(d, c, h, w, q.input)?.tensor().clone()
                }
            });
        }
        let (oh, ow) = self.shape().out_hw(h, w)?;
        let n = self.c_out * oh * ow;
        let act = int8_act(self.act);
        // The residual as the kernel reads it: u8 with its own quantization, or f32.
        let res_t = match residual {
            Some(Fmap::U8(t, qp)) => Some((t.contiguous()?, Some(*qp))),
            Some(Fmap::Float(t)) => Some((t.to_dtype(DType::F32)?.contiguous()?, None)),
            None => None,
        };
        if let Some((t, _)) = &res_t {
            if t.dims() != [1, self.c_out, oh, ow] {
                bail!("residual shape {:?} does not match conv output [1, {}, {oh}, {ow}]", t.dims(), self.c_out);
            }
        }
        let run = |slices: &[&[u8]], res: Residual| -> Result<Fmap> {
            Ok(match q.output {
                Some(oq) => {
                    let mut out = vec![0u8; n];
                    perch_int8::conv(&q.packed, slices, h, w, act, res, Output::U8(&mut out, oq))?;
                    u8_map(out, self.c_out, oh, ow, oq)?
                }
                None => {
                    let mut out = vec![0f32; n];
                    perch_int8::conv(&q.packed, slices, h, w, act, res, Output::F32(&mut out))?;
                    Fmap::Float(Tensor::from_vec(out, (1, self.c_out, oh, ow), &Device::Cpu)?)
                }
            })
        };
        with_u8_slices(&us, |slices| match &res_t {
            None => run(slices, Residual::None),
            Some((t, Some(qp))) => with_u8_data(t, |r| run(slices, Residual::U8(r, *qp)))?,
            Some((t, None)) => super::conv::with_cpu_data(t, |r| run(slices, Residual::F32(r)))?,
        })?
    }
}

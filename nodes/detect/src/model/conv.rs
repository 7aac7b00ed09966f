//! The one conv layer every convolution of the model goes through: weights + bias (BatchNorm is
//! already folded in by the ONNX export), fused activation and optional fused residual add.
//!
//! The implementation is chosen per layer by [`ConvKernel`]: `Reference` is Candle's own conv2d
//! followed by separate ops (device-agnostic, used on CUDA and as the test oracle); `F32` is the
//! fused CPU path in [`super::kernels`]; `Int8` runs s8 weights on u8 activations with the
//! `perch-int8` kernels ([`super::qconv`]).

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use candle_core::{CpuStorage, DType, Device, Module, Storage, Tensor};
use candle_nn::VarBuilder;

use super::fmap::{Cx, Fmap};
use super::kernels::{self, Act, ConvGeom};
use super::qconv::QConv;
use super::sgemm::{self, PackedW};

/// Which implementation a [`Conv`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvKernel {
    /// Candle conv2d + bias + activation as separate tensor ops (any device).
    Reference,
    /// Fused f32 CPU kernels: tiled im2col + GEMM / direct depthwise, bias+act+residual fused.
    F32,
    /// s8 per-channel weights on u8 activations (CPU), f32 epilogue, u8 or f32 output.
    Int8,
}

impl ConvKernel {
    /// The best float kernel for a device.
    pub fn for_device(device: &Device) -> Self {
        if device.is_cpu() {
            ConvKernel::F32
        } else {
            ConvKernel::Reference
        }
    }
}

/// A convolution with bias and fused activation. Square kernel, "same"-style padding k/2 unless
/// given, `groups` either 1 or depthwise (= c_in = c_out).
#[derive(Debug, Clone)]
pub struct Conv {
    /// The Ultralytics module name (`model.2.cv1`); tensors are under `prefix` (`model.2.cv1.conv`).
    pub(super) name: String,
    pub(super) prefix: String,
    /// Float weights [c_out, c_in/groups, k, k] and bias [c_out] (None for an int8 conv).
    pub(super) weight: Option<Tensor>,
    pub(super) bias: Option<Tensor>,
    /// Row-major copies for the CPU kernels: [c_out, c_in/groups*k*k] (float kernel) and [c_out]
    /// (float and int8 kernels).
    pub(super) w_cpu: Vec<f32>,
    pub(super) b_cpu: Vec<f32>,
    /// `w_cpu` packed for the conv GEMM's micro-kernel (float kernel, dense convs), at load.
    pub(super) packed: Option<Arc<PackedW>>,
    /// Packed s8 weights and the activation quantization (int8 kernel).
    pub(super) q: Option<Arc<QConv>>,
    pub(super) c_in: usize,
    pub(super) c_out: usize,
    pub(super) k: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) groups: usize,
    pub(super) act: Act,
    pub(super) kernel: ConvKernel,
}

/// Parameters of a conv as the model definition states them.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    pub act: Act,
}

impl ConvSpec {
    pub fn new(c_in: usize, c_out: usize, k: usize, stride: usize) -> Self {
        Self { c_in, c_out, k, stride, groups: 1, act: Act::Silu }
    }
    pub fn no_act(mut self) -> Self {
        self.act = Act::None;
        self
    }
    pub fn groups(mut self, g: usize) -> Self {
        self.groups = g;
        self
    }
    pub(super) fn check(&self, prefix: &str) -> Result<()> {
        let ConvSpec { c_in, c_out, groups, .. } = *self;
        if groups != 1 && !(groups == c_in && groups == c_out) {
            bail!("conv {prefix}: only dense or depthwise convs are supported (groups {groups}, {c_in}->{c_out})");
        }
        Ok(())
    }
}

/// A dense conv's weights packed for the GEMM path it will run (see `forward_f32`).
fn pack_dense(w: &[f32], c_out: usize, c_in: usize, k: usize, stride: usize) -> Arc<PackedW> {
    Arc::new(if sgemm::taps_fit(k, stride) {
        PackedW::for_taps(w, c_out, c_in, k * k)
    } else {
        PackedW::new(w, c_out, c_in * k * k)
    })
}

pub(crate) fn tensor_f32_vec(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?)
}

/// Whether the hand-written CPU kernels can read `t` (an f32 tensor in host memory); anything
/// else (CUDA, the f16 path) goes through Candle's ops.
pub(crate) fn on_fused_path(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// Borrows the f32 data of a contiguous CPU tensor.
pub(crate) fn with_cpu_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    with_cpu_slices(std::slice::from_ref(t), |s| f(s[0]))
}

/// Borrows the f32 data of several contiguous CPU tensors at once.
pub(crate) fn with_cpu_slices<R>(ts: &[Tensor], f: impl FnOnce(&[&[f32]]) -> R) -> Result<R> {
    let storages: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(ts.len());
    for ((storage, layout), t) in storages.iter().zip(ts) {
        let Storage::Cpu(cpu) = &**storage else { bail!("expected a CPU tensor") };
        let CpuStorage::F32(data) = cpu else { bail!("expected an f32 tensor, got {:?}", t.dtype()) };
        let Some((a, b)) = layout.contiguous_offsets() else { bail!("expected a contiguous tensor") };
        slices.push(&data[a..b]);
    }
    Ok(f(&slices))
}

/// The module name of a tensor prefix: Ultralytics' `Conv` keeps its `nn.Conv2d` under `.conv`.
pub fn module_name(prefix: &str) -> &str {
    prefix.strip_suffix(".conv").unwrap_or(prefix)
}

impl Conv {
    /// Loads float `weight` and `bias` under `vb` (for Ultralytics' `Conv` module pass
    /// `vb.pp("conv")`, for a bare `nn.Conv2d` the module's own prefix).
    pub fn load(vb: VarBuilder, spec: ConvSpec, kernel: ConvKernel) -> Result<Self> {
        let prefix = vb.prefix();
        spec.check(&prefix)?;
        if kernel == ConvKernel::Int8 {
            bail!("conv {prefix}: int8 convs are loaded from a quantized model file");
        }
        let ConvSpec { c_in, c_out, k, stride, groups, act } = spec;
        let weight = vb
            .get((c_out, c_in / groups, k, k), "weight")
            .with_context(|| format!("loading tensor {prefix}.weight"))?;
        let bias = vb.get(c_out, "bias").with_context(|| format!("loading tensor {prefix}.bias"))?;
        let (w_cpu, b_cpu) = if kernel == ConvKernel::F32 {
            (tensor_f32_vec(&weight)?, tensor_f32_vec(&bias)?)
        } else {
            (Vec::new(), Vec::new())
        };
        let packed = (kernel == ConvKernel::F32 && groups == 1).then(|| pack_dense(&w_cpu, c_out, c_in, k, stride));
        Ok(Self {
            name: module_name(&prefix).to_string(),
            prefix,
            weight: Some(weight),
            bias: Some(bias),
            w_cpu,
            b_cpu,
            packed,
            q: None,
            c_in,
            c_out,
            k,
            stride,
            pad: k / 2,
            groups,
            act,
            kernel,
        })
    }

    /// The Ultralytics module name (`model.2.cv1`, `model.21.cv2.0.2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the layer's tensors are (`model.2.cv1.conv`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn c_out(&self) -> usize {
        self.c_out
    }

    pub fn kernel(&self) -> ConvKernel {
        self.kernel
    }

    pub fn spec(&self) -> ConvSpec {
        ConvSpec { c_in: self.c_in, c_out: self.c_out, k: self.k, stride: self.stride, groups: self.groups, act: self.act }
    }

    /// Float weights as row-major f32 ([c_out, c_in/groups*k*k]) and the bias; an int8 conv has none.
    pub fn float_weights(&self) -> Result<(Vec<f32>, Vec<f32>)> {
        match (&self.weight, &self.bias) {
            (Some(w), Some(b)) if self.w_cpu.is_empty() => Ok((tensor_f32_vec(w)?, tensor_f32_vec(b)?)),
            (Some(_), Some(_)) => Ok((self.w_cpu.clone(), self.b_cpu.clone())),
            _ => bail!("conv {}: an int8 conv has no float weights", self.name),
        }
    }

    /// The f32 bias (float and int8 convs on the CPU kernels).
    pub fn float_bias(&self) -> &[f32] {
        &self.b_cpu
    }

    /// The int8 state (packed weights, scales, activation quantization) of an int8 conv.
    pub fn int8(&self) -> Option<&QConv> {
        self.q.as_deref()
    }

    /// Returns the same layer running another float kernel (for tests and benchmarks).
    pub fn with_kernel(&self, kernel: ConvKernel) -> Result<Self> {
        if self.kernel == ConvKernel::Int8 || kernel == ConvKernel::Int8 {
            bail!("conv {}: use Conv::to_int8 / an int8 model file to switch to int8", self.name);
        }
        let mut c = self.clone();
        c.kernel = kernel;
        if kernel == ConvKernel::F32 && c.w_cpu.is_empty() {
            (c.w_cpu, c.b_cpu) = self.float_weights()?;
        }
        if kernel == ConvKernel::F32 && c.groups == 1 && c.packed.is_none() {
            c.packed = Some(pack_dense(&c.w_cpu, c.c_out, c.c_in, c.k, c.stride));
        }
        Ok(c)
    }

    /// Builds a layer from explicit tensors (tests, benchmarks).
    pub fn from_tensors(weight: Tensor, bias: Tensor, stride: usize, groups: usize, act: Act, kernel: ConvKernel) -> Result<Self> {
        let (c_out, cin_g, k, k2) = weight.dims4()?;
        if k != k2 {
            bail!("only square kernels are supported, got {k}x{k2}");
        }
        let c_in = cin_g * groups;
        let c = Self {
            name: "conv".into(),
            prefix: "conv".into(),
            weight: Some(weight),
            bias: Some(bias),
            w_cpu: Vec::new(),
            b_cpu: Vec::new(),
            packed: None,
            q: None,
            c_in,
            c_out,
            k,
            stride,
            pad: k / 2,
            groups,
            act,
            kernel: ConvKernel::Reference,
        };
        c.with_kernel(kernel)
    }

    /// The layer on one float map.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_add(x, None)
    }

    /// act(conv(x) + bias) + residual, float in and out.
    pub fn forward_add(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let r = residual.map(|r| Fmap::Float(r.clone()));
        self.run(&[Fmap::Float(x.clone())], r.as_ref(), Cx::default())?.to_float(DType::F32)
    }

    /// `self` applied to the channel concatenation of float `parts`.
    pub fn forward_cat(&self, parts: &[Tensor]) -> Result<Tensor> {
        let parts: Vec<Fmap> = parts.iter().cloned().map(Fmap::Float).collect();
        self.run(&parts, None, Cx::default())?.to_float(DType::F32)
    }

    /// The layer on the channel concatenation of `parts`, plus `residual`: what every block calls.
    /// Float kernels dequantize u8 inputs; the int8 kernel quantizes float inputs to its input
    /// quantization. The observer, if any, sees inputs and output.
    pub fn run(&self, parts: &[Fmap], residual: Option<&Fmap>, cx: Cx) -> Result<Fmap> {
        if parts.is_empty() {
            bail!("conv {}: over a concatenation of no tensors", self.name);
        }
        let out = match self.kernel {
            ConvKernel::Int8 => self.forward_int8(parts, residual),
            _ => self.forward_float(parts, residual).map(Fmap::Float),
        }
        .with_context(|| format!("conv {}", self.name))?;
        if let Some(o) = cx.observer {
            o.conv(&self.name, parts, residual, &out);
        }
        Ok(out)
    }

    fn forward_float(&self, parts: &[Fmap], residual: Option<&Fmap>) -> Result<Tensor> {
        let dtype = self.weight.as_ref().context("no float weights")?.dtype();
        let parts = parts.iter().map(|p| p.to_float(dtype)).collect::<Result<Vec<_>>>()?;
        let residual = residual.map(|r| r.to_float(dtype)).transpose()?;
        let residual = residual.as_ref();
        let (_, _, h, w) = parts[0].dims4()?;
        let mut c_total = 0;
        for p in &parts {
            let (_, c, ph, pw) = p.dims4()?;
            if (ph, pw) != (h, w) {
                bail!("concatenated maps differ in size: {h}x{w} and {ph}x{pw}");
            }
            c_total += c;
        }
        if c_total != self.c_in {
            bail!("conv expects {} input channels, got {c_total}", self.c_in);
        }
        let fused = self.kernel == ConvKernel::F32 && parts.iter().all(|p| on_fused_path(p) && p.dim(0).ok() == Some(1));
        if !fused {
            let x = if parts.len() == 1 { parts[0].clone() } else { Tensor::cat(&parts, 1)? };
            return self.forward_reference(&x, residual);
        }
        if parts.len() == 1 {
            return self.forward_f32(&parts[0], residual, h, w);
        }
        if !(self.k == 1 && self.stride == 1 && self.groups == 1) {
            return self.forward_f32(&Tensor::cat(&parts, 1)?, residual, h, w);
        }
        // A fused 1x1 conv reads the parts in place (no concatenated copy).
        let parts = parts.iter().map(|p| p.contiguous()).collect::<candle_core::Result<Vec<_>>>()?;
        let res = residual.map(|r| r.contiguous()).transpose()?;
        if let Some(r) = &res {
            if r.dims() != [1, self.c_out, h, w] {
                bail!("residual shape {:?} does not match conv output [1, {}, {h}, {w}]", r.dims(), self.c_out);
            }
        }
        let out = with_cpu_slices(&parts, |slices| -> Result<Vec<f32>> {
            let pw = self.packed_w()?;
            let run = |rd: Option<&[f32]>| sgemm::conv1x1(slices, h * w, pw, &self.b_cpu, self.act, rd);
            match &res {
                Some(r) => with_cpu_data(r, |rd| run(Some(rd))),
                None => Ok(run(None)),
            }
        })??;
        Ok(Tensor::from_vec(out, (1, self.c_out, h, w), &Device::Cpu)?)
    }

    fn packed_w(&self) -> Result<&PackedW> {
        self.packed.as_deref().with_context(|| format!("conv {}: no packed float weights (not a dense f32 conv)", self.name))
    }

    fn forward_reference(&self, x: &Tensor, residual: Option<&Tensor>) -> Result<Tensor> {
        let (weight, bias) = (self.weight.as_ref().context("no float weights")?, self.bias.as_ref().context("no bias")?);
        let y = x.conv2d(weight, self.pad, self.stride, 1, self.groups)?;
        let y = y.broadcast_add(&bias.reshape((1, self.c_out, 1, 1))?)?;
        let y = match self.act {
            Act::Silu => candle_nn::Activation::Silu.forward(&y)?,
            Act::None => y,
        };
        Ok(match residual {
            Some(r) => (y + r)?,
            None => y,
        })
    }

    fn forward_f32(&self, x: &Tensor, residual: Option<&Tensor>, h: usize, w: usize) -> Result<Tensor> {
        let g = ConvGeom { c_in: self.c_in, h, w, c_out: self.c_out, k: self.k, stride: self.stride, pad: self.pad };
        let (oh, ow) = g.out_hw();
        let x = x.contiguous()?;
        let res = residual.map(|r| r.contiguous()).transpose()?;
        if let Some(r) = &res {
            if r.dims() != [1, self.c_out, oh, ow] {
                bail!("residual shape {:?} does not match conv output [1, {}, {oh}, {ow}]", r.dims(), self.c_out);
            }
        }
        let pw = if self.groups == 1 { Some(self.packed_w()?) } else { None };
        let out = with_cpu_data(&x, |xd| -> Result<Vec<f32>> {
            let run = |rd: Option<&[f32]>| {
                if let Some(pw) = pw {
                    if g.k == 1 && g.stride == 1 && g.pad == 0 {
                        sgemm::conv1x1(&[xd], h * w, pw, &self.b_cpu, self.act, rd)
                    } else if sgemm::taps_fit(g.k, g.stride) {
                        sgemm::conv_taps(xd, &g, pw, &self.b_cpu, self.act, rd)
                    } else {
                        sgemm::conv_im2col(xd, &g, pw, &self.b_cpu, self.act, rd)
                    }
                } else {
                    kernels::conv_depthwise(xd, &g, &self.w_cpu, &self.b_cpu, self.act, rd)
                }
            };
            match &res {
                Some(r) => with_cpu_data(r, |rd| run(Some(rd))),
                None => Ok(run(None)),
            }
        })??;
        Ok(Tensor::from_vec(out, (1, self.c_out, oh, ow), &Device::Cpu)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
    }

    fn check(c_in: usize, c_out: usize, k: usize, s: usize, groups: usize, h: usize, w: usize, act: Act, with_res: bool) {
        let dev = Device::Cpu;
        let wt = Tensor::randn(0f32, 0.3, (c_out, c_in / groups, k, k), &dev).unwrap();
        let bs = Tensor::randn(0f32, 0.5, c_out, &dev).unwrap();
        let x = Tensor::rand(0f32, 1.0, (1, c_in, h, w), &dev).unwrap();
        let refc = Conv::from_tensors(wt.clone(), bs.clone(), s, groups, act, ConvKernel::Reference).unwrap();
        let fast = refc.with_kernel(ConvKernel::F32).unwrap();
        let yr = refc.forward(&x).unwrap();
        let res = if with_res { Some(Tensor::randn(0f32, 1.0, yr.shape(), &dev).unwrap()) } else { None };
        let yr = refc.forward_add(&x, res.as_ref()).unwrap();
        let yf = fast.forward_add(&x, res.as_ref()).unwrap();
        assert_eq!(yr.dims(), yf.dims());
        let d = max_diff(&yr, &yf);
        assert!(d < 1e-4, "c{c_in}->{c_out} k{k} s{s} g{groups} {h}x{w}: max diff {d}");
    }

    #[test]
    fn conv_over_parts_matches_conv_over_their_concatenation() {
        let dev = Device::Cpu;
        let parts: Vec<Tensor> = [16usize, 8, 24]
            .iter()
            .map(|&c| Tensor::rand(0f32, 1.0, (1, c, 13, 17), &dev).unwrap())
            .collect();
        let wt = Tensor::randn(0f32, 0.3, (40, 48, 1, 1), &dev).unwrap();
        let bs = Tensor::randn(0f32, 0.5, 40, &dev).unwrap();
        let refc = Conv::from_tensors(wt, bs, 1, 1, Act::Silu, ConvKernel::Reference).unwrap();
        let fast = refc.with_kernel(ConvKernel::F32).unwrap();
        let want = refc.forward(&Tensor::cat(&parts, 1).unwrap()).unwrap();
        assert!(max_diff(&want, &fast.forward_cat(&parts).unwrap()) < 1e-4);
        assert!(max_diff(&want, &refc.forward_cat(&parts).unwrap()) < 1e-6);
        // Narrowed views (C2f's split of cv1's output) are read in place too.
        let whole = Tensor::cat(&parts, 1).unwrap();
        let views = [whole.narrow(1, 0, 20).unwrap(), whole.narrow(1, 20, 28).unwrap()];
        assert!(max_diff(&want, &fast.forward_cat(&views).unwrap()) < 1e-4);
        let err = fast.forward_cat(&parts[..2]).unwrap_err();
        assert!(format!("{err:#}").contains("48 input channels"), "{err:#}");
    }

    #[test]
    fn fused_f32_matches_candle_conv() {
        check(3, 16, 3, 2, 1, 33, 47, Act::Silu, false);
        check(16, 32, 3, 2, 1, 40, 40, Act::Silu, false);
        check(32, 24, 3, 1, 1, 21, 19, Act::Silu, true);
        check(64, 48, 1, 1, 1, 20, 20, Act::None, true);
        check(48, 80, 1, 1, 1, 80, 80, Act::Silu, false);
        check(64, 64, 7, 1, 64, 20, 20, Act::None, true);
        check(80, 80, 3, 1, 80, 40, 40, Act::Silu, false);
        check(8, 8, 3, 2, 8, 17, 18, Act::Silu, false);
        check(5, 7, 5, 1, 1, 9, 6, Act::Silu, false);
        // Maps of a few pixels run as a single tile (P5 at tiny input sizes).
        check(16, 24, 3, 1, 1, 3, 3, Act::Silu, true);
        check(16, 24, 1, 1, 1, 2, 2, Act::None, false);
    }
}

//! Native YOLO (v8, v12) in Candle, mirroring Ultralytics' model definitions
//! (`cfg/models/v8/yolov8.yaml`, `12/yolo12.yaml`) and loading weights by their upstream names
//! (`model.0.conv.weight`, ...). BatchNorm is expected folded into the convs, as in an
//! Ultralytics ONNX export.

pub mod blocks;
pub mod conv;
pub mod fmap;
pub mod graph;
pub mod head;
pub mod heap;
pub mod kernels;
pub mod load;
pub mod qconv;
pub mod sgemm;

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use blocks::{A2C2f, C2f, Convs, Sppf};
use conv::{Conv, ConvKernel, ConvSpec};
use fmap::{Cx, Fmap, Observer};
use graph::{ConvNode, Src};
use head::{ClsBranch, Detect};
use load::LoadCx;

/// Model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Yolov8,
    Yolo11,
    Yolov12,
}

/// Model scale (Ultralytics' n/s/m/l/x width and depth multipliers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    N,
    S,
    M,
    L,
    X,
}

impl Scale {
    /// (depth, width, max_channels) for an architecture.
    fn multipliers(self, arch: Arch) -> (f64, f64, usize) {
        match arch {
            Arch::Yolov8 => match self {
                Scale::N => (0.33, 0.25, 1024),
                Scale::S => (0.33, 0.50, 1024),
                Scale::M => (0.67, 0.75, 768),
                Scale::L => (1.00, 1.00, 512),
                Scale::X => (1.00, 1.25, 512),
            },
            Arch::Yolo11 | Arch::Yolov12 => match self {
                Scale::N => (0.50, 0.25, 1024),
                Scale::S => (0.50, 0.50, 1024),
                Scale::M => (0.50, 1.00, 512),
                Scale::L => (1.00, 1.00, 512),
                Scale::X => (1.00, 1.50, 512),
            },
        }
    }
}

/// One layer of the model graph, as in the YAML definitions.
#[derive(Debug, Clone)]
enum Module {
    Conv(Conv),
    C2f(C2f),
    A2C2f(A2C2f),
    Sppf(Sppf),
    Upsample,
    Concat,
    Detect(Detect),
}

#[derive(Debug, Clone)]
struct Layer {
    /// Inputs: -1 = previous layer, otherwise an absolute layer index.
    from: Vec<i32>,
    module: Module,
}

/// Layer kinds of the YAML definitions with their (unscaled) arguments.
enum Spec {
    Conv { c2: usize, k: usize, s: usize },
    C2f { c2: usize, n: usize, shortcut: bool },
    C3k2 { c2: usize, n: usize, c3k: bool, e: f64 },
    A2C2f { c2: usize, n: usize, a2: bool, area: usize },
    Sppf { c2: usize, k: usize },
    Upsample,
    Concat,
    Detect,
}

fn yolov8_spec() -> Vec<(Vec<i32>, Spec)> {
    use Spec::*;
    vec![
        (vec![-1], Conv { c2: 64, k: 3, s: 2 }),
        (vec![-1], Conv { c2: 128, k: 3, s: 2 }),
        (vec![-1], C2f { c2: 128, n: 3, shortcut: true }),
        (vec![-1], Conv { c2: 256, k: 3, s: 2 }),
        (vec![-1], C2f { c2: 256, n: 6, shortcut: true }),
        (vec![-1], Conv { c2: 512, k: 3, s: 2 }),
        (vec![-1], C2f { c2: 512, n: 6, shortcut: true }),
        (vec![-1], Conv { c2: 1024, k: 3, s: 2 }),
        (vec![-1], C2f { c2: 1024, n: 3, shortcut: true }),
        (vec![-1], Sppf { c2: 1024, k: 5 }),
        (vec![-1], Upsample),
        (vec![-1, 6], Concat),
        (vec![-1], C2f { c2: 512, n: 3, shortcut: false }),
        (vec![-1], Upsample),
        (vec![-1, 4], Concat),
        (vec![-1], C2f { c2: 256, n: 3, shortcut: false }),
        (vec![-1], Conv { c2: 256, k: 3, s: 2 }),
        (vec![-1, 12], Concat),
        (vec![-1], C2f { c2: 512, n: 3, shortcut: false }),
        (vec![-1], Conv { c2: 512, k: 3, s: 2 }),
        (vec![-1, 9], Concat),
        (vec![-1], C2f { c2: 1024, n: 3, shortcut: false }),
        (vec![15, 18, 21], Detect),
    ]
}

fn yolov12_spec() -> Vec<(Vec<i32>, Spec)> {
    use Spec::*;
    vec![
        (vec![-1], Conv { c2: 64, k: 3, s: 2 }),
        (vec![-1], Conv { c2: 128, k: 3, s: 2 }),
        (vec![-1], C3k2 { c2: 256, n: 2, c3k: false, e: 0.25 }),
        (vec![-1], Conv { c2: 256, k: 3, s: 2 }),
        (vec![-1], C3k2 { c2: 512, n: 2, c3k: false, e: 0.25 }),
        (vec![-1], Conv { c2: 512, k: 3, s: 2 }),
        (vec![-1], A2C2f { c2: 512, n: 4, a2: true, area: 4 }),
        (vec![-1], Conv { c2: 1024, k: 3, s: 2 }),
        (vec![-1], A2C2f { c2: 1024, n: 4, a2: true, area: 1 }),
        (vec![-1], Upsample),
        (vec![-1, 6], Concat),
        (vec![-1], A2C2f { c2: 512, n: 2, a2: false, area: 1 }),
        (vec![-1], Upsample),
        (vec![-1, 4], Concat),
        (vec![-1], A2C2f { c2: 256, n: 2, a2: false, area: 1 }),
        (vec![-1], Conv { c2: 256, k: 3, s: 2 }),
        (vec![-1, 11], Concat),
        (vec![-1], A2C2f { c2: 512, n: 2, a2: false, area: 1 }),
        (vec![-1], Conv { c2: 512, k: 3, s: 2 }),
        (vec![-1, 8], Concat),
        (vec![-1], C3k2 { c2: 1024, n: 2, c3k: true, e: 0.5 }),
        (vec![14, 17, 20], Detect),
    ]
}

fn make_divisible(x: f64, d: usize) -> usize {
    ((x / d as f64).ceil() as usize) * d
}

/// A YOLO detector: input [1, 3, H, W] f32 in 0..1 (H, W multiples of 32), output
/// [1, 4 + nc, N] as Ultralytics' ONNX export produces it.
#[derive(Debug, Clone)]
pub struct YoloModel {
    layers: Vec<Layer>,
    /// Which layer outputs later layers read (others are dropped early).
    keep: Vec<bool>,
    arch: Arch,
    num_classes: usize,
    /// Float weights and activations (f32 on CPU, f16 on CUDA); the output is always f32.
    dtype: DType,
    /// Every conv with the tensors it reads, in forward order.
    graph: Vec<ConvNode>,
    profile: bool,
}

impl YoloModel {
    /// Loads `model.safetensors` (as written by `perch model import`) in the device's precision:
    /// f16 on CUDA (half the memory traffic, tensor cores), f32 on the CPU (no fast f16 math there).
    pub fn load(weights: &Path, arch: Arch, scale: Scale, num_classes: usize, device: &Device) -> Result<YoloModel> {
        Self::load_as(weights, arch, scale, num_classes, device, Self::dtype_for(device))
    }

    /// The precision [`YoloModel::load`] picks for a device.
    pub fn dtype_for(device: &Device) -> DType {
        if device.is_cpu() {
            DType::F32
        } else {
            DType::F16
        }
    }

    /// Loads in an explicit precision. F16 runs Candle's device-agnostic reference ops (what CUDA
    /// runs), so the f16 path can be tested on the CPU too.
    pub fn load_as(weights: &Path, arch: Arch, scale: Scale, num_classes: usize, device: &Device, dtype: DType) -> Result<YoloModel> {
        if !matches!(dtype, DType::F32 | DType::F16) {
            bail!("model precision {dtype:?} is not supported (f32 and f16 are)");
        }
        // SAFETY: the file is memory-mapped read-only; perch does not modify model files while running.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[weights], dtype, device) }
            .with_context(|| format!("reading weights {}", weights.display()))?;
        let kern = if dtype == DType::F32 { ConvKernel::for_device(device) } else { ConvKernel::Reference };
        Self::from_varbuilder(vb, arch, scale, num_classes, kern)
            .with_context(|| format!("loading {arch:?}-{scale:?} ({num_classes} classes) from {}", weights.display()))
    }

    /// Loads from the bytes of a `model.safetensors` (f32 kernels on the CPU): what [`Self::load`]
    /// reads from the file, for callers that hold the bytes (the fuzzer, embedded models).
    pub fn load_from_bytes(bytes: Vec<u8>, arch: Arch, scale: Scale, num_classes: usize, device: &Device) -> Result<YoloModel> {
        let dtype = Self::dtype_for(device);
        let vb = VarBuilder::from_buffered_safetensors(bytes, dtype, device).context("reading safetensors weights")?;
        let kern = if dtype == DType::F32 { ConvKernel::for_device(device) } else { ConvKernel::Reference };
        Self::from_varbuilder(vb, arch, scale, num_classes, kern)
            .with_context(|| format!("loading {arch:?}-{scale:?} ({num_classes} classes) from safetensors bytes"))
    }

    /// Loads an int8 model file (as written by `perch model quantize`): convs stored with I8
    /// weights run the int8 kernels, the others (kept in f32) the fused f32 kernels. CPU only.
    pub fn load_int8(weights: &Path, arch: Arch, scale: Scale, num_classes: usize) -> Result<YoloModel> {
        let bytes = std::fs::read(weights).with_context(|| format!("reading weights {}", weights.display()))?;
        Self::load_int8_bytes(&bytes, arch, scale, num_classes).with_context(|| format!("{}", weights.display()))
    }

    /// [`YoloModel::load_int8`] from the file's bytes.
    pub fn load_int8_bytes(bytes: &[u8], arch: Arch, scale: Scale, num_classes: usize) -> Result<YoloModel> {
        let st = crate::quant::format::open(bytes)?;
        if crate::quant::format::int8_prefixes(&st).is_empty() {
            bail!("the file holds no int8 tensor (an I8 `<conv>.weight`): not a quantized model");
        }
        let vb = VarBuilder::from_slice_safetensors(bytes, DType::F32, &Device::Cpu)?;
        let cx = LoadCx::new(ConvKernel::F32, Some(&st));
        Self::build(vb, arch, scale, num_classes, cx)
            .with_context(|| format!("loading int8 {arch:?}-{scale:?} ({num_classes} classes)"))
    }

    /// Builds the model from any VarBuilder (weights under `model.<i>.`), with an explicit conv kernel.
    pub fn from_varbuilder(vb: VarBuilder, arch: Arch, scale: Scale, nc: usize, kern: ConvKernel) -> Result<YoloModel> {
        if kern == ConvKernel::Int8 {
            bail!("int8 models load from a quantized model file (YoloModel::load_int8)");
        }
        Self::build(vb, arch, scale, nc, LoadCx::new(kern, None))
    }

    fn build(vb: VarBuilder, arch: Arch, scale: Scale, nc: usize, cx: LoadCx) -> Result<YoloModel> {
        let dtype = vb.dtype();
        let kern = cx.kernel;
        if kern == ConvKernel::F32 && dtype != DType::F32 {
            bail!("the fused f32 conv kernels need f32 weights, got {dtype:?} (use ConvKernel::Reference)");
        }
        if kern == ConvKernel::F32 {
            heap::keep_freed_memory();
        }
        let spec = match arch {
            Arch::Yolov8 => yolov8_spec(),
            Arch::Yolov12 => {
                if !matches!(scale, Scale::N | Scale::S) {
                    bail!("YOLOv12 scales m/l/x are not supported yet (n and s are)");
                }
                yolov12_spec()
            }
            Arch::Yolo11 => bail!("YOLO11 is not supported yet (YOLOv8 and YOLOv12 are)"),
        };
        if nc == 0 {
            bail!("num_classes must be at least 1");
        }
        let (depth, width, max_ch) = scale.multipliers(arch);
        let ch_of = |c: usize| make_divisible(c.min(max_ch) as f64 * width, 8);
        let reps = |n: usize| if n > 1 { ((n as f64 * depth).round() as usize).max(1) } else { n };
        let vb = vb.pp("model");
        let mut chans: Vec<usize> = Vec::new();
        // The tensors each layer's output is made of (a Concat lists its inputs' parts).
        let mut srcs: Vec<Vec<Src>> = Vec::new();
        let mut layers = Vec::new();
        for (i, (from, s)) in spec.into_iter().enumerate() {
            let c_in_of = |f: i32| if f < 0 { if i == 0 { 3 } else { chans[i - 1] } } else { chans[f as usize] };
            let src_of = |f: i32| -> Vec<Src> {
                if f < 0 {
                    if i == 0 { vec![Src::Input] } else { srcs[i - 1].clone() }
                } else {
                    srcs[f as usize].clone()
                }
            };
            let c1 = c_in_of(from[0]);
            let x = src_of(from[0]);
            let lvb = vb.pp(i);
            let (module, c2, out) = match s {
                Spec::Conv { c2, k, s } => {
                    let c2 = ch_of(c2);
                    let m = cx.conv(&lvb.pp("conv"), ConvSpec::new(c1, c2, k, s), x, None)?;
                    let out = vec![Src::Conv(m.name().to_string())];
                    (Module::Conv(m), c2, out)
                }
                Spec::C2f { c2, n, shortcut } => {
                    let c2 = ch_of(c2);
                    let m = C2f::load_c2f(lvb, c1, c2, reps(n), shortcut, &cx, &x)?;
                    let out = vec![m.output()];
                    (Module::C2f(m), c2, out)
                }
                Spec::C3k2 { c2, n, c3k, e } => {
                    let c2 = ch_of(c2);
                    let m = C2f::load_c3k2(lvb, c1, c2, reps(n), c3k, e, &cx, &x)?;
                    let out = vec![m.output()];
                    (Module::C2f(m), c2, out)
                }
                Spec::A2C2f { c2, n, a2, area } => {
                    let c2 = ch_of(c2);
                    let m = A2C2f::load(lvb, c1, c2, reps(n), a2, area, &cx, &x)?;
                    let out = vec![m.output()];
                    (Module::A2C2f(m), c2, out)
                }
                Spec::Sppf { c2, k } => {
                    let c2 = ch_of(c2);
                    let m = Sppf::load(lvb, c1, c2, k, &cx, &x)?;
                    let out = vec![m.output()];
                    (Module::Sppf(m), c2, out)
                }
                // A nearest upsample keeps values and quantization: same tensors.
                Spec::Upsample => (Module::Upsample, c1, x),
                Spec::Concat => (
                    Module::Concat,
                    from.iter().map(|&f| c_in_of(f)).sum(),
                    from.iter().flat_map(|&f| src_of(f)).collect(),
                ),
                Spec::Detect => {
                    let ch: Vec<usize> = from.iter().map(|&f| c_in_of(f)).collect();
                    let feats: Vec<Vec<Src>> = from.iter().map(|&f| src_of(f)).collect();
                    let style = if arch == Arch::Yolov8 { ClsBranch::Legacy } else { ClsBranch::Depthwise };
                    (Module::Detect(Detect::load(lvb, nc, &ch, style, &cx, &feats)?), 0, Vec::new())
                }
            };
            chans.push(c2);
            srcs.push(out);
            layers.push(Layer { from, module });
        }
        let mut keep = vec![false; layers.len()];
        for l in &layers {
            for &f in &l.from {
                if f >= 0 {
                    keep[f as usize] = true;
                }
            }
        }
        let profile = std::env::var_os("PERCH_PROFILE_LAYERS").is_some();
        Ok(YoloModel { layers, keep, arch, num_classes: nc, dtype, graph: cx.graph.finish(), profile })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Every conv with the tensors it reads, in forward order.
    pub fn graph(&self) -> &[ConvNode] {
        &self.graph
    }

    /// Every conv layer (in load order, as [`YoloModel::graph`]).
    pub fn convs(&self) -> Vec<&Conv> {
        let mut out = Vec::new();
        for l in &self.layers {
            l.module.visit_convs(&mut |c| out.push(c));
        }
        out
    }

    /// A copy with every conv passed through `f` (quantization swaps layers to int8 this way).
    pub fn map_convs(&self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<YoloModel> {
        let mut m = self.clone();
        for l in &mut m.layers {
            l.module.map_convs(f)?;
        }
        Ok(m)
    }

    /// Whether any conv runs the int8 kernels.
    pub fn is_int8(&self) -> bool {
        self.convs().iter().any(|c| c.kernel() == ConvKernel::Int8)
    }

    /// Runs the network. `input`: [1, 3, H, W] f32 0..1 with H, W multiples of 32.
    /// Returns [1, 4 + nc, N]: cx, cy, w, h in input pixels, then sigmoid class scores.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor> {
        self.forward_with(input, Cx::default())
    }

    /// [`YoloModel::forward`] with `observer` seeing every conv.
    pub fn forward_observed(&self, input: &Tensor, observer: &dyn Observer) -> Result<Tensor> {
        self.forward_with(input, Cx { observer: Some(observer) })
    }

    fn forward_with(&self, input: &Tensor, cx: Cx) -> Result<Tensor> {
        let (b, c, h, w) = input.dims4().context("model input must be [1, 3, H, W]")?;
        if b != 1 || c != 3 {
            bail!("model input must be [1, 3, H, W], got {:?}", input.dims());
        }
        if h % 32 != 0 || w % 32 != 0 || h == 0 || w == 0 {
            bail!("model input height and width must be multiples of 32, got {h}x{w}");
        }
        // A layer's output is a list of maps whose channel concatenation it stands for: a Concat
        // only lists its inputs, and the next block's 1x1 conv reads them in place.
        let mut saved: Vec<Option<Vec<Fmap>>> = vec![None; self.layers.len()];
        let mut x = vec![Fmap::Float(input.to_dtype(self.dtype)?)];
        let mut output = None;
        let one = |parts: Vec<Fmap>| -> Result<Fmap> {
            Ok(if parts.len() == 1 {
                parts.into_iter().next().context("no map")?
            } else {
                let ts = parts.iter().map(|p| p.to_float(self.dtype)).collect::<Result<Vec<_>>>()?;
                Fmap::Float(Tensor::cat(&ts, 1)?)
            })
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let get = |f: i32| -> Result<Vec<Fmap>> {
                if f < 0 {
                    Ok(x.clone())
                } else {
                    saved[f as usize].clone().with_context(|| format!("layer {i} reads layer {f} which was not kept"))
                }
            };
            let t0 = self.profile.then(std::time::Instant::now);
            x = match &layer.module {
                Module::Conv(m) => vec![m.run(&x, None, cx)?],
                Module::C2f(m) => vec![m.forward(&x, cx)?],
                Module::A2C2f(m) => vec![m.forward(&x, cx)?],
                Module::Sppf(m) => vec![m.forward(&x, cx)?],
                Module::Upsample => x.iter().map(|p| p.upsample2()).collect::<Result<_>>()?,
                Module::Concat => {
                    let mut parts = Vec::new();
                    for &f in &layer.from {
                        parts.extend(get(f)?);
                    }
                    parts
                }
                Module::Detect(m) => {
                    let feats = layer.from.iter().map(|&f| get(f)).collect::<Result<Vec<_>>>()?;
                    output = Some(m.forward(&feats, (h, w), cx)?);
                    Vec::new()
                }
            };
            if let Some(t0) = t0 {
                eprintln!("layer {i:2} {:>8} {:8.3} ms", layer_name(&layer.module), t0.elapsed().as_secs_f64() * 1e3);
            }
            if self.keep[i] {
                saved[i] = Some(x.clone());
            }
        }
        match output {
            Some(o) => Ok(o),
            None => Ok(one(x)?.to_float(DType::F32)?),
        }
    }
}

impl Module {
    fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv)) {
        match self {
            Module::Conv(c) => f(c),
            Module::C2f(m) => m.visit_convs(f),
            Module::A2C2f(m) => m.visit_convs(f),
            Module::Sppf(m) => m.visit_convs(f),
            Module::Detect(m) => m.visit_convs(f),
            Module::Upsample | Module::Concat => {}
        }
    }

    fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<()> {
        match self {
            Module::Conv(c) => *c = f(c)?,
            Module::C2f(m) => m.map_convs(f)?,
            Module::A2C2f(m) => m.map_convs(f)?,
            Module::Sppf(m) => m.map_convs(f)?,
            Module::Detect(m) => m.map_convs(f)?,
            Module::Upsample | Module::Concat => {}
        }
        Ok(())
    }
}

fn layer_name(m: &Module) -> &'static str {
    match m {
        Module::Conv(_) => "Conv",
        Module::C2f(_) => "C2f/C3k2",
        Module::A2C2f(_) => "A2C2f",
        Module::Sppf(_) => "SPPF",
        Module::Upsample => "Upsample",
        Module::Concat => "Concat",
        Module::Detect(_) => "Detect",
    }
}

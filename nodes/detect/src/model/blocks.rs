//! Building blocks mirroring Ultralytics' modules (`ultralytics/nn/modules/block.py`), loaded by
//! their upstream parameter names. Every convolution is a [`Conv`]; what flows between them is
//! an [`Fmap`] (float, or u8 between int8 layers).

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::conv::{on_fused_path, with_cpu_data, Conv, ConvSpec};
use super::fmap::{u8_map, with_u8_data, Cx, Fmap};
use super::graph::Src;
use super::kernels;
use super::load::LoadCx;

/// Ultralytics `Conv`: conv + (folded BN) + SiLU, weights under `<prefix>.conv.*`.
fn conv(vb: &VarBuilder, name: &str, spec: ConvSpec, cx: &LoadCx, inputs: Vec<Src>, residual: Option<Src>) -> Result<Conv> {
    cx.conv(&vb.pp(name).pp("conv"), spec, inputs, residual)
}

fn out(c: &Conv) -> Src {
    Src::Conv(c.name().to_string())
}

/// `Bottleneck(c1, c2, shortcut, g, k=(k1, k2), e)`: cv2(cv1(x)) (+ x).
#[derive(Debug, Clone)]
pub struct Bottleneck {
    cv1: Conv,
    cv2: Conv,
    add: bool,
}

impl Bottleneck {
    #[allow(clippy::too_many_arguments)]
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, shortcut: bool, k: (usize, usize), e: f64, cx: &LoadCx, x: &Src) -> Result<Self> {
        let c_ = (c2 as f64 * e) as usize;
        let add = shortcut && c1 == c2;
        let cv1 = conv(&vb, "cv1", ConvSpec::new(c1, c_, k.0, 1), cx, vec![x.clone()], None)?;
        let cv2 = conv(&vb, "cv2", ConvSpec::new(c_, c2, k.1, 1), cx, vec![out(&cv1)], add.then(|| x.clone()))?;
        Ok(Self { cv1, cv2, add })
    }

    fn output(&self) -> Src {
        out(&self.cv2)
    }

    pub fn forward(&self, x: &Fmap, cx: Cx) -> Result<Fmap> {
        let y = self.cv1.run(std::slice::from_ref(x), None, cx)?;
        self.cv2.run(&[y], if self.add { Some(x) } else { None }, cx)
    }
}

/// `C3k(c1, c2, n, shortcut, g, e=0.5, k=3)`: cv3(cat(m(cv1(x)), cv2(x))).
#[derive(Debug, Clone)]
pub struct C3k {
    cv1: Conv,
    cv2: Conv,
    cv3: Conv,
    m: Vec<Bottleneck>,
}

impl C3k {
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, n: usize, shortcut: bool, cx: &LoadCx, x: &Src) -> Result<Self> {
        let c_ = c2 / 2;
        let cv1 = conv(&vb, "cv1", ConvSpec::new(c1, c_, 1, 1), cx, vec![x.clone()], None)?;
        let mut y = out(&cv1);
        let mut m = Vec::with_capacity(n);
        for i in 0..n {
            let b = Bottleneck::load(vb.pp("m").pp(i), c_, c_, shortcut, (3, 3), 1.0, cx, &y)?;
            y = b.output();
            m.push(b);
        }
        let cv2 = conv(&vb, "cv2", ConvSpec::new(c1, c_, 1, 1), cx, vec![x.clone()], None)?;
        let cv3 = conv(&vb, "cv3", ConvSpec::new(2 * c_, c2, 1, 1), cx, vec![y, out(&cv2)], None)?;
        Ok(Self { cv1, cv2, cv3, m })
    }

    fn output(&self) -> Src {
        out(&self.cv3)
    }

    pub fn forward(&self, x: &Fmap, cx: Cx) -> Result<Fmap> {
        let mut y = self.cv1.run(std::slice::from_ref(x), None, cx)?;
        for b in &self.m {
            y = b.forward(&y, cx)?;
        }
        let z = self.cv2.run(std::slice::from_ref(x), None, cx)?;
        self.cv3.run(&[y, z], None, cx)
    }
}

/// The inner module of a C2f-style block.
#[derive(Debug, Clone)]
enum Inner {
    Bottleneck(Bottleneck),
    C3k(C3k),
    /// A2C2f's `Sequential(ABlock, ABlock)`.
    ABlocks(Vec<ABlock>),
}

impl Inner {
    fn output(&self) -> Src {
        match self {
            Inner::Bottleneck(b) => b.output(),
            Inner::C3k(b) => b.output(),
            Inner::ABlocks(bs) => bs[bs.len() - 1].output(),
        }
    }

    fn forward(&self, x: &Fmap, cx: Cx) -> Result<Fmap> {
        match self {
            Inner::Bottleneck(b) => b.forward(x, cx),
            Inner::C3k(b) => b.forward(x, cx),
            Inner::ABlocks(bs) => {
                let mut y = x.clone();
                for b in bs {
                    y = b.forward(&y, cx)?;
                }
                Ok(y)
            }
        }
    }
}

/// `C2f(c1, c2, n, shortcut, g, e=0.5)` and `C3k2(c1, c2, n, c3k, e, g, shortcut)`:
/// y = cv1(x) split in two halves, each inner module extends y with m(y[-1]), cv2(cat(y)).
#[derive(Debug, Clone)]
pub struct C2f {
    cv1: Conv,
    cv2: Conv,
    c: usize,
    m: Vec<Inner>,
}

impl C2f {
    #[allow(clippy::too_many_arguments)]
    pub fn load_c2f(vb: VarBuilder, c1: usize, c2: usize, n: usize, shortcut: bool, cx: &LoadCx, inputs: &[Src]) -> Result<Self> {
        let c = c2 / 2;
        Self::with_inner(vb, c1, c2, c, n, cx, inputs, |vb, i, y| {
            Ok(Inner::Bottleneck(Bottleneck::load(vb.pp("m").pp(i), c, c, shortcut, (3, 3), 1.0, cx, y)?))
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub fn load_c3k2(vb: VarBuilder, c1: usize, c2: usize, n: usize, c3k: bool, e: f64, cx: &LoadCx, inputs: &[Src]) -> Result<Self> {
        let c = (c2 as f64 * e) as usize;
        Self::with_inner(vb, c1, c2, c, n, cx, inputs, |vb, i, y| {
            let vb = vb.pp("m").pp(i);
            Ok(if c3k {
                Inner::C3k(C3k::load(vb, c, c, 2, true, cx, y)?)
            } else {
                Inner::Bottleneck(Bottleneck::load(vb, c, c, true, (3, 3), 0.5, cx, y)?)
            })
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn with_inner(
        vb: VarBuilder,
        c1: usize,
        c2: usize,
        c: usize,
        n: usize,
        cx: &LoadCx,
        inputs: &[Src],
        inner: impl Fn(&VarBuilder, usize, &Src) -> Result<Inner>,
    ) -> Result<Self> {
        let cv1 = conv(&vb, "cv1", ConvSpec::new(c1, 2 * c, 1, 1), cx, inputs.to_vec(), None)?;
        // Both halves of cv1's output are parts of cv2's input.
        let mut ys = vec![out(&cv1), out(&cv1)];
        let mut m = Vec::with_capacity(n);
        for i in 0..n {
            let b = inner(&vb, i, &ys[ys.len() - 1])?;
            ys.push(b.output());
            m.push(b);
        }
        let cv2 = conv(&vb, "cv2", ConvSpec::new((2 + n) * c, c2, 1, 1), cx, ys, None)?;
        Ok(Self { cv1, cv2, c, m })
    }

    pub(super) fn output(&self) -> Src {
        out(&self.cv2)
    }

    /// The block on the channel concatenation of `parts` (a model-level Concat, never built).
    pub fn forward(&self, parts: &[Fmap], cx: Cx) -> Result<Fmap> {
        let y = self.cv1.run(parts, None, cx)?;
        let mut ys = vec![y.narrow_channels(0, self.c)?, y.narrow_channels(self.c, self.c)?];
        for m in &self.m {
            let next = m.forward(&ys[ys.len() - 1], cx)?;
            ys.push(next);
        }
        self.cv2.run(&ys, None, cx)
    }
}

/// `SPPF(c1, c2, k=5)`: three chained stride-1 max pools, concatenated.
#[derive(Debug, Clone)]
pub struct Sppf {
    cv1: Conv,
    cv2: Conv,
    k: usize,
}

impl Sppf {
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, k: usize, cx: &LoadCx, inputs: &[Src]) -> Result<Self> {
        let c_ = c1 / 2;
        let cv1 = conv(&vb, "cv1", ConvSpec::new(c1, c_, 1, 1), cx, inputs.to_vec(), None)?;
        // A max-pool keeps the quantization of its input: all four parts are cv1's.
        let cv2 = conv(&vb, "cv2", ConvSpec::new(4 * c_, c2, 1, 1), cx, vec![out(&cv1); 4], None)?;
        Ok(Self { cv1, cv2, k })
    }

    pub(super) fn output(&self) -> Src {
        out(&self.cv2)
    }

    fn pool(&self, x: &Fmap) -> Result<Fmap> {
        let (_, c, h, w) = x.dims4()?;
        match x {
            Fmap::U8(t, qp) => {
                let t = t.contiguous()?;
                let out = with_u8_data(&t, |d| -> Result<Vec<u8>> {
                    let mut out = vec![0u8; d.len()];
                    perch_int8::maxpool_same(d, c, h, w, self.k, &mut out)?;
                    Ok(out)
                })??;
                u8_map(out, c, h, w, *qp)
            }
            Fmap::Float(x) if on_fused_path(x) => {
                let x = x.contiguous()?;
                let out = with_cpu_data(&x, |d| kernels::maxpool_same(d, c, h, w, self.k))?;
                Ok(Fmap::Float(Tensor::from_vec(out, (1, c, h, w), &Device::Cpu)?))
            }
            Fmap::Float(x) => {
                let p = self.k / 2;
                let xp = x.pad_with_same(2, p, p)?.pad_with_same(3, p, p)?;
                Ok(Fmap::Float(xp.max_pool2d_with_stride(self.k, 1)?))
            }
        }
    }

    pub fn forward(&self, parts: &[Fmap], cx: Cx) -> Result<Fmap> {
        let y0 = self.cv1.run(parts, None, cx)?;
        let y1 = self.pool(&y0)?;
        let y2 = self.pool(&y1)?;
        let y3 = self.pool(&y2)?;
        self.cv2.run(&[y0, y1, y2, y3], None, cx)
    }
}

/// YOLOv12 `AAttn(dim, num_heads, area)`: multi-head self-attention inside `area` horizontal
/// bands of the feature map, plus a 7x7 depthwise positional term on v. The attention itself
/// (q^T k, softmax, v S^T) runs in float whatever the convs around it run.
#[derive(Debug, Clone)]
pub struct AAttn {
    qkv: Conv,
    proj: Conv,
    pe: Conv,
    dim: usize,
    heads: usize,
    area: usize,
}

impl AAttn {
    pub fn load(vb: VarBuilder, dim: usize, heads: usize, area: usize, cx: &LoadCx, x: &Src) -> Result<Self> {
        let qkv = conv(&vb, "qkv", ConvSpec::new(dim, 3 * dim, 1, 1).no_act(), cx, vec![x.clone()], None)?;
        let attn = qkv.name().trim_end_matches(".qkv").to_string();
        let (o, v) = (Src::Op(format!("{attn}.o")), Src::Op(format!("{attn}.v")));
        let pe = conv(&vb, "pe", ConvSpec::new(dim, dim, 7, 1).groups(dim).no_act(), cx, vec![v], Some(o))?;
        let proj = conv(&vb, "proj", ConvSpec::new(dim, dim, 1, 1).no_act(), cx, vec![out(&pe)], Some(x.clone()))?;
        Ok(Self { qkv, proj, pe, dim, heads, area })
    }

    fn output(&self) -> Src {
        out(&self.proj)
    }

    /// Returns `x + attn(x)` (the ABlock residual is fused into the projection).
    pub fn forward_residual(&self, x: &Fmap, cx: Cx) -> Result<Fmap> {
        let (_, c, h, w) = x.dims4()?;
        let n = h * w;
        let area = if self.area > 1 { self.area } else { 1 };
        if n % area != 0 {
            bail!("area attention: {h}x{w} = {n} positions do not split into {area} areas (use an input size that is a multiple of 32)");
        }
        let qkv = match self.qkv.run(std::slice::from_ref(x), None, cx)? {
            Fmap::Float(t) => t,
            q @ Fmap::U8(..) => q.to_float(DType::F32)?,
        };
        let (o, v) = if on_fused_path(&qkv) {
            let qkv = qkv.contiguous()?;
            let (o, v) = with_cpu_data(&qkv, |d| kernels::area_attention(d, c, n, self.heads, area))?;
            (Tensor::from_vec(o, (1, c, h, w), &Device::Cpu)?, Tensor::from_vec(v, (1, c, h, w), &Device::Cpu)?)
        } else {
            self.attention_tensor_ops(&qkv, h, w, area)?
        };
        let y = self.pe.run(&[Fmap::Float(v)], Some(&Fmap::Float(o)), cx)?;
        self.proj.run(&[y], Some(x), cx)
    }

    /// The same computation as Candle tensor ops (any device).
    fn attention_tensor_ops(&self, qkv: &Tensor, h: usize, w: usize, area: usize) -> Result<(Tensor, Tensor)> {
        let (c, n, heads) = (self.dim, h * w, self.heads);
        let d = c / heads;
        let na = n / area;
        // [3C, N] -> tokens [N, 3C] -> [area, Na, heads, 3d]
        let t = qkv.reshape((3 * c, n))?.t()?.contiguous()?.reshape((area, na, heads, 3 * d))?;
        let q = t.narrow(3, 0, d)?.permute((0, 2, 1, 3))?.contiguous()?; // [a, h, Na, d]
        let k = t.narrow(3, d, d)?.permute((0, 2, 3, 1))?.contiguous()?; // [a, h, d, Na]
        let v_tok = t.narrow(3, 2 * d, d)?; // [a, Na, h, d]
        let v = v_tok.permute((0, 2, 3, 1))?.contiguous()?; // [a, h, d, Na]
        let attn = (q.matmul(&k)? * (d as f64).powf(-0.5))?;
        // Softmax over up to 1600 tokens in f32: f16 sums lose the small weights.
        let attn = candle_nn::ops::softmax_last_dim(&attn.to_dtype(DType::F32)?)?.to_dtype(v.dtype())?;
        let o = v.matmul(&attn.t()?.contiguous()?)?; // [a, h, d, Na]
        let to_map = |t: Tensor| -> Result<Tensor> {
            // [a, Na, h, d] -> [N, C] -> [1, C, H, W]
            Ok(t.reshape((n, c))?.t()?.contiguous()?.reshape((1, c, h, w))?)
        };
        let o = to_map(o.permute((0, 3, 1, 2))?.contiguous()?)?;
        let v = to_map(v_tok.contiguous()?)?;
        Ok((o, v))
    }
}

/// YOLOv12 `ABlock(dim, num_heads, mlp_ratio, area)`: x + attn(x), then x + mlp(x).
#[derive(Debug, Clone)]
pub struct ABlock {
    attn: AAttn,
    mlp0: Conv,
    mlp1: Conv,
}

impl ABlock {
    #[allow(clippy::too_many_arguments)]
    pub fn load(vb: VarBuilder, dim: usize, heads: usize, mlp_ratio: f64, area: usize, cx: &LoadCx, x: &Src) -> Result<Self> {
        let hidden = (dim as f64 * mlp_ratio) as usize;
        let attn = AAttn::load(vb.pp("attn"), dim, heads, area, cx, x)?;
        let a = attn.output();
        let mlp0 = conv(&vb.pp("mlp"), "0", ConvSpec::new(dim, hidden, 1, 1), cx, vec![a.clone()], None)?;
        let mlp1 = conv(&vb.pp("mlp"), "1", ConvSpec::new(hidden, dim, 1, 1).no_act(), cx, vec![out(&mlp0)], Some(a))?;
        Ok(Self { attn, mlp0, mlp1 })
    }

    fn output(&self) -> Src {
        out(&self.mlp1)
    }

    pub fn forward(&self, x: &Fmap, cx: Cx) -> Result<Fmap> {
        let x = self.attn.forward_residual(x, cx)?;
        let y = self.mlp0.run(std::slice::from_ref(&x), None, cx)?;
        self.mlp1.run(&[y], Some(&x), cx)
    }
}

/// YOLOv12 `A2C2f(c1, c2, n, a2, area, residual=False, mlp_ratio=2.0, e=0.5)`:
/// y = [cv1(x)], each inner module extends y with m(y[-1]), cv2(cat(y)). Inner modules are two
/// ABlocks when `a2`, else a C3k.
#[derive(Debug, Clone)]
pub struct A2C2f {
    cv1: Conv,
    cv2: Conv,
    m: Vec<Inner>,
}

impl A2C2f {
    #[allow(clippy::too_many_arguments)]
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, n: usize, a2: bool, area: usize, cx: &LoadCx, inputs: &[Src]) -> Result<Self> {
        let c_ = c2 / 2;
        if a2 && c_ % 32 != 0 {
            bail!("A2C2f {}: hidden width {c_} is not a multiple of 32", vb.prefix());
        }
        let cv1 = conv(&vb, "cv1", ConvSpec::new(c1, c_, 1, 1), cx, inputs.to_vec(), None)?;
        let mut ys = vec![out(&cv1)];
        let mut m = Vec::with_capacity(n);
        for i in 0..n {
            let vb = vb.pp("m").pp(i);
            let y = ys[ys.len() - 1].clone();
            let inner = if a2 {
                let mut blocks: Vec<ABlock> = Vec::with_capacity(2);
                for j in 0..2 {
                    let x = blocks.last().map_or_else(|| y.clone(), |b| b.output());
                    blocks.push(ABlock::load(vb.pp(j), c_, c_ / 32, 2.0, area, cx, &x)?);
                }
                Inner::ABlocks(blocks)
            } else {
                Inner::C3k(C3k::load(vb, c_, c_, 2, true, cx, &y)?)
            };
            ys.push(inner.output());
            m.push(inner);
        }
        let cv2 = conv(&vb, "cv2", ConvSpec::new((1 + n) * c_, c2, 1, 1), cx, ys, None)?;
        Ok(Self { cv1, cv2, m })
    }

    pub(super) fn output(&self) -> Src {
        out(&self.cv2)
    }

    /// The block on the channel concatenation of `parts` (a model-level Concat, never built).
    pub fn forward(&self, parts: &[Fmap], cx: Cx) -> Result<Fmap> {
        let mut ys = vec![self.cv1.run(parts, None, cx)?];
        for m in &self.m {
            let next = m.forward(&ys[ys.len() - 1], cx)?;
            ys.push(next);
        }
        self.cv2.run(&ys, None, cx)
    }
}

/// Visits and replaces the convs of a block in load order (quantization swaps them).
pub(super) trait Convs {
    fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv));
    fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<()>;
}

macro_rules! convs_impl {
    // A block of convs only, in forward order.
    ($t:ty, [$($conv:ident),*]) => {
        impl Convs for $t {
            fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv)) {
                $(f(&self.$conv);)*
            }
            fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<()> {
                $(self.$conv = f(&self.$conv)?;)*
                Ok(())
            }
        }
    };
    ($t:ty, [$($before:ident),*], $inner:ident, [$($after:ident),*]) => {
        impl Convs for $t {
            fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv)) {
                $(f(&self.$before);)*
                for m in &self.$inner {
                    m.visit_convs(f);
                }
                $(f(&self.$after);)*
            }
            fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<()> {
                $(self.$before = f(&self.$before)?;)*
                for m in &mut self.$inner {
                    m.map_convs(f)?;
                }
                $(self.$after = f(&self.$after)?;)*
                Ok(())
            }
        }
    };
}

convs_impl!(Bottleneck, [cv1, cv2]);

convs_impl!(AAttn, [qkv, pe, proj]);

impl Convs for ABlock {
    fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv)) {
        self.attn.visit_convs(f);
        f(&self.mlp0);
        f(&self.mlp1);
    }
    fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<()> {
        self.attn.map_convs(f)?;
        self.mlp0 = f(&self.mlp0)?;
        self.mlp1 = f(&self.mlp1)?;
        Ok(())
    }
}

impl Convs for Inner {
    fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv)) {
        match self {
            Inner::Bottleneck(b) => b.visit_convs(f),
            Inner::C3k(b) => b.visit_convs(f),
            Inner::ABlocks(bs) => bs.iter().for_each(|b| b.visit_convs(f)),
        }
    }
    fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> Result<Conv>) -> Result<()> {
        match self {
            Inner::Bottleneck(b) => b.map_convs(f),
            Inner::C3k(b) => b.map_convs(f),
            Inner::ABlocks(bs) => bs.iter_mut().try_for_each(|b| b.map_convs(f)),
        }
    }
}

convs_impl!(C3k, [cv1], m, [cv2, cv3]);
convs_impl!(C2f, [cv1], m, [cv2]);
convs_impl!(A2C2f, [cv1], m, [cv2]);

convs_impl!(Sppf, [cv1, cv2]);

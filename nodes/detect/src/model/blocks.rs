//! Building blocks mirroring Ultralytics' modules (`ultralytics/nn/modules/block.py`), loaded by
//! their upstream parameter names. Every convolution is a [`Conv`].

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::conv::{on_fused_path, with_cpu_data, Conv, ConvKernel, ConvSpec};
use super::kernels;

/// Ultralytics `Conv`: conv + (folded BN) + SiLU, weights under `<prefix>.conv.*`.
fn conv(vb: &VarBuilder, name: &str, spec: ConvSpec, kernel: ConvKernel) -> Result<Conv> {
    Conv::load(vb.pp(name).pp("conv"), spec, kernel)
}

/// `Bottleneck(c1, c2, shortcut, g, k=(k1, k2), e)`: cv2(cv1(x)) (+ x).
#[derive(Debug, Clone)]
pub struct Bottleneck {
    cv1: Conv,
    cv2: Conv,
    add: bool,
}

impl Bottleneck {
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, shortcut: bool, k: (usize, usize), e: f64, kern: ConvKernel) -> Result<Self> {
        let c_ = (c2 as f64 * e) as usize;
        Ok(Self {
            cv1: conv(&vb, "cv1", ConvSpec::new(c1, c_, k.0, 1), kern)?,
            cv2: conv(&vb, "cv2", ConvSpec::new(c_, c2, k.1, 1), kern)?,
            add: shortcut && c1 == c2,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.cv1.forward(x)?;
        self.cv2.forward_add(&y, if self.add { Some(x) } else { None })
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
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, n: usize, shortcut: bool, kern: ConvKernel) -> Result<Self> {
        let c_ = c2 / 2;
        let m = (0..n)
            .map(|i| Bottleneck::load(vb.pp("m").pp(i), c_, c_, shortcut, (3, 3), 1.0, kern))
            .collect::<Result<_>>()?;
        Ok(Self {
            cv1: conv(&vb, "cv1", ConvSpec::new(c1, c_, 1, 1), kern)?,
            cv2: conv(&vb, "cv2", ConvSpec::new(c1, c_, 1, 1), kern)?,
            cv3: conv(&vb, "cv3", ConvSpec::new(2 * c_, c2, 1, 1), kern)?,
            m,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = self.cv1.forward(x)?;
        for b in &self.m {
            y = b.forward(&y)?;
        }
        let z = self.cv2.forward(x)?;
        self.cv3.forward_cat(&[y, z])
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
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Inner::Bottleneck(b) => b.forward(x),
            Inner::C3k(b) => b.forward(x),
            Inner::ABlocks(bs) => {
                let mut y = x.clone();
                for b in bs {
                    y = b.forward(&y)?;
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
    pub fn load_c2f(vb: VarBuilder, c1: usize, c2: usize, n: usize, shortcut: bool, kern: ConvKernel) -> Result<Self> {
        let c = c2 / 2;
        let m = (0..n)
            .map(|i| Ok(Inner::Bottleneck(Bottleneck::load(vb.pp("m").pp(i), c, c, shortcut, (3, 3), 1.0, kern)?)))
            .collect::<Result<_>>()?;
        Self::with_inner(vb, c1, c2, c, n, m, kern)
    }

    pub fn load_c3k2(vb: VarBuilder, c1: usize, c2: usize, n: usize, c3k: bool, e: f64, kern: ConvKernel) -> Result<Self> {
        let c = (c2 as f64 * e) as usize;
        let m = (0..n)
            .map(|i| {
                let vb = vb.pp("m").pp(i);
                Ok(if c3k {
                    Inner::C3k(C3k::load(vb, c, c, 2, true, kern)?)
                } else {
                    Inner::Bottleneck(Bottleneck::load(vb, c, c, true, (3, 3), 0.5, kern)?)
                })
            })
            .collect::<Result<_>>()?;
        Self::with_inner(vb, c1, c2, c, n, m, kern)
    }

    fn with_inner(vb: VarBuilder, c1: usize, c2: usize, c: usize, n: usize, m: Vec<Inner>, kern: ConvKernel) -> Result<Self> {
        Ok(Self {
            cv1: conv(&vb, "cv1", ConvSpec::new(c1, 2 * c, 1, 1), kern)?,
            cv2: conv(&vb, "cv2", ConvSpec::new((2 + n) * c, c2, 1, 1), kern)?,
            c,
            m,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_cat(std::slice::from_ref(x))
    }

    /// The block on the channel concatenation of `parts` (a model-level Concat, never built).
    pub fn forward_cat(&self, parts: &[Tensor]) -> Result<Tensor> {
        let y = self.cv1.forward_cat(parts)?;
        let mut ys = vec![y.narrow(1, 0, self.c)?, y.narrow(1, self.c, self.c)?];
        for m in &self.m {
            let next = m.forward(&ys[ys.len() - 1])?;
            ys.push(next);
        }
        self.cv2.forward_cat(&ys)
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
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, k: usize, kern: ConvKernel) -> Result<Self> {
        let c_ = c1 / 2;
        Ok(Self {
            cv1: conv(&vb, "cv1", ConvSpec::new(c1, c_, 1, 1), kern)?,
            cv2: conv(&vb, "cv2", ConvSpec::new(4 * c_, c2, 1, 1), kern)?,
            k,
        })
    }

    fn pool(&self, x: &Tensor) -> Result<Tensor> {
        if on_fused_path(x) {
            let (_, c, h, w) = x.dims4()?;
            let x = x.contiguous()?;
            let out = with_cpu_data(&x, |d| kernels::maxpool_same(d, c, h, w, self.k))?;
            Ok(Tensor::from_vec(out, (1, c, h, w), &Device::Cpu)?)
        } else {
            let p = self.k / 2;
            let xp = x.pad_with_same(2, p, p)?.pad_with_same(3, p, p)?;
            Ok(xp.max_pool2d_with_stride(self.k, 1)?)
        }
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y0 = self.cv1.forward(x)?;
        let y1 = self.pool(&y0)?;
        let y2 = self.pool(&y1)?;
        let y3 = self.pool(&y2)?;
        self.cv2.forward_cat(&[y0, y1, y2, y3])
    }
}

/// YOLOv12 `AAttn(dim, num_heads, area)`: multi-head self-attention inside `area` horizontal
/// bands of the feature map, plus a 7x7 depthwise positional term on v.
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
    pub fn load(vb: VarBuilder, dim: usize, heads: usize, area: usize, kern: ConvKernel) -> Result<Self> {
        Ok(Self {
            qkv: conv(&vb, "qkv", ConvSpec::new(dim, 3 * dim, 1, 1).no_act(), kern)?,
            proj: conv(&vb, "proj", ConvSpec::new(dim, dim, 1, 1).no_act(), kern)?,
            pe: conv(&vb, "pe", ConvSpec::new(dim, dim, 7, 1).groups(dim).no_act(), kern)?,
            dim,
            heads,
            area,
        })
    }

    /// Returns `x + attn(x)` (the ABlock residual is fused into the projection).
    pub fn forward_residual(&self, x: &Tensor) -> Result<Tensor> {
        let (_, c, h, w) = x.dims4()?;
        let n = h * w;
        let area = if self.area > 1 { self.area } else { 1 };
        if n % area != 0 {
            bail!("area attention: {h}x{w} = {n} positions do not split into {area} areas (use an input size that is a multiple of 32)");
        }
        let qkv = self.qkv.forward(x)?;
        let (o, v) = if on_fused_path(&qkv) {
            let qkv = qkv.contiguous()?;
            let (o, v) = with_cpu_data(&qkv, |d| kernels::area_attention(d, c, n, self.heads, area))?;
            (Tensor::from_vec(o, (1, c, h, w), &Device::Cpu)?, Tensor::from_vec(v, (1, c, h, w), &Device::Cpu)?)
        } else {
            self.attention_tensor_ops(&qkv, h, w, area)?
        };
        let y = self.pe.forward_add(&v, Some(&o))?;
        self.proj.forward_add(&y, Some(x))
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
    pub fn load(vb: VarBuilder, dim: usize, heads: usize, mlp_ratio: f64, area: usize, kern: ConvKernel) -> Result<Self> {
        let hidden = (dim as f64 * mlp_ratio) as usize;
        Ok(Self {
            attn: AAttn::load(vb.pp("attn"), dim, heads, area, kern)?,
            mlp0: conv(&vb.pp("mlp"), "0", ConvSpec::new(dim, hidden, 1, 1), kern)?,
            mlp1: conv(&vb.pp("mlp"), "1", ConvSpec::new(hidden, dim, 1, 1).no_act(), kern)?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.attn.forward_residual(x)?;
        let y = self.mlp0.forward(&x)?;
        self.mlp1.forward_add(&y, Some(&x))
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
    pub fn load(vb: VarBuilder, c1: usize, c2: usize, n: usize, a2: bool, area: usize, kern: ConvKernel) -> Result<Self> {
        let c_ = c2 / 2;
        if a2 && c_ % 32 != 0 {
            bail!("A2C2f {}: hidden width {c_} is not a multiple of 32", vb.prefix());
        }
        let m = (0..n)
            .map(|i| {
                let vb = vb.pp("m").pp(i);
                Ok(if a2 {
                    Inner::ABlocks(
                        (0..2).map(|j| ABlock::load(vb.pp(j), c_, c_ / 32, 2.0, area, kern)).collect::<Result<_>>()?,
                    )
                } else {
                    Inner::C3k(C3k::load(vb, c_, c_, 2, true, kern)?)
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            cv1: conv(&vb, "cv1", ConvSpec::new(c1, c_, 1, 1), kern)?,
            cv2: conv(&vb, "cv2", ConvSpec::new((1 + n) * c_, c2, 1, 1), kern)?,
            m,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_cat(std::slice::from_ref(x))
    }

    /// The block on the channel concatenation of `parts` (a model-level Concat, never built).
    pub fn forward_cat(&self, parts: &[Tensor]) -> Result<Tensor> {
        let mut ys = vec![self.cv1.forward_cat(parts)?];
        for m in &self.m {
            let next = m.forward(&ys[ys.len() - 1])?;
            ys.push(next);
        }
        self.cv2.forward_cat(&ys)
    }
}

/// nn.Upsample(scale_factor=2, mode="nearest").
pub fn upsample2(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    Ok(x.upsample_nearest2d(2 * h, 2 * w)?)
}

//! Ultralytics `Detect` head (anchor-free, DFL box regression with reg_max 16), producing the raw
//! output exactly as the ONNX export does: [1, 4 + nc, N] with cx, cy, w, h in input pixels, then
//! sigmoid class scores; anchors ordered P3, P4, P5, row-major within each level.

use anyhow::{bail, Result};
use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::conv::{Conv, ConvSpec};
use super::fmap::{Cx, Fmap};
use super::graph::Src;
use super::load::LoadCx;
use super::kernels::{dfl_expectation, sigmoid_into};

pub const REG_MAX: usize = 16;

/// The head's classification branch style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClsBranch {
    /// YOLOv8: Conv3x3, Conv3x3, Conv2d 1x1.
    Legacy,
    /// YOLO11 / YOLOv12: (DWConv3x3, Conv1x1), (DWConv3x3, Conv1x1), Conv2d 1x1.
    Depthwise,
}

#[derive(Debug, Clone)]
pub struct Detect {
    /// Per level: box branch (3 convs) and class branch (3 or 5 convs).
    box_branch: Vec<Vec<Conv>>,
    cls_branch: Vec<Vec<Conv>>,
    nc: usize,
}

impl Detect {
    /// `feats`: per level, the tensors (parts) the level's feature map is made of.
    pub fn load(vb: VarBuilder, nc: usize, ch: &[usize], style: ClsBranch, cx: &LoadCx, feats: &[Vec<Src>]) -> Result<Self> {
        let c2 = 16.max(ch[0] / 4).max(REG_MAX * 4);
        let c3 = ch[0].max(nc.min(100));
        let mut box_branch = Vec::new();
        let mut cls_branch = Vec::new();
        // A chain of convs, each reading the previous one's output.
        let chain = |specs: Vec<(VarBuilder, ConvSpec)>, input: &[Src]| -> Result<Vec<Conv>> {
            let mut convs: Vec<Conv> = Vec::with_capacity(specs.len());
            for (vb, spec) in specs {
                let inputs = match convs.last() {
                    Some(c) => vec![Src::Conv(c.name().to_string())],
                    None => input.to_vec(),
                };
                convs.push(cx.conv(&vb, spec, inputs, None)?);
            }
            Ok(convs)
        };
        for (i, (&x, feat)) in ch.iter().zip(feats).enumerate() {
            let b = vb.pp("cv2").pp(i);
            box_branch.push(chain(
                vec![
                    (b.pp(0).pp("conv"), ConvSpec::new(x, c2, 3, 1)),
                    (b.pp(1).pp("conv"), ConvSpec::new(c2, c2, 3, 1)),
                    (b.pp(2), ConvSpec::new(c2, 4 * REG_MAX, 1, 1).no_act()),
                ],
                feat,
            )?);
            let c = vb.pp("cv3").pp(i);
            cls_branch.push(chain(
                match style {
                    ClsBranch::Legacy => vec![
                        (c.pp(0).pp("conv"), ConvSpec::new(x, c3, 3, 1)),
                        (c.pp(1).pp("conv"), ConvSpec::new(c3, c3, 3, 1)),
                        (c.pp(2), ConvSpec::new(c3, nc, 1, 1).no_act()),
                    ],
                    ClsBranch::Depthwise => vec![
                        (c.pp(0).pp(0).pp("conv"), ConvSpec::new(x, x, 3, 1).groups(x)),
                        (c.pp(0).pp(1).pp("conv"), ConvSpec::new(x, c3, 1, 1)),
                        (c.pp(1).pp(0).pp("conv"), ConvSpec::new(c3, c3, 3, 1).groups(c3)),
                        (c.pp(1).pp(1).pp("conv"), ConvSpec::new(c3, c3, 1, 1)),
                        (c.pp(2), ConvSpec::new(c3, nc, 1, 1).no_act()),
                    ],
                },
                feat,
            )?);
        }
        Ok(Self { box_branch, cls_branch, nc })
    }

    /// `feats`: the P3/P4/P5 maps (each the parts of a concatenation, usually one);
    /// `input_hw`: the network input size (to derive strides).
    pub fn forward(&self, feats: &[Vec<Fmap>], input_hw: (usize, usize), cx: Cx) -> Result<Tensor> {
        if feats.len() != self.box_branch.len() {
            bail!("detect head expects {} feature maps, got {}", self.box_branch.len(), feats.len());
        }
        let nc = self.nc;
        let mut levels = Vec::with_capacity(feats.len());
        let mut total = 0;
        // The six branch chains (box and class, three levels) are independent. On the CPU they run
        // as parallel tasks: the P4/P5 maps are too small to split one conv over both cores well.
        // The branches end in float (the last convs feed the DFL decode and the sigmoid).
        let chain = |convs: &[Conv], f: &[Fmap]| -> Result<Vec<f32>> {
            let mut x = convs[0].run(f, None, cx)?;
            for c in &convs[1..] {
                x = c.run(std::slice::from_ref(&x), None, cx)?;
            }
            Ok(x.to_float(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
        };
        let level = |i: usize| -> Result<(Vec<f32>, Vec<f32>)> {
            let f = &feats[i];
            if on_cpu(f) {
                let (b, s) = rayon::join(|| chain(&self.box_branch[i], f), || chain(&self.cls_branch[i], f));
                Ok((b?, s?))
            } else {
                Ok((chain(&self.box_branch[i], f)?, chain(&self.cls_branch[i], f)?))
            }
        };
        let outs: Vec<Result<(Vec<f32>, Vec<f32>)>> = if feats.iter().all(|f| on_cpu(f)) {
            (0..feats.len()).into_par_iter().map(level).collect()
        } else {
            (0..feats.len()).map(level).collect()
        };
        for (f, o) in feats.iter().zip(outs) {
            let (_, _, h, w) = f[0].dims4()?;
            let (b, s) = o?;
            let stride = input_hw.0 as f32 / h as f32;
            total += h * w;
            levels.push((h, w, stride, b, s));
        }
        let mut out = vec![0f32; (4 + nc) * total];
        let mut base = 0;
        for (h, w, stride, b, s) in &levels {
            let hw = h * w;
            let mut dist = vec![0f32; 4 * hw];
            for (side, d) in dist.chunks_exact_mut(hw).enumerate() {
                dfl_expectation(&b[side * REG_MAX * hw..(side + 1) * REG_MAX * hw], hw, d);
            }
            for y in 0..*h {
                for x in 0..*w {
                    let p = y * w + x;
                    let (ax, ay) = (x as f32 + 0.5, y as f32 + 0.5);
                    let (x1, y1) = (ax - dist[p], ay - dist[hw + p]);
                    let (x2, y2) = (ax + dist[2 * hw + p], ay + dist[3 * hw + p]);
                    let a = base + p;
                    out[a] = (x1 + x2) / 2.0 * stride;
                    out[total + a] = (y1 + y2) / 2.0 * stride;
                    out[2 * total + a] = (x2 - x1) * stride;
                    out[3 * total + a] = (y2 - y1) * stride;
                }
            }
            for c in 0..nc {
                let dst = &mut out[(4 + c) * total + base..(4 + c) * total + base + hw];
                sigmoid_into(&s[c * hw..(c + 1) * hw], dst);
            }
            base += hw;
        }
        Ok(Tensor::from_vec(out, (1, 4 + nc, total), feats[0][0].tensor().device())?)
    }
}

fn on_cpu(parts: &[Fmap]) -> bool {
    parts.iter().all(|p| p.tensor().device().is_cpu())
}

impl super::blocks::Convs for Detect {
    fn visit_convs<'a>(&'a self, f: &mut dyn FnMut(&'a Conv)) {
        for (b, c) in self.box_branch.iter().zip(&self.cls_branch) {
            b.iter().chain(c).for_each(&mut *f);
        }
    }
    fn map_convs(&mut self, f: &mut dyn FnMut(&Conv) -> anyhow::Result<Conv>) -> anyhow::Result<()> {
        for (b, c) in self.box_branch.iter_mut().zip(&mut self.cls_branch) {
            for conv in b.iter_mut().chain(c.iter_mut()) {
                *conv = f(conv)?;
            }
        }
        Ok(())
    }
}

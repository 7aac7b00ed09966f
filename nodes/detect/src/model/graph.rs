//! The dataflow between the model's convolutions, recorded while it loads: for every conv, the
//! tensors its input is made of (the parts of a concatenation, read together) and its residual.
//! Quantization uses it to give the tensors one conv reads together a single scale, and each
//! producer the scale its consumers read.

use std::cell::RefCell;

use serde::Serialize;

/// A tensor between layers, named by what produced it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Src {
    /// The network input (pixels / 255).
    Input,
    /// The output of the conv of this name, also as seen through ops that keep its values and
    /// quantization: a channel split, a stride-1 max-pool (SPPF), a nearest 2x upsample.
    Conv(String),
    /// The output of a float-only op: area attention's `<attn>.o` and `<attn>.v`.
    Op(String),
}

/// One convolution of the model.
#[derive(Debug, Clone, Serialize)]
pub struct ConvNode {
    /// The Ultralytics module name (`model.2.cv1`, `model.21.cv2.0.2`); its tensors are under
    /// `prefix` (`model.2.cv1.conv.weight` for a `Conv` module, `model.21.cv2.0.2.weight` for a bare
    /// `nn.Conv2d`).
    pub name: String,
    pub prefix: String,
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    pub silu: bool,
    /// The parts of the input concatenation, in channel order (one for a plain conv).
    pub inputs: Vec<Src>,
    pub residual: Option<Src>,
}

impl ConvNode {
    /// Multiply-accumulates per output pixel.
    pub fn macs_per_pixel(&self) -> usize {
        self.c_out * (self.c_in / self.groups) * self.k * self.k
    }

    /// "3x3 s2 16->32", "dw 7x7 64", "1x1 128->64 +res".
    pub fn describe(&self) -> String {
        let kind = if self.groups > 1 {
            format!("dw {}x{} {}", self.k, self.k, self.c_out)
        } else {
            format!("{}x{} {}->{}", self.k, self.k, self.c_in, self.c_out)
        };
        let s = if self.stride > 1 { format!(" s{}", self.stride) } else { String::new() };
        let parts = if self.inputs.len() > 1 { format!(" cat{}", self.inputs.len()) } else { String::new() };
        let res = if self.residual.is_some() { " +res" } else { "" };
        format!("{kind}{s}{parts}{res}")
    }
}

/// Collects [`ConvNode`]s in load order (= forward order within a block).
#[derive(Debug, Default)]
pub struct GraphBuilder {
    nodes: RefCell<Vec<ConvNode>>,
}

impl GraphBuilder {
    pub fn push(&self, node: ConvNode) {
        self.nodes.borrow_mut().push(node);
    }

    pub fn finish(self) -> Vec<ConvNode> {
        self.nodes.into_inner()
    }
}

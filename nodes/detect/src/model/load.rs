//! What loading a model carries down to every conv: the float kernel to use, the quantized
//! tensors of an int8 model file, and the dataflow graph being recorded.

use anyhow::Result;
use candle_nn::VarBuilder;
use safetensors::SafeTensors;

use super::conv::{module_name, Conv, ConvKernel, ConvSpec};
use super::graph::{ConvNode, GraphBuilder, Src};
use super::kernels::Act;
use crate::quant::format;

pub struct LoadCx<'a> {
    /// The kernel of float convs.
    pub kernel: ConvKernel,
    /// An int8 model file: convs whose weight is stored as I8 load from here.
    pub quantized: Option<&'a SafeTensors<'a>>,
    pub graph: GraphBuilder,
}

impl<'a> LoadCx<'a> {
    pub fn new(kernel: ConvKernel, quantized: Option<&'a SafeTensors<'a>>) -> Self {
        Self { kernel, quantized, graph: GraphBuilder::default() }
    }

    /// Loads the conv whose tensors are under `vb` (float or int8, as the file stores it) and
    /// records that it reads the concatenation of `inputs` (+ `residual`).
    pub fn conv(&self, vb: &VarBuilder, spec: ConvSpec, inputs: Vec<Src>, residual: Option<Src>) -> Result<Conv> {
        let prefix = vb.prefix();
        let conv = match self.quantized {
            Some(st) if format::is_int8_conv(st, &prefix) => Conv::load_int8(st, &prefix, spec)?,
            _ => Conv::load(vb.clone(), spec, self.kernel)?,
        };
        self.graph.push(ConvNode {
            name: module_name(&prefix).to_string(),
            prefix,
            c_in: spec.c_in,
            c_out: spec.c_out,
            k: spec.k,
            stride: spec.stride,
            groups: spec.groups,
            silu: spec.act == Act::Silu,
            inputs,
            residual,
        });
        Ok(conv)
    }
}

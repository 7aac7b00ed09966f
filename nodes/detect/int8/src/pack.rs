//! Weights packed once at load: validated, reordered into the micro-kernels' panel layout, with
//! the zero-point compensation and the per-channel scales folded.

use std::sync::OnceLock;

use crate::epilogue::Chan;
use crate::{ConvShape, Error, QParams};

/// Output channels per weight block of the dense micro-kernels.
pub(crate) const MR: usize = 4;
/// Reduction values per group: every dense kernel consumes k in groups of 4 (a 32-bit lane of
/// `vpdpbusd`/`sdot`, two `vpmaddwd` pairs, one `smull` half).
pub(crate) const KG: usize = 4;

/// What the kernel's raw i32 sum runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawSum {
    /// sum x * w with x the u8 activations (x86, depthwise everywhere).
    U8,
    /// sum (x - 128) * w with x ^ 0x80 as s8 (the dense NEON kernels).
    S8,
}

/// A convolution's weights, packed once at load in the micro-kernels' panel layout, with the
/// zero-point compensation (`-zp_in * sum w`) and the scale `s_in * w_scale` folded per output
/// channel.
#[derive(Debug)]
pub struct PackedConv {
    shape: ConvShape,
    input: QParams,
    /// Row-major [c_out][kdim] as given (the reference reads these).
    w: Vec<i8>,
    wsum: Vec<i32>,
    mult: Vec<f32>,
    bias: Vec<f32>,
    max_abs: u8,
    /// Dense: [ceil(c_out/MR)][ceil(kdim/KG)][MR][KG], zero-filled past c_out and kdim.
    panel: Vec<i8>,
    /// Depthwise: [c][kk8] widened to i16, kk8 = k*k rounded up to 8, zero-filled.
    dw16: Vec<i16>,
    /// Dense, for the exact AVX2 kernel: `panel` widened to i16, built on first use.
    panel16: OnceLock<Vec<i16>>,
}

impl PackedConv {
    /// `w`: s8 `[c_out, c_in/groups, k, k]` row-major, in [-127, 127]; `w_scale`: `[c_out]`
    /// (real weight = `w_scale[co] * w`); `bias`: f32 `[c_out]`; `input`: the input's
    /// quantization.
    pub fn new(shape: ConvShape, w: &[i8], w_scale: &[f32], bias: &[f32], input: QParams) -> Result<Self, Error> {
        shape.check()?;
        input.check("input")?;
        let kdim = shape.kdim();
        let len = |what, expected, got: usize| {
            if got == expected {
                Ok(())
            } else {
                Err(Error::Len { what, expected, got })
            }
        };
        len("weights", shape.c_out * kdim, w.len())?;
        len("weight scales", shape.c_out, w_scale.len())?;
        len("bias", shape.c_out, bias.len())?;
        for (index, &value) in w_scale.iter().enumerate() {
            if !value.is_finite() || value < 0.0 {
                return Err(Error::NotFinite { what: "weight scale", index, value });
            }
        }
        for (index, &value) in bias.iter().enumerate() {
            if !value.is_finite() {
                return Err(Error::NotFinite { what: "bias", index, value });
            }
        }
        let mut max_abs = 0u8;
        for (i, &v) in w.iter().enumerate() {
            if v == i8::MIN {
                return Err(Error::WeightRange { channel: i / kdim, value: v, range: 127 });
            }
            max_abs = max_abs.max(v.unsigned_abs());
        }
        let wsum: Vec<i32> = w.chunks_exact(kdim).map(|r| r.iter().map(|&v| v as i32).sum()).collect();
        let mult: Vec<f32> = w_scale.iter().map(|&s| input.scale * s).collect();
        for (index, &value) in mult.iter().enumerate() {
            if !value.is_finite() {
                return Err(Error::NotFinite { what: "input scale * weight scale", index, value });
            }
        }
        let (panel, dw16) = if shape.is_depthwise() {
            (Vec::new(), pack_dw16(w, shape.c_out, shape.k * shape.k))
        } else {
            (pack_dense(w, shape.c_out, kdim), Vec::new())
        };
        Ok(Self {
            shape,
            input,
            w: w.to_vec(),
            wsum,
            mult,
            bias: bias.to_vec(),
            max_abs,
            panel,
            dw16,
            panel16: OnceLock::new(),
        })
    }

    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }

    /// The input quantization the layer was packed for.
    pub fn input(&self) -> QParams {
        self.input
    }

    /// max |w| over all weights (<= 63 lets AVX2 use `vpmaddubsw`).
    pub fn max_abs_weight(&self) -> u8 {
        self.max_abs
    }

    pub(crate) fn weights(&self) -> &[i8] {
        &self.w
    }

    pub(crate) fn panel(&self) -> &[i8] {
        &self.panel
    }

    pub(crate) fn panel16(&self) -> &[i16] {
        self.panel16.get_or_init(|| self.panel.iter().map(|&v| v as i16).collect())
    }

    pub(crate) fn dw16(&self) -> &[i16] {
        &self.dw16
    }

    /// k values per reduction group row of the dense panel (kdim rounded up to KG).
    pub(crate) fn kgroups(&self) -> usize {
        self.shape.kdim().div_ceil(KG)
    }

    /// The epilogue constants of output channel `co` for a kernel whose raw sum is `raw`.
    #[inline]
    pub(crate) fn chan(&self, co: usize, raw: RawSum) -> Chan {
        let zp = self.input.zero_point as i32;
        let comp = match raw {
            RawSum::U8 => -zp * self.wsum[co],
            RawSum::S8 => (128 - zp) * self.wsum[co],
        };
        Chan { comp, mult: self.mult[co], bias: self.bias[co] }
    }

    /// The constants for the reference, whose sum is already sum (x - zp) * w.
    #[inline]
    pub(crate) fn chan_exact(&self, co: usize) -> Chan {
        Chan { comp: 0, mult: self.mult[co], bias: self.bias[co] }
    }
}

fn pack_dense(w: &[i8], c_out: usize, kdim: usize) -> Vec<i8> {
    let kg = kdim.div_ceil(KG);
    let blocks = c_out.div_ceil(MR);
    let mut panel = vec![0i8; blocks * kg * MR * KG];
    for co in 0..c_out {
        let (b, r) = (co / MR, co % MR);
        for (k, &v) in w[co * kdim..(co + 1) * kdim].iter().enumerate() {
            panel[((b * kg + k / KG) * MR + r) * KG + k % KG] = v;
        }
    }
    panel
}

pub(crate) fn dw_stride(kk: usize) -> usize {
    kk.div_ceil(8) * 8
}

fn pack_dw16(w: &[i8], c: usize, kk: usize) -> Vec<i16> {
    let st = dw_stride(kk);
    let mut out = vec![0i16; c * st];
    for ch in 0..c {
        for t in 0..kk {
            out[ch * st + t] = w[ch * kk + t] as i16;
        }
    }
    out
}

#![doc = include_str!("../README.md")]

mod dense;
mod depthwise;
mod epilogue;
mod ops;
mod pack;
mod reference;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "aarch64")]
mod neon;

pub use epilogue::{fast_exp, silu};
pub use ops::{dequantize, maxpool_same, quantize, quantize_value, requantize, upsample2};
pub use pack::PackedConv;
pub use reference::conv_reference;

/// Quantization of a u8 tensor: `real = scale * (q - zero_point)`, one pair per tensor.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QParams {
    pub scale: f32,
    pub zero_point: u8,
}

impl QParams {
    pub fn new(scale: f32, zero_point: u8) -> Self {
        Self { scale, zero_point }
    }

    /// `1 / scale` in f32: every requantization multiplies by this (never divides), in the scalar
    /// and the SIMD code alike, so both round the same product.
    #[inline]
    pub fn inv_scale(&self) -> f32 {
        1.0 / self.scale
    }

    fn check(&self, what: &'static str) -> Result<(), Error> {
        if self.scale.is_finite() && self.scale > 0.0 && (1.0 / self.scale).is_finite() {
            Ok(())
        } else {
            Err(Error::BadScale { what, scale: self.scale })
        }
    }
}

/// Activation fused into a conv's epilogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    None,
    /// x / (1 + exp(-x)), with [`fast_exp`] (the same formula as perch-detect's f32 path).
    Silu,
}

/// Geometry of a convolution: square kernel `k`, `stride`, zero padding `pad` on every side
/// (filled with the input's zero point), `groups` either 1 (dense) or `c_in == c_out`
/// (depthwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub groups: usize,
}

impl ConvShape {
    /// A dense convolution.
    pub fn dense(c_in: usize, c_out: usize, k: usize, stride: usize, pad: usize) -> Self {
        Self { c_in, c_out, k, stride, pad, groups: 1 }
    }

    /// A depthwise convolution (`groups = c_in = c_out = c`).
    pub fn depthwise(c: usize, k: usize, stride: usize, pad: usize) -> Self {
        Self { c_in: c, c_out: c, k, stride, pad, groups: c }
    }

    pub fn is_depthwise(&self) -> bool {
        self.groups != 1
    }

    /// Weights per output channel: `c_in / groups * k * k`.
    pub fn kdim(&self) -> usize {
        self.c_in / self.groups.max(1) * self.k * self.k
    }

    /// Output size for an `h` x `w` input.
    pub fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize), Error> {
        if h == 0 || w == 0 || h + 2 * self.pad < self.k || w + 2 * self.pad < self.k {
            return Err(Error::MapTooSmall { h, w, k: self.k, pad: self.pad });
        }
        Ok(((h + 2 * self.pad - self.k) / self.stride + 1, (w + 2 * self.pad - self.k) / self.stride + 1))
    }

    fn check(&self) -> Result<(), Error> {
        let s = *self;
        let bad = |why: &'static str| Err(Error::BadShape { shape: s, why });
        if s.c_in == 0 || s.c_out == 0 || s.k == 0 || s.stride == 0 {
            return bad("channels, kernel and stride must be at least 1");
        }
        if s.groups != 1 && !(s.groups == s.c_in && s.groups == s.c_out) {
            return bad("groups must be 1 (dense) or c_in = c_out (depthwise)");
        }
        if s.kdim() > MAX_KDIM {
            return bad("c_in/groups*k*k exceeds 32768 (the i32 accumulator could overflow)");
        }
        Ok(())
    }
}

/// The largest reduction length: |sum (x - zp) * w| <= kdim * 255 * 127 and the kernels' raw sums
/// plus compensation stay far inside i32 up to this.
pub const MAX_KDIM: usize = 32768;

/// An optional residual added after the activation (Ultralytics' `x + f(x)`), laid out like the
/// output (`[c_out, oh*ow]`).
#[derive(Debug, Clone, Copy)]
pub enum Residual<'a> {
    None,
    /// Dequantized with its own parameters: `scale * (r - zero_point)`.
    U8(&'a [u8], QParams),
    F32(&'a [f32]),
}

/// Where the result goes (`[c_out, oh*ow]`).
#[derive(Debug)]
pub enum Output<'a> {
    /// Requantized with these parameters (round half to even, saturated to 0..=255).
    U8(&'a mut [u8], QParams),
    /// Dequantized f32 (for consumers that stay in float: the detect head's last convs, attention).
    F32(&'a mut [f32]),
}

impl Output<'_> {
    fn len(&self) -> usize {
        match self {
            Output::U8(d, _) => d.len(),
            Output::F32(d) => d.len(),
        }
    }
}

/// What can go wrong; every message names the offending value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("conv shape {shape:?}: {why}")]
    BadShape { shape: ConvShape, why: &'static str },
    #[error("{what} has {got} values, expected {expected}")]
    Len { what: &'static str, expected: usize, got: usize },
    #[error("{what} scale {scale} is not a positive finite number")]
    BadScale { what: &'static str, scale: f32 },
    #[error("{what}[{index}] = {value} is not finite")]
    NotFinite { what: &'static str, index: usize, value: f32 },
    #[error("weight {value} of output channel {channel} is outside [-{range}, {range}]")]
    WeightRange { channel: usize, value: i8, range: i8 },
    #[error("a {h}x{w} map is too small for a {k}x{k} kernel with padding {pad}")]
    MapTooSmall { h: usize, w: usize, k: usize, pad: usize },
    #[error("input part {index} has {len} values, not a whole number of {h}x{w} planes")]
    Part { index: usize, len: usize, h: usize, w: usize },
    #[error("the input parts hold {got} channels, the conv expects {expected}")]
    Channels { expected: usize, got: usize },
    #[error("kernel variant {0} cannot run here: {1}")]
    Unavailable(&'static str, &'static str),
}

/// The kernel implementations. [`conv`] picks the best one for the CPU and the layer
/// ([`Variant::select`]); [`conv_with`] forces one (tests, benchmarks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The plain scalar reference ([`conv_reference`]).
    Scalar,
    /// x86_64 AVX2, exact for weights in [-127, 127]: u8 and s8 widened to i16, `vpmaddwd`.
    Avx2,
    /// x86_64 AVX2 with `vpmaddubsw` (u8 x s8 pairs into i16) + `vpmaddwd`: only for layers whose
    /// weights lie in [-63, 63] (no i16 saturation possible).
    Avx2Madd7,
    /// x86_64 AVX-VNNI (`vpdpbusd` on 256-bit vectors).
    AvxVnni,
    /// x86_64 AVX512-VNNI (`vpdpbusd` on 512-bit vectors).
    Avx512Vnni,
    /// aarch64 NEON (ARMv8.0): `smull`/`smlal` + `sadalp`.
    Neon,
    /// aarch64 NEON with the dotprod extension: `sdot`.
    NeonDotprod,
}

impl Variant {
    pub const ALL: [Variant; 7] = [
        Variant::Scalar,
        Variant::Avx2,
        Variant::Avx2Madd7,
        Variant::AvxVnni,
        Variant::Avx512Vnni,
        Variant::Neon,
        Variant::NeonDotprod,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Scalar => "scalar",
            Variant::Avx2 => "avx2",
            Variant::Avx2Madd7 => "avx2_madd7",
            Variant::AvxVnni => "avx_vnni",
            Variant::Avx512Vnni => "avx512_vnni",
            Variant::Neon => "neon",
            Variant::NeonDotprod => "neon_dotprod",
        }
    }

    /// Whether this CPU can run the variant (for any layer; [`Variant::supports`] adds the
    /// per-layer condition).
    pub fn available(self) -> bool {
        if !simd_ready(self) {
            return false;
        }
        match self {
            Variant::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Variant::Avx2 | Variant::Avx2Madd7 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Variant::AvxVnni => x86::has_avx_vnni(),
            #[cfg(target_arch = "x86_64")]
            Variant::Avx512Vnni => x86::has_avx512_vnni(),
            #[cfg(target_arch = "aarch64")]
            Variant::Neon => true,
            #[cfg(target_arch = "aarch64")]
            Variant::NeonDotprod => std::arch::is_aarch64_feature_detected!("dotprod"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// Whether the variant can run this layer here (available, and for [`Variant::Avx2Madd7`]
    /// 7-bit weights; depthwise layers run every variant's depthwise kernel).
    pub fn supports(self, p: &PackedConv) -> bool {
        self.available() && (self != Variant::Avx2Madd7 || p.shape().is_depthwise() || p.max_abs_weight() <= 63)
    }

    /// The fastest variant for this layer on this CPU.
    pub fn select(p: &PackedConv) -> Variant {
        const ORDER: [Variant; 6] = [
            Variant::Avx512Vnni,
            Variant::AvxVnni,
            Variant::Avx2Madd7,
            Variant::Avx2,
            Variant::NeonDotprod,
            Variant::Neon,
        ];
        ORDER.into_iter().find(|v| v.supports(p)).unwrap_or(Variant::Scalar)
    }
}

/// Variants whose kernels are written (the SIMD kernels land behind this same API).
fn simd_ready(v: Variant) -> bool {
    v == Variant::Scalar
}

/// The kernel family this CPU runs (for `perch info` and bench reports): "avx512_vnni",
/// "avx_vnni", "avx2", "neon_dotprod", "neon" or "scalar".
pub fn active_kernel() -> &'static str {
    const ORDER: [Variant; 5] =
        [Variant::Avx512Vnni, Variant::AvxVnni, Variant::Avx2, Variant::NeonDotprod, Variant::Neon];
    ORDER.into_iter().find(|v| v.available()).unwrap_or(Variant::Scalar).name()
}

/// The weight range quantizers should use: weights in `[-weight_range(), weight_range()]`.
/// One range for every target (a model file is quantized once and runs everywhere); see the
/// README's "Weight range" for the measurement behind it.
pub fn weight_range() -> i8 {
    127
}

/// `out[c_out, oh*ow] = epilogue(conv(concat(parts)))` with the fastest kernel for this CPU.
///
/// `parts`: CHW u8 planes `[c_i, h*w]` whose channels sum to `c_in`, all quantized with the
/// `input` parameters the layer was packed with. The epilogue per output channel `co`:
/// `y = (acc - zp_in * wsum[co]) as f32 * (s_in * w_scale[co]) + bias[co]`, then the activation,
/// then `+ residual`, then the output conversion.
pub fn conv(p: &PackedConv, parts: &[&[u8]], h: usize, w: usize, act: Act, residual: Residual, out: Output) -> Result<(), Error> {
    conv_with(Variant::select(p), p, parts, h, w, act, residual, out)
}

/// [`conv`] with a forced kernel variant (an error if it cannot run this layer on this CPU).
/// Every variant's result equals [`conv_reference`]'s bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn conv_with(
    variant: Variant,
    p: &PackedConv,
    parts: &[&[u8]],
    h: usize,
    w: usize,
    act: Act,
    residual: Residual,
    out: Output,
) -> Result<(), Error> {
    if !variant.available() {
        return Err(Error::Unavailable(variant.name(), "this CPU lacks the instructions"));
    }
    if !variant.supports(p) {
        return Err(Error::Unavailable(variant.name(), "the layer's weights exceed [-63, 63]"));
    }
    if variant == Variant::Scalar {
        return conv_reference(p, parts, h, w, act, residual, out);
    }
    let job = Job::new(p, parts, h, w, act, residual, out)?;
    if p.shape().is_depthwise() {
        depthwise::run(variant, job);
    } else {
        dense::run(variant, job);
    }
    Ok(())
}

/// A validated conv call: every slice has the length the kernels index it with.
pub(crate) struct Job<'a> {
    pub p: &'a PackedConv,
    /// One plane (h*w values) per input channel, borrowed from the parts.
    pub planes: Vec<&'a [u8]>,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
    pub act: Act,
    pub residual: Residual<'a>,
    pub out: Output<'a>,
}

impl<'a> Job<'a> {
    pub(crate) fn new(
        p: &'a PackedConv,
        parts: &[&'a [u8]],
        h: usize,
        w: usize,
        act: Act,
        residual: Residual<'a>,
        out: Output<'a>,
    ) -> Result<Self, Error> {
        let s = p.shape();
        let (oh, ow) = s.out_hw(h, w)?;
        let hw = h * w;
        let mut planes = Vec::with_capacity(s.c_in);
        for (index, part) in parts.iter().enumerate() {
            if part.is_empty() || part.len() % hw != 0 {
                return Err(Error::Part { index, len: part.len(), h, w });
            }
            planes.extend(part.chunks_exact(hw));
        }
        if planes.len() != s.c_in {
            return Err(Error::Channels { expected: s.c_in, got: planes.len() });
        }
        let n_out = s.c_out * oh * ow;
        if out.len() != n_out {
            return Err(Error::Len { what: "output", expected: n_out, got: out.len() });
        }
        match residual {
            Residual::None => {}
            Residual::U8(r, q) => {
                q.check("residual")?;
                if r.len() != n_out {
                    return Err(Error::Len { what: "residual", expected: n_out, got: r.len() });
                }
            }
            Residual::F32(r) => {
                if r.len() != n_out {
                    return Err(Error::Len { what: "residual", expected: n_out, got: r.len() });
                }
            }
        }
        if let Output::U8(_, q) = &out {
            q.check("output")?;
        }
        Ok(Self { p, planes, h, w, oh, ow, act, residual, out })
    }
}

#[cfg(test)]
mod tests;

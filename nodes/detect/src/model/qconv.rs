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
            packed: None,
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

#[cfg(test)]
mod tests {
    //! An int8 conv against the f32 conv on its dequantized weights.
    //!
    //! Error bound (per output value, stated and checked below). The int8 kernel computes
    //! `y = act(s_x * s_w[co] * Σ q_w (q_x - zp) + b) (+ r)` exactly in integers before the f32
    //! epilogue, so against the f32 conv with the *dequantized* weights w~ = s_w q_w:
    //! * on the dequantized input x~ = s_x (q_x - zp) the two agree up to f32 rounding;
    //! * on the float input x, rounding x to the input grid moves the pre-activation by at most
    //!   (s_x / 2) · ‖w~_co‖₁ (no clipping: the test's ranges cover its inputs), SiLU's slope is
    //!   below 1.1, and a u8 output adds at most half an output step: |Δ| ≤ 1.1 · (s_x/2)‖w~_co‖₁
    //!   + s_out/2 (+ f32 rounding);
    //! * against the original f32 weights w add (s_w[co]/2) · Σ|x| over the receptive field
    //!   (each weight is within half a step of w~), times the same 1.1.
    use super::*;
    use crate::model::fmap::Cx;
    use crate::quant::calibrate::qparams_for_range;

    struct Case {
        c_in: usize,
        c_out: usize,
        k: usize,
        s: usize,
        g: usize,
        h: usize,
        w: usize,
        act: Act,
        residual: bool,
    }

    fn rnd(seed: &mut u64) -> f32 {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    fn floats(n: usize, lo: f32, hi: f32, seed: &mut u64) -> Vec<f32> {
        (0..n).map(|_| lo + (rnd(seed) * 0.5 + 0.5) * (hi - lo)).collect()
    }

    fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn vals(f: &Fmap) -> Vec<f32> {
        f.to_float(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    fn check(c: &Case, u8_out: bool) {
        let mut seed = (c.c_in * 31 + c.c_out * 7 + c.k + c.h) as u64;
        let (oh, ow) = ((c.h + 2 * (c.k / 2) - c.k) / c.s + 1, (c.w + 2 * (c.k / 2) - c.k) / c.s + 1);
        let wt = t(floats(c.c_out * c.c_in / c.g * c.k * c.k, -0.4, 0.4, &mut seed), &[c.c_out, c.c_in / c.g, c.k, c.k]);
        let bt = t(floats(c.c_out, -0.5, 0.5, &mut seed), &[c.c_out]);
        let f32conv = Conv::from_tensors(wt, bt, c.s, c.g, c.act, ConvKernel::F32).unwrap();
        let x = floats(c.c_in * c.h * c.w, -0.3, 4.0, &mut seed);
        let in_q = qparams_for_range(-0.3, 4.0);
        let r = floats(c.c_out * oh * ow, -1.0, 2.0, &mut seed);
        let r_q = qparams_for_range(-1.0, 2.0);
        // The output range: what the f32 conv produces, with a margin (no saturation).
        let probe = vals(&f32conv.run(&[Fmap::Float(t(x.clone(), &[1, c.c_in, c.h, c.w]))], None, Cx::default()).unwrap());
        let (lo, hi) = probe.iter().fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
        let out_q = qparams_for_range(1.2 * lo - 1.5, 1.2 * hi + 2.5);
        let int8 = f32conv.to_int8(in_q, u8_out.then_some(out_q), 127).unwrap();
        let deq = int8.dequantized().unwrap();
        let q = int8.int8().unwrap();
        // The input as int8 sees it, and the residual as u8.
        let mut xq = vec![0u8; x.len()];
        perch_int8::quantize(&x, in_q, &mut xq).unwrap();
        let mut rq = vec![0u8; r.len()];
        perch_int8::quantize(&r, r_q, &mut rq).unwrap();
        let x_f = Fmap::Float(t(x.clone(), &[1, c.c_in, c.h, c.w]));
        let x_u8 = u8_map(xq.clone(), c.c_in, c.h, c.w, in_q).unwrap();
        let x_deq = Fmap::Float(x_u8.to_float(DType::F32).unwrap());
        let r_u8 = u8_map(rq, c.c_out, oh, ow, r_q).unwrap();
        let r_deq = Fmap::Float(r_u8.to_float(DType::F32).unwrap());
        let res_int8 = c.residual.then_some(&r_u8);
        let res_f32 = c.residual.then_some(&r_deq);
        let cx = Cx::default();

        let y_u8in = vals(&int8.run(std::slice::from_ref(&x_u8), res_int8, cx).unwrap());
        let y_fin = vals(&int8.run(std::slice::from_ref(&x_f), res_int8, cx).unwrap());
        assert_eq!(y_u8in, y_fin, "a float input is quantized to exactly what a u8 input holds");
        let y_deq = vals(&deq.run(std::slice::from_ref(&x_deq), res_f32, cx).unwrap());
        let y_orig = vals(&f32conv.run(std::slice::from_ref(&x_f), res_f32, cx).unwrap());
        let kdim = c.c_in / c.g * c.k * c.k;
        let plane = oh * ow;
        let (mut worst_deq, mut worst_f, mut worst_orig) = (0f32, 0f32, 0f32);
        for i in 0..y_deq.len() {
            let co = i / plane;
            let l1: f32 = q.w[co * kdim..(co + 1) * kdim].iter().map(|&v| (v as f32 * q.w_scale[co]).abs()).sum();
            let half_out = if u8_out { out_q.scale / 2.0 } else { 0.0 };
            // f32 rounding of both sides: a few ulps of the sum of |terms|.
            let round = 1e-5 * (l1 * 4.3 + 1.0);
            // Against the conv on the dequantized input: exact up to rounding and the output step.
            let d = (y_u8in[i] - y_deq[i]).abs();
            assert!(d <= half_out + round + 1e-6, "dequantized-input diff {d} at {i}");
            worst_deq = worst_deq.max(d);
            // Against the float input: the input rounding bound.
            let bound = 1.1 * (in_q.scale / 2.0) * l1 + half_out + round;
            let d = (y_u8in[i] - vals(&deq.run(std::slice::from_ref(&x_f), res_f32, cx).unwrap())[i]).abs();
            assert!(d <= bound, "float-input diff {d} > bound {bound} at {i}");
            worst_f = worst_f.max(d / bound);
            // Against the original f32 weights: plus half a weight step times Σ|x| (|x| <= 4).
            let bound_w = bound + 1.1 * (q.w_scale[co] / 2.0) * kdim as f32 * 4.0;
            let d = (y_u8in[i] - y_orig[i]).abs();
            assert!(d <= bound_w, "original-weights diff {d} > bound {bound_w} at {i}");
            worst_orig = worst_orig.max(d / bound_w);
            if i > 64 {
                break; // the f32 conv per value above is quadratic: spot-check the first planes
            }
        }
        eprintln!(
            "c{}->{} k{} s{} g{} {}x{} res {} u8 out {u8_out}: max |int8 - f32(deq x, deq w)| {worst_deq:.2e}, worst/bound {worst_f:.2} (float x), {worst_orig:.2} (f32 w)",
            c.c_in, c.c_out, c.k, c.s, c.g, c.h, c.w, c.residual
        );
    }

    #[test]
    fn int8_conv_matches_the_f32_conv_on_dequantized_weights_within_the_bound() {
        let cases = [
            Case { c_in: 3, c_out: 8, k: 3, s: 2, g: 1, h: 17, w: 20, act: Act::Silu, residual: false },
            Case { c_in: 16, c_out: 24, k: 3, s: 1, g: 1, h: 9, w: 11, act: Act::Silu, residual: true },
            Case { c_in: 32, c_out: 16, k: 1, s: 1, g: 1, h: 8, w: 8, act: Act::None, residual: true },
            Case { c_in: 16, c_out: 16, k: 7, s: 1, g: 16, h: 10, w: 12, act: Act::None, residual: true },
            Case { c_in: 24, c_out: 24, k: 3, s: 1, g: 24, h: 7, w: 9, act: Act::Silu, residual: false },
        ];
        for c in &cases {
            check(c, false);
            check(c, true);
        }
    }

    #[test]
    fn parts_in_other_quantizations_are_requantized_or_quantized() {
        let mut seed = 7u64;
        let (c1, c2, hw) = (8usize, 16usize, 6usize);
        let wt = t(floats(12 * (c1 + c2), -0.3, 0.3, &mut seed), &[12, c1 + c2, 1, 1]);
        let bt = t(floats(12, -0.2, 0.2, &mut seed), &[12]);
        let f32conv = Conv::from_tensors(wt, bt, 1, 1, Act::Silu, ConvKernel::F32).unwrap();
        let in_q = qparams_for_range(-0.5, 6.0);
        let int8 = f32conv.to_int8(in_q, None, 127).unwrap();
        let a = floats(c1 * hw * hw, -0.2, 1.0, &mut seed);
        let b = floats(c2 * hw * hw, -0.5, 6.0, &mut seed);
        // Part a arrives in its own, finer quantization; part b in float.
        let a_q = qparams_for_range(-0.2, 1.0);
        let mut aq = vec![0u8; a.len()];
        perch_int8::quantize(&a, a_q, &mut aq).unwrap();
        let parts = [u8_map(aq.clone(), c1, hw, hw, a_q).unwrap(), Fmap::Float(t(b.clone(), &[1, c2, hw, hw]))];
        let y = vals(&int8.run(&parts, None, Cx::default()).unwrap());
        // The same conv on both parts already in the input quantization.
        let mut a2 = vec![0u8; a.len()];
        perch_int8::requantize(&aq, a_q, in_q, &mut a2).unwrap();
        let mut b2 = vec![0u8; b.len()];
        perch_int8::quantize(&b, in_q, &mut b2).unwrap();
        let parts2 = [u8_map(a2, c1, hw, hw, in_q).unwrap(), u8_map(b2, c2, hw, hw, in_q).unwrap()];
        assert_eq!(y, vals(&int8.run(&parts2, None, Cx::default()).unwrap()));
        let err = int8.run(&parts[..1], None, Cx::default()).unwrap_err();
        assert!(format!("{err:#}").contains("channels"), "{err:#}");
    }

    #[test]
    fn weights_quantize_per_channel_symmetrically() {
        let w = [0.5f32, -0.25, 0.125, 0.0, 0.0, 0.0, -2.0, 1.0, 0.001];
        let (q, s) = quantize_weights(&w, 3, 127);
        assert_eq!(s, vec![0.5 / 127.0, 0.0, 2.0 / 127.0]);
        assert_eq!(&q[..3], &[127, -64, 32]);
        assert_eq!(&q[3..6], &[0, 0, 0]);
        assert_eq!(&q[6..], &[-127, 64, 0]);
        let (q, _) = quantize_weights(&w, 3, 63);
        assert_eq!(q.iter().map(|v| v.unsigned_abs()).max(), Some(63));
    }
}

//! What flows between layers: a feature map in float (f32 on the CPU, f16 on CUDA) or in u8 with
//! its quantization (an int8 conv's requantized output), plus the optional observer that
//! calibration hangs on every conv.
//!
//! A float model only ever carries [`Fmap::Float`]; an int8 model carries [`Fmap::U8`] between
//! int8 layers and float where a layer is kept in f32 or an op is float-only (area attention,
//! the detect head's decode). A consumer converts what it is given to what it runs on.

use anyhow::{bail, Result};
use candle_core::{CpuStorage, DType, Device, Storage, Tensor};

pub use perch_int8::QParams;

/// A feature map, [1, C, H, W].
#[derive(Debug, Clone)]
pub enum Fmap {
    /// Float activations.
    Float(Tensor),
    /// u8 activations (a CPU tensor of dtype U8): real value = scale * (q - zero_point).
    U8(Tensor, QParams),
}

impl Fmap {
    pub fn tensor(&self) -> &Tensor {
        match self {
            Fmap::Float(t) | Fmap::U8(t, _) => t,
        }
    }

    pub fn dims4(&self) -> Result<(usize, usize, usize, usize)> {
        Ok(self.tensor().dims4()?)
    }

    pub fn channels(&self) -> Result<usize> {
        Ok(self.tensor().dim(1)?)
    }

    /// The values in float (`dtype`): u8 maps are dequantized (on the CPU).
    pub fn to_float(&self, dtype: DType) -> Result<Tensor> {
        match self {
            Fmap::Float(t) => Ok(if t.dtype() == dtype { t.clone() } else { t.to_dtype(dtype)? }),
            Fmap::U8(t, qp) => {
                let t = t.contiguous()?;
                let out = with_u8_data(&t, |q| -> Result<Vec<f32>> {
                    let mut out = vec![0f32; q.len()];
                    perch_int8::dequantize(q, *qp, &mut out)?;
                    Ok(out)
                })??;
                let f = Tensor::from_vec(out, t.shape(), &Device::Cpu)?;
                Ok(if dtype == DType::F32 { f } else { f.to_dtype(dtype)? })
            }
        }
    }

    /// Channels `start..start + len` (a view: no copy, same quantization).
    pub fn narrow_channels(&self, start: usize, len: usize) -> Result<Fmap> {
        Ok(match self {
            Fmap::Float(t) => Fmap::Float(t.narrow(1, start, len)?),
            Fmap::U8(t, qp) => Fmap::U8(t.narrow(1, start, len)?, *qp),
        })
    }

    /// nn.Upsample(scale_factor=2, mode="nearest"); exact on u8 (same quantization).
    pub fn upsample2(&self) -> Result<Fmap> {
        let (_, c, h, w) = self.dims4()?;
        Ok(match self {
            Fmap::Float(t) => Fmap::Float(t.upsample_nearest2d(2 * h, 2 * w)?),
            Fmap::U8(t, qp) => {
                let t = t.contiguous()?;
                let out = with_u8_data(&t, |q| -> Result<Vec<u8>> {
                    let mut out = vec![0u8; 4 * q.len()];
                    perch_int8::upsample2(q, c, h, w, &mut out)?;
                    Ok(out)
                })??;
                Fmap::U8(Tensor::from_vec(out, (1, c, 2 * h, 2 * w), &Device::Cpu)?, *qp)
            }
        })
    }
}

/// A u8 map from a buffer the int8 kernels wrote.
pub fn u8_map(data: Vec<u8>, c: usize, h: usize, w: usize, qp: QParams) -> Result<Fmap> {
    Ok(Fmap::U8(Tensor::from_vec(data, (1, c, h, w), &Device::Cpu)?, qp))
}

/// Borrows the data of a contiguous U8 CPU tensor.
pub fn with_u8_data<R>(t: &Tensor, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
    with_u8_slices(std::slice::from_ref(t), |s| f(s[0]))
}

/// Borrows the data of several contiguous U8 CPU tensors at once.
pub fn with_u8_slices<R>(ts: &[Tensor], f: impl FnOnce(&[&[u8]]) -> R) -> Result<R> {
    let storages: Vec<_> = ts.iter().map(|t| t.storage_and_layout()).collect();
    let mut slices = Vec::with_capacity(ts.len());
    for ((storage, layout), t) in storages.iter().zip(ts) {
        let Storage::Cpu(cpu) = &**storage else { bail!("expected a CPU tensor") };
        let CpuStorage::U8(data) = cpu else { bail!("expected a u8 tensor, got {:?}", t.dtype()) };
        let Some((a, b)) = layout.contiguous_offsets() else { bail!("expected a contiguous tensor") };
        slices.push(&data[a..b]);
    }
    Ok(f(&slices))
}

/// Sees every conv of a forward pass: its name (the Ultralytics module, e.g. `model.2.cv1`), the
/// parts of its input concatenation, its residual and its output. Calibration collects activation
/// statistics through it; quantization reports compare two models' layers through it. The normal
/// forward pass has none (one `Option` test per conv).
pub trait Observer: Sync {
    fn conv(&self, name: &str, inputs: &[Fmap], residual: Option<&Fmap>, output: &Fmap);
}

/// What a forward pass carries down to every layer.
#[derive(Clone, Copy, Default)]
pub struct Cx<'a> {
    pub observer: Option<&'a dyn Observer>,
}

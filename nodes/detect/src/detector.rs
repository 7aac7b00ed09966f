//! The detector: an imported model on a device, its own CPU thread pool, and the reusable
//! decode + NMS state. Used by the pipeline stage, `perch detect` and `perch bench detect`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use candle_core::{DType, Device, Tensor};
use perch_pipeline::{Detection, Letterbox, TensorBuf};

use crate::config::{DetectConfig, DeviceKind};
use crate::meta::{ModelMeta, Precision};
use crate::model::YoloModel;
use crate::postprocess::{NmsParams, Postprocessor};

/// Time spent in the two halves of one detection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Timing {
    /// Tensor upload, the network and the download of its output.
    pub forward: Duration,
    /// Decode, NMS and the mapping to source pixels.
    pub postprocess: Duration,
}

pub struct Detector {
    model: YoloModel,
    meta: ModelMeta,
    device: Device,
    /// Bounds the CPU threads the network uses (Candle's ops and its GEMM run on the current rayon pool).
    pool: Option<rayon::ThreadPool>,
    threads: usize,
    imgsz: u32,
    params: NmsParams,
    post: Postprocessor,
    out: Vec<f32>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("architecture", &self.meta.architecture)
            .field("scale", &self.meta.scale)
            .field("imgsz", &self.imgsz)
            .field("threads", &self.threads)
            .finish()
    }
}

impl Detector {
    /// Validate `config`, read the model directory and build the network on the device.
    pub fn load(config: &DetectConfig) -> anyhow::Result<Self> {
        Self::load_with_dtype(config, None)
    }

    /// [`Detector::load`] with the network in an explicit precision instead of the device's
    /// (`Some(DType::F16)` on the CPU runs Candle's reference ops in f16: the CUDA path's numerics,
    /// which `perch eval quant` scores as a variant).
    pub fn load_with_dtype(config: &DetectConfig, dtype: Option<DType>) -> anyhow::Result<Self> {
        config.validate()?;
        let dir = config.model.as_path();
        let meta = ModelMeta::load(dir)?;
        let params = config.nms_params(&meta.class_names)?;
        if meta.precision == Precision::Int8 && config.device != DeviceKind::Cpu {
            bail!(
                "{} is an int8 model, which runs on the CPU only (detect.device = \"cpu\"); on CUDA use its f32 source{} (it runs in f16 there)",
                dir.display(),
                meta.quantization.as_ref().map(|q| format!(" {}", q.source_model.dir)).unwrap_or_default()
            );
        }
        let device = match config.device {
            DeviceKind::Cpu => Device::Cpu,
            DeviceKind::Cuda => Device::new_cuda(0).context("detect.device = \"cuda\": opening CUDA device 0")?,
        };
        let threads = config.effective_threads();
        let pool = match config.device {
            DeviceKind::Cpu => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("perch-detect-{i}"))
                    .build()
                    .context("creating the detector's thread pool")?,
            ),
            DeviceKind::Cuda => None,
        };
        let weights = ModelMeta::weights_path(dir);
        let build = || match (meta.precision, dtype) {
            (Precision::F32, None) => YoloModel::load(&weights, meta.architecture, meta.scale, meta.num_classes, &device),
            (Precision::F32, Some(dtype)) => YoloModel::load_as(&weights, meta.architecture, meta.scale, meta.num_classes, &device, dtype),
            (Precision::Int8, None) => YoloModel::load_int8(&weights, meta.architecture, meta.scale, meta.num_classes),
            (Precision::Int8, Some(dtype)) => anyhow::bail!("{} is an int8 model: it cannot be loaded as {dtype:?}", dir.display()),
        };
        let model = match &pool {
            Some(p) => p.install(build),
            None => build(),
        }
        .with_context(|| format!("loading {} ({:?} {:?})", weights.display(), meta.architecture, meta.scale))?;
        Ok(Self { model, meta, device, pool, threads, imgsz: config.imgsz, params, post: Postprocessor::new(), out: Vec::new() })
    }

    /// Load with defaults except the model directory (tests, tools).
    pub fn load_dir(dir: &Path, imgsz: u32) -> anyhow::Result<Self> {
        Self::load(&DetectConfig { model: dir.to_path_buf(), imgsz, ..Default::default() })
    }

    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    pub fn class_names(&self) -> &[String] {
        &self.meta.class_names
    }

    pub fn imgsz(&self) -> u32 {
        self.imgsz
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn params(&self) -> &NmsParams {
        &self.params
    }

    pub fn set_params(&mut self, params: NmsParams) {
        self.params = params;
    }

    fn check_tensor(&self, tensor: &TensorBuf) -> anyhow::Result<(usize, usize)> {
        let [c, h, w] = tensor.shape;
        ensure!(
            c == 3 && tensor.data.len() == c * h * w,
            "detect: the input tensor is {c}x{h}x{w} with {} values; expected 3 x {} x {} (CHW, from the preprocess stage)",
            tensor.data.len(),
            self.imgsz,
            self.imgsz
        );
        if h != self.imgsz as usize || w != self.imgsz as usize {
            bail!(
                "detect: the input tensor is {h}x{w} but detect.imgsz = {}: the preprocess stage must letterbox to the same size",
                self.imgsz
            );
        }
        Ok((h, w))
    }

    /// Run the network on a CHW tensor; returns the raw output `[4 + nc, n]` (row-major) and n.
    pub fn forward_raw(&mut self, tensor: &TensorBuf) -> anyhow::Result<(&[f32], usize)> {
        let (h, w) = self.check_tensor(tensor)?;
        let (model, device, out) = (&self.model, &self.device, &mut self.out);
        let mut run = || -> anyhow::Result<usize> {
            let input = Tensor::from_slice(&tensor.data, (1, 3, h, w), device)?;
            let y = model.forward(&input)?;
            let dims = y.dims().to_vec();
            let nc = model.num_classes();
            ensure!(
                dims.len() == 3 && dims[0] == 1 && dims[1] == 4 + nc,
                "the network returned shape {dims:?}, expected [1, {}, N]",
                4 + nc
            );
            let y = y.squeeze(0)?.to_dtype(DType::F32)?.flatten_all()?;
            out.clear();
            out.extend_from_slice(&y.to_vec1::<f32>()?);
            Ok(dims[2])
        };
        let n = match &self.pool {
            Some(p) => p.install(run),
            None => run(),
        }?;
        Ok((&self.out, n))
    }

    /// Detect objects in a letterboxed CHW tensor; `dets` gets them in source pixels.
    pub fn detect(&mut self, tensor: &TensorBuf, letterbox: &Letterbox, dets: &mut Vec<Detection>) -> anyhow::Result<Timing> {
        let t0 = Instant::now();
        let nc = self.meta.num_classes;
        let (_, n) = self.forward_raw(tensor)?;
        let t1 = Instant::now();
        self.post.run(&self.out, nc, n, &self.params, letterbox, dets)?;
        Ok(Timing { forward: t1 - t0, postprocess: t1.elapsed() })
    }
}

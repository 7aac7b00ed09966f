//! The peer process of `perch eval quant --peer CMD` (ONNX Runtime f32 and static INT8,
//! `scripts/ort_int8.py serve`): JSON requests on its stdin, one JSON answer per line on its stdout.
//! perch hands it its own letterboxed input tensors in files (so both sides see identical input),
//! decodes the peer's raw outputs with its own NMS and times the peer's rounds between its own.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{bail, Context};
use perch_pipeline::TensorBuf;
use serde::Deserialize;
use serde_json::{json, Value};

/// One model the peer runs.
#[derive(Clone, Debug, Deserialize)]
pub struct PeerVariant {
    pub name: String,
    pub path: String,
    pub bytes: u64,
    pub load_ms: f64,
    pub precision: String,
    #[serde(default)]
    pub recipe: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PeerInfo {
    pub variants: Vec<PeerVariant>,
    /// The ONNX's fixed input size, or None for a dynamic input.
    pub input_hw: Option<[u32; 2]>,
    pub onnxruntime: String,
    pub threads: usize,
    /// Seconds each INT8 method's quantization took (near 0 when cached), by method.
    pub quantize_s: std::collections::BTreeMap<String, f64>,
    pub cached: std::collections::BTreeMap<String, bool>,
}

pub struct Peer {
    cmd: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    scratch: PathBuf,
    out: Vec<f32>,
}

impl Peer {
    /// Starts `cmd` (split on whitespace; no shell) with `scratch` as its exchange folder.
    pub fn spawn(cmd: &str, scratch: &Path) -> anyhow::Result<Self> {
        let mut parts = cmd.split_whitespace();
        let prog = parts.next().context("--peer: empty command")?;
        std::fs::create_dir_all(scratch).with_context(|| format!("creating {}", scratch.display()))?;
        let mut child = Command::new(prog)
            .args(parts)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting the peer `{cmd}` (is the venv set up? bash nodes/detect/scripts/setup-venv.sh)"))?;
        let stdin = child.stdin.take().context("peer stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("peer stdout")?);
        Ok(Self { cmd: cmd.to_string(), child, stdin, stdout, scratch: scratch.to_path_buf(), out: Vec::new() })
    }

    /// The peer process's id (to wait for its threads to go idle between rounds).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn command(&self) -> &str {
        &self.cmd
    }

    fn call(&mut self, req: Value) -> anyhow::Result<Value> {
        let what = req["cmd"].as_str().unwrap_or("?").to_string();
        writeln!(self.stdin, "{req}").and_then(|()| self.stdin.flush()).with_context(|| format!("peer `{}`: sending {what} (did it exit?)", self.cmd))?;
        let mut line = String::new();
        let n = self.stdout.read_line(&mut line).with_context(|| format!("peer `{}`: reading the answer to {what}", self.cmd))?;
        if n == 0 {
            let status = self.child.wait().ok();
            let why = match status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)) {
                Some(9) => " (killed by SIGKILL: out of memory?)".to_string(),
                Some(sig) => format!(" (killed by signal {sig})"),
                None => status.map_or(String::new(), |s| format!(" ({s})")),
            };
            bail!("peer `{}` exited during {what}{why}; its messages are above", self.cmd);
        }
        let v: Value = serde_json::from_str(&line).with_context(|| format!("peer `{}`: answer to {what} is not JSON: {line:?}", self.cmd))?;
        if v["ok"] != json!(true) {
            bail!("peer `{}`: {what} failed: {}", self.cmd, v["error"].as_str().unwrap_or("(no error message)"));
        }
        Ok(v)
    }

    fn write_tensor(&self, t: &TensorBuf, name: &str) -> anyhow::Result<(PathBuf, [usize; 4])> {
        let p = self.scratch.join(name);
        let bytes: Vec<u8> = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(&p, bytes).with_context(|| format!("writing {}", p.display()))?;
        let [c, h, w] = t.shape;
        Ok((p, [1, c, h, w]))
    }

    /// The ONNX's fixed input side (None: dynamic input), to calibrate at.
    pub fn input_size(&mut self) -> anyhow::Result<Option<u32>> {
        let v = self.call(json!({"cmd": "input"}))?;
        let hw: Option<[u32; 2]> = serde_json::from_value(v["input_hw"].clone()).with_context(|| format!("peer `{}`: bad input answer {v}", self.cmd))?;
        match hw {
            Some([h, w]) if h != w => bail!("peer `{}`: the ONNX input is {h}x{w}; perch evaluates square inputs", self.cmd),
            Some([h, _]) => Ok(Some(h)),
            None => Ok(None),
        }
    }

    /// Adds one calibration input (perch's tensor of a calibration frame).
    pub fn calib_add(&mut self, t: &TensorBuf) -> anyhow::Result<()> {
        let (p, shape) = self.write_tensor(t, "calib.f32")?;
        self.call(json!({"cmd": "calib_add", "input": p, "shape": shape}))?;
        Ok(())
    }

    /// Quantizes (or finds the cached model) and opens the sessions.
    pub fn prepare(&mut self) -> anyhow::Result<(PeerInfo, Value)> {
        let v = self.call(json!({"cmd": "prepare"}))?;
        let info: PeerInfo = serde_json::from_value(v.clone()).with_context(|| format!("peer `{}`: unexpected prepare answer {v}", self.cmd))?;
        Ok((info, v))
    }

    /// The raw output `[4 + nc, n]` of `variant` on `t`, and n.
    pub fn forward(&mut self, variant: &str, t: &TensorBuf, nc: usize) -> anyhow::Result<(&[f32], usize)> {
        let (input, shape) = self.write_tensor(t, "input.f32")?;
        let output = self.scratch.join("output.f32");
        let v = self.call(json!({"cmd": "forward", "variant": variant, "input": input, "shape": shape, "output": output}))?;
        let dims: Vec<usize> = serde_json::from_value(v["shape"].clone()).context("peer forward: no output shape")?;
        if dims.len() != 3 || dims[0] != 1 || dims[1] != 4 + nc {
            bail!("peer `{}` ({variant}): output shape {dims:?}, expected [1, {}, N]", self.cmd, 4 + nc);
        }
        let bytes = std::fs::read(&output).with_context(|| format!("reading {}", output.display()))?;
        if bytes.len() != 4 * dims[1] * dims[2] {
            bail!("peer `{}` ({variant}): {} output bytes for shape {dims:?}", self.cmd, bytes.len());
        }
        self.out.clear();
        self.out.extend(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])));
        Ok((&self.out, dims[2]))
    }

    /// `runs` timed runs of `variant` on `t` (after `warmup`), in ms.
    pub fn bench(&mut self, variant: &str, t: &TensorBuf, runs: usize, warmup: usize) -> anyhow::Result<Vec<f64>> {
        let (input, shape) = self.write_tensor(t, "input.f32")?;
        let v = self.call(json!({"cmd": "bench", "variant": variant, "input": input, "shape": shape, "runs": runs, "warmup": warmup}))?;
        serde_json::from_value(v["ms"].clone()).with_context(|| format!("peer `{}`: bench answer without ms", self.cmd))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let _ = self.stdin.flush();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

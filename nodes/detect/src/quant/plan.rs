//! Which convs run int8 and with which activation quantization.
//!
//! The int8 kernels read every part of a conv's input concatenation in one quantization: each
//! int8 conv gets one `QParams` from the statistics of everything it reads (the merged parts).
//! An int8 conv writes u8 when an int8 conv reads its output, in the finest quantization among
//! its int8 readers (each reader's range covers the values, since they are part of its
//! statistics); a reader in another quantization requantizes that part (a cheap u8 pass), so a
//! tensor is never forced onto the coarser range of a concatenation it also feeds. Without an
//! int8 reader the output is f32 (attention, the head's decode, convs kept in f32).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::{Context, Result};

use super::calibrate::{qparams_for_range, CalibMethod, Hist, INPUT_QPARAMS};
use crate::model::fmap::QParams;
use crate::model::graph::{ConvNode, Src};
use crate::model::YoloModel;

/// Per conv: what it runs and reads in.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvPlan {
    pub input: QParams,
    /// Some: requantized u8 output; None: f32 output.
    pub output: Option<QParams>,
    /// The clipping range the input quantization covers, and the observed one.
    pub clip: (f32, f32),
    pub observed: (f32, f32),
}

/// The int8 convs and their quantization.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub convs: BTreeMap<String, ConvPlan>,
}

/// Plans the convs in `int8` (names) of `graph` from the calibration statistics.
pub fn plan(graph: &[ConvNode], int8: &BTreeSet<String>, stats: &HashMap<String, Hist>, method: CalibMethod) -> Result<Plan> {
    let q_nodes: Vec<&ConvNode> = graph.iter().filter(|n| int8.contains(&n.name)).collect();
    let mut convs = BTreeMap::new();
    for n in &q_nodes {
        let h = stats.get(&n.name).with_context(|| format!("no calibration statistics for conv {} (did it run?)", n.name))?;
        let observed = (h.min, h.max);
        let p = if n.inputs.iter().all(|s| *s == Src::Input) {
            // pixel / 255 is exactly representable: no calibration needed.
            ConvPlan { input: INPUT_QPARAMS, output: None, clip: (0.0, 1.0), observed }
        } else {
            let clip = h.clip_range(method);
            ConvPlan { input: qparams_for_range(clip.0, clip.1), output: None, clip, observed }
        };
        convs.insert(n.name.clone(), p);
    }
    // Each int8 conv's output in its finest int8 reader's quantization.
    let mut finest: HashMap<&str, QParams> = HashMap::new();
    for n in &q_nodes {
        let qp = convs[&n.name].input;
        for s in &n.inputs {
            if let Src::Conv(p) = s {
                let e = finest.entry(p.as_str()).or_insert(qp);
                if qp.scale < e.scale {
                    *e = qp;
                }
            }
        }
    }
    for (name, p) in convs.iter_mut() {
        p.output = finest.get(name.as_str()).copied();
    }
    Ok(Plan { convs })
}

/// A copy of the float `model` with the planned convs in int8.
pub fn apply(model: &YoloModel, plan: &Plan, weight_range: i8) -> Result<YoloModel> {
    model.map_convs(&mut |c| match plan.convs.get(c.name()) {
        Some(p) => c.to_int8(p.input, p.output, weight_range),
        None => Ok(c.clone()),
    })
}

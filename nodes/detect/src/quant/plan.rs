//! Which convs run int8 and with which activation quantization.
//!
//! The int8 kernels read every part of a conv's input concatenation in one quantization, so all
//! tensors one int8 conv reads together form a group with one `QParams` (union-find: a tensor
//! read by two convs joins both groups). A group's statistics are the merged input statistics of
//! the int8 convs that read it. An int8 conv writes u8 in its output's group quantization when
//! an int8 conv reads that output, and f32 otherwise (float consumers: attention, the head's
//! decode, convs kept in f32).

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

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Plans the convs in `int8` (names) of `graph` from the calibration statistics.
pub fn plan(graph: &[ConvNode], int8: &BTreeSet<String>, stats: &HashMap<String, Hist>, method: CalibMethod) -> Result<Plan> {
    // Index the tensors the int8 convs read, and union each conv's parts.
    let mut ids: HashMap<Src, usize> = HashMap::new();
    let mut parent: Vec<usize> = Vec::new();
    let id_of = |s: &Src, parent: &mut Vec<usize>, ids: &mut HashMap<Src, usize>| -> usize {
        *ids.entry(s.clone()).or_insert_with(|| {
            parent.push(parent.len());
            parent.len() - 1
        })
    };
    let q_nodes: Vec<&ConvNode> = graph.iter().filter(|n| int8.contains(&n.name)).collect();
    for n in &q_nodes {
        let first = id_of(&n.inputs[0], &mut parent, &mut ids);
        for s in &n.inputs[1..] {
            let i = id_of(s, &mut parent, &mut ids);
            let (a, b) = (find(&mut parent, first), find(&mut parent, i));
            parent[b] = a;
        }
    }
    // Merge the consumers' statistics per group.
    let mut group_hist: HashMap<usize, Hist> = HashMap::new();
    let mut group_only_input: HashMap<usize, bool> = HashMap::new();
    for n in &q_nodes {
        let g = find(&mut parent, ids[&n.inputs[0]]);
        let h = stats.get(&n.name).with_context(|| format!("no calibration statistics for conv {} (did it run?)", n.name))?;
        group_hist.entry(g).or_default().merge(h);
        let only = group_only_input.entry(g).or_insert(true);
        *only &= n.inputs.iter().all(|s| *s == Src::Input);
    }
    let mut group_qp: HashMap<usize, (QParams, (f32, f32), (f32, f32))> = HashMap::new();
    for (&g, h) in &group_hist {
        let observed = (h.min, h.max);
        let entry = if group_only_input[&g] {
            // pixel / 255 is exactly representable: no calibration needed.
            (INPUT_QPARAMS, (0.0, 1.0), observed)
        } else {
            let clip = h.clip_range(method);
            (qparams_for_range(clip.0, clip.1), clip, observed)
        };
        group_qp.insert(g, entry);
    }
    let mut convs = BTreeMap::new();
    for n in &q_nodes {
        let g = find(&mut parent, ids[&n.inputs[0]]);
        let (input, clip, observed) = group_qp[&g];
        // An int8 conv reads this conv's output: write u8 in that group's quantization.
        let out = Src::Conv(n.name.clone());
        let output = ids.get(&out).map(|&i| group_qp[&find(&mut parent, i)].0);
        convs.insert(n.name.clone(), ConvPlan { input, output, clip, observed });
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

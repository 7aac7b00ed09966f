//! Optimal bipartite assignment over sparse candidate edges, on top of `pathfinding`'s
//! Kuhn–Munkres (integer weights, so results are exact and deterministic).
//!
//! Tracking and MOT evaluation both solve assignment problems where most pairs are impossible
//! (boxes that do not overlap). The edges are split into connected components first and each
//! component is solved on its own: the optimum is the same, and a scene of 100 well separated
//! objects costs 100 tiny problems instead of one 100x100 O(n^3) one.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;

/// Fixed-point scale for turning float costs in [0, 1] into integer weights (1e-9 resolution).
pub const SCALE: f64 = 1e9;

/// A candidate pairing of row `row` with column `col`, worth `weight` (higher is better, > 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Edge {
    pub row: usize,
    pub col: usize,
    pub weight: i64,
}

/// Reusable buffers for [`max_weight_matching`], so a tracker does not allocate per frame for the
/// bookkeeping (the per-component matrices still come from `pathfinding`).
#[derive(Debug, Default)]
pub struct Assigner {
    parent: Vec<usize>,
    comp_edges: Vec<Vec<usize>>,
    comp_of_root: Vec<usize>,
    local_row: Vec<usize>,
    local_col: Vec<usize>,
    rows_of: Vec<usize>,
    cols_of: Vec<usize>,
}

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

impl Assigner {
    /// Maximum-weight matching restricted to `edges` (pairs not listed cannot be matched).
    /// Returns the matched `(row, col)` pairs sorted by row. Edges with weight <= 0 are ignored.
    pub fn max_weight_matching(
        &mut self,
        n_rows: usize,
        n_cols: usize,
        edges: &[Edge],
        out: &mut Vec<(usize, usize)>,
    ) {
        out.clear();
        let n = n_rows + n_cols;
        self.parent.clear();
        self.parent.extend(0..n);
        for e in edges.iter().filter(|e| e.weight > 0) {
            debug_assert!(e.row < n_rows && e.col < n_cols);
            let a = find(&mut self.parent, e.row);
            let b = find(&mut self.parent, n_rows + e.col);
            if a != b {
                self.parent[a] = b;
            }
        }
        // Group edges by component root.
        self.comp_of_root.clear();
        self.comp_of_root.resize(n, usize::MAX);
        let mut n_comps = 0;
        for (k, e) in edges.iter().enumerate().filter(|(_, e)| e.weight > 0) {
            let root = find(&mut self.parent, e.row);
            if self.comp_of_root[root] == usize::MAX {
                self.comp_of_root[root] = n_comps;
                if self.comp_edges.len() <= n_comps {
                    self.comp_edges.push(Vec::new());
                }
                self.comp_edges[n_comps].clear();
                n_comps += 1;
            }
            self.comp_edges[self.comp_of_root[root]].push(k);
        }
        self.local_row.clear();
        self.local_row.resize(n_rows, usize::MAX);
        self.local_col.clear();
        self.local_col.resize(n_cols, usize::MAX);
        for c in 0..n_comps {
            let ids = &self.comp_edges[c];
            if ids.len() == 1 {
                let e = edges[ids[0]];
                out.push((e.row, e.col));
                continue;
            }
            self.rows_of.clear();
            self.cols_of.clear();
            for &k in ids {
                let e = edges[k];
                if self.local_row[e.row] == usize::MAX {
                    self.local_row[e.row] = self.rows_of.len();
                    self.rows_of.push(e.row);
                }
                if self.local_col[e.col] == usize::MAX {
                    self.local_col[e.col] = self.cols_of.len();
                    self.cols_of.push(e.col);
                }
            }
            let (r, cc) = (self.rows_of.len(), self.cols_of.len());
            // kuhn_munkres needs rows <= columns: transpose when needed.
            let transpose = r > cc;
            let (mr, mc) = if transpose { (cc, r) } else { (r, cc) };
            let mut m = Matrix::new(mr, mc, 0i64);
            for &k in ids {
                let e = edges[k];
                let (lr, lc) = (self.local_row[e.row], self.local_col[e.col]);
                let (i, j) = if transpose { (lc, lr) } else { (lr, lc) };
                m[(i, j)] = e.weight;
            }
            let (_, assignment) = kuhn_munkres(&m);
            for (i, &j) in assignment.iter().enumerate() {
                if m[(i, j)] <= 0 {
                    continue; // a filler pair, not a real edge
                }
                let (lr, lc) = if transpose { (j, i) } else { (i, j) };
                out.push((self.rows_of[lr], self.cols_of[lc]));
            }
            for &row in &self.rows_of {
                self.local_row[row] = usize::MAX;
            }
            for &col in &self.cols_of {
                self.local_col[col] = usize::MAX;
            }
        }
        out.sort_unstable();
    }
}

/// Weight for "minimise the summed cost of matched pairs, each with cost <= `limit`; leaving a
/// pair unmatched is neutral" (what `lap.lapjv(cost, extend_cost=True, cost_limit=limit)` solves in
/// ByteTrack/Ultralytics): maximising `limit - cost` over the allowed pairs is the same problem.
pub fn limit_weight(cost: f64, limit: f64) -> Option<i64> {
    if cost.is_finite() && cost <= limit {
        Some((((limit - cost) * SCALE).round() as i64).max(1))
    } else {
        None
    }
}

/// Weights for "as many pairs as possible, then the least summed cost" (motmetrics' and
/// CLEAR MOT's matching). `costs` in [0, max_cost]; `n` bounds the number of pairs in the problem.
/// Any matching with one more pair outweighs every matching with fewer: B > (n + 1) * C.
pub fn cardinality_weight(cost: f64, max_cost: f64, n: usize) -> i64 {
    let c = (cost * SCALE).round() as i64;
    let cmax = (max_cost * SCALE).ceil() as i64;
    let big = (n as i64 + 1) * cmax + 1;
    big - c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute(n_rows: usize, n_cols: usize, edges: &[Edge]) -> i64 {
        // best total weight by exhaustive search over rows
        fn go(r: usize, n_rows: usize, used: &mut Vec<bool>, edges: &[Edge]) -> i64 {
            if r == n_rows {
                return 0;
            }
            let mut best = go(r + 1, n_rows, used, edges);
            for e in edges.iter().filter(|e| e.row == r && e.weight > 0) {
                if !used[e.col] {
                    used[e.col] = true;
                    best = best.max(e.weight + go(r + 1, n_rows, used, edges));
                    used[e.col] = false;
                }
            }
            best
        }
        go(0, n_rows, &mut vec![false; n_cols], edges)
    }

    #[test]
    fn matches_exhaustive_search_on_random_sparse_problems() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut a = Assigner::default();
        let mut out = Vec::new();
        for _ in 0..300 {
            let n_rows = rng.random_range(0..7);
            let n_cols = rng.random_range(0..7);
            let mut edges = Vec::new();
            for r in 0..n_rows {
                for c in 0..n_cols {
                    if rng.random_bool(0.35) {
                        edges.push(Edge {
                            row: r,
                            col: c,
                            weight: rng.random_range(1..100),
                        });
                    }
                }
            }
            a.max_weight_matching(n_rows, n_cols, &edges, &mut out);
            let total: i64 = out
                .iter()
                .map(|&(r, c)| {
                    edges
                        .iter()
                        .find(|e| e.row == r && e.col == c)
                        .unwrap()
                        .weight
                })
                .sum();
            assert_eq!(total, brute(n_rows, n_cols, &edges));
            let mut rows: Vec<_> = out.iter().map(|p| p.0).collect();
            let mut cols: Vec<_> = out.iter().map(|p| p.1).collect();
            rows.dedup();
            cols.sort_unstable();
            cols.dedup();
            assert_eq!(rows.len(), out.len());
            assert_eq!(cols.len(), out.len());
        }
    }

    #[test]
    fn cardinality_weight_prefers_more_pairs() {
        // Two rows, two cols: pairing (0,0) alone is cheap, but the two-pair matching must win.
        let n = 2;
        let edges = [
            Edge {
                row: 0,
                col: 0,
                weight: cardinality_weight(0.0, 0.5, n),
            },
            Edge {
                row: 0,
                col: 1,
                weight: cardinality_weight(0.5, 0.5, n),
            },
            Edge {
                row: 1,
                col: 0,
                weight: cardinality_weight(0.5, 0.5, n),
            },
        ];
        let mut out = Vec::new();
        Assigner::default().max_weight_matching(2, 2, &edges, &mut out);
        assert_eq!(out, vec![(0, 1), (1, 0)]);
    }
}

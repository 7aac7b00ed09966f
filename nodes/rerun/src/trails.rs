//! Short histories of track centres, drawn as `LineStrips2D` behind the boxes.

use std::collections::{HashMap, VecDeque};

/// The last `len` centres of every track seen within the last `len` frames.
#[derive(Debug, Default)]
pub struct Trails {
    len: usize,
    tracks: HashMap<u64, Trail>,
}

#[derive(Debug)]
struct Trail {
    points: VecDeque<[f32; 2]>,
    last_seq: u64,
}

impl Trails {
    pub fn new(len: usize) -> Self {
        Self { len, tracks: HashMap::new() }
    }

    /// Add this frame's track centres and forget tracks not seen for `len` frames.
    pub fn update(&mut self, seq: u64, centres: impl IntoIterator<Item = (u64, [f32; 2])>) {
        if self.len == 0 {
            return;
        }
        for (id, p) in centres {
            let t = self
                .tracks
                .entry(id)
                .or_insert_with(|| Trail { points: VecDeque::with_capacity(self.len), last_seq: seq });
            if t.points.len() == self.len {
                t.points.pop_front();
            }
            t.points.push_back(p);
            t.last_seq = seq;
        }
        let len = self.len as u64;
        self.tracks.retain(|_, t| t.last_seq + len > seq);
    }

    /// Trails with at least two points, ordered by track id (stable colours and test output).
    pub fn strips(&self) -> Vec<(u64, Vec<[f32; 2]>)> {
        let mut out: Vec<_> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.points.len() >= 2)
            .map(|(&id, t)| (id, t.points.iter().copied().collect()))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }
}

/// A distinct, stable colour per track id (golden-ratio hue walk, full saturation).
pub fn track_color(id: u64) -> [u8; 3] {
    let h = (id as f64 * 0.618_033_988_75).fract() * 6.0;
    let (s, v) = (0.85, 0.95);
    let c = v * s;
    let x = c * (1.0 - ((h % 2.0) - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let to = |f: f64| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    [to(r), to(g), to(b)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_len_points_and_forgets_lost_tracks() {
        let mut t = Trails::new(3);
        for seq in 0..5u64 {
            t.update(seq, [(7, [seq as f32, 0.0])]);
        }
        t.update(5, [(9, [1.0, 1.0])]);
        assert_eq!(t.strips(), vec![(7, vec![[2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])]);
        // Track 7 was last seen at seq 4: still kept at 6, gone at 7.
        t.update(6, [(9, [2.0, 2.0])]);
        assert_eq!(t.strips().len(), 2);
        t.update(7, [(9, [3.0, 3.0])]);
        assert_eq!(t.strips(), vec![(9, vec![[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])]);
    }

    #[test]
    fn zero_len_means_no_trails() {
        let mut t = Trails::new(0);
        t.update(0, [(1, [0.0, 0.0])]);
        t.update(1, [(1, [1.0, 0.0])]);
        assert!(t.strips().is_empty());
    }

    #[test]
    fn colours_differ_between_neighbouring_ids() {
        let cs: Vec<_> = (1..=8).map(track_color).collect();
        for w in cs.windows(2) {
            assert_ne!(w[0], w[1]);
        }
    }
}

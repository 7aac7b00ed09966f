//! Sampling positions of OpenCV's `resize(..., INTER_LINEAR)`, which Ultralytics' LetterBox uses.
//!
//! Output sample `d` of an axis resized from `n` to `m` samples sits at source coordinate
//! `s = (d + 0.5) * n / m - 0.5` (half-pixel centres). With `i = floor(s)` and `f = s - i` it blends
//! samples `i` and `i + 1` as `a + f * (b - a)`; at the borders OpenCV clamps: `s < 0` reads sample 0
//! only, `i >= n - 1` reads sample `n - 1` only. No antialiasing when shrinking (exactly like
//! `INTER_LINEAR`, and therefore like the images the model was trained and validated on).

/// One output sample of a resized axis: blend source samples `i0` and `i1` with weight `f` on `i1`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tap {
    pub i0: u32,
    pub i1: u32,
    pub f: f32,
}

/// The tap of output sample `d` when an axis of `n` source samples is resized to `m`.
pub fn tap(d: u32, n: u32, m: u32) -> Tap {
    debug_assert!(n > 0 && m > 0 && d < m);
    let scale = n as f64 / m as f64;
    let s = ((d as f64 + 0.5) * scale - 0.5) as f32;
    let fl = s.floor();
    let (mut i, mut f) = (fl as i64, s - fl);
    if i < 0 {
        i = 0;
        f = 0.0;
    }
    if i >= n as i64 - 1 {
        i = n as i64 - 1;
        f = 0.0;
    }
    let i0 = i as u32;
    Tap { i0, i1: (i0 + 1).min(n - 1), f }
}

/// All taps of an axis, into `out` (keeps its capacity).
pub fn taps_into(n: u32, m: u32, out: &mut Vec<Tap>) {
    out.clear();
    out.extend((0..m).map(|d| tap(d, n, m)));
}

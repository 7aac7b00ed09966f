//! A deterministic, seamlessly looping scene for the tracker benchmarks: `n` boxes on a grid over a
//! 1920x1080 image, each swaying on its own phase (so the loop has no jump), with a little
//! deterministic jitter, 1 in 8 detections at a low score, 1 in 50 missed.

use perch_track::Det;

pub const PERIOD: usize = 240;

pub fn scene(n: usize) -> Vec<Vec<Det>> {
    let cols = (n as f64 * 16.0 / 9.0).sqrt().ceil() as usize;
    let rows = n.div_ceil(cols);
    let (cw, ch) = (1920.0 / cols as f64, 1080.0 / rows as f64);
    let (bw, bh) = (cw * 0.4, ch * 0.6);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move || {
        // xorshift64*: deterministic noise without a dependency
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..PERIOD)
        .map(|f| {
            let mut dets = Vec::with_capacity(n);
            for i in 0..n {
                let (r, c) = (i / cols, i % cols);
                let phase =
                    2.0 * std::f64::consts::PI * (f as f64 / PERIOD as f64 + i as f64 * 0.37);
                let x = c as f64 * cw + 0.3 * cw + 0.25 * cw * phase.sin();
                let y = r as f64 * ch + 0.2 * ch + 0.1 * ch * phase.cos();
                let (jx, jy, miss, low) = (rnd() - 0.5, rnd() - 0.5, rnd(), rnd());
                if miss < 0.02 {
                    continue;
                }
                let score = if low < 0.125 { 0.18 } else { 0.9 };
                dets.push(Det {
                    xyxy: [x + jx, y + jy, x + bw + jx, y + bh + jy],
                    score,
                    class_id: 0,
                });
            }
            dets
        })
        .collect()
}

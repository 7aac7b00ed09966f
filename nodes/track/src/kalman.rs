//! Constant-velocity Kalman filter over `(cx, cy, a, h)` — box centre, aspect ratio w/h, height —
//! and their velocities, with ByteTrack's (DeepSORT's) noise model: the standard deviations scale
//! with the box height (1/20 of it for position, 1/160 for velocity).
//!
//! The motion matrix is `[[I, I], [0, I]]` and the measurement matrix `[I, 0]`, so prediction and
//! update are written blockwise (additions and a 4x4 solve) instead of full 8x8 products.

use nalgebra::{Matrix4, SMatrix, Vector4};

pub type Mean = SMatrix<f64, 8, 1>;
pub type Cov = SMatrix<f64, 8, 8>;

const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

/// State of one track's filter.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KalmanState {
    pub mean: Mean,
    pub cov: Cov,
}

/// `[cx, cy, w/h, h]` of a box given by its corners.
pub fn xyah_from_xyxy(b: [f64; 4]) -> [f64; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    [b[0] + 0.5 * w, b[1] + 0.5 * h, w / h, h]
}

/// Corners `[x1, y1, x2, y2]` of the box a state's mean describes.
pub fn xyxy_from_mean(m: &Mean) -> [f64; 4] {
    let h = m[3];
    let w = m[2] * h;
    [
        m[0] - 0.5 * w,
        m[1] - 0.5 * h,
        m[0] + 0.5 * w,
        m[1] + 0.5 * h,
    ]
}

impl KalmanState {
    /// A new track at measurement `z` (xyah) with zero velocity and ByteTrack's initial uncertainty.
    pub fn initiate(z: [f64; 4]) -> Self {
        let mut mean = Mean::zeros();
        for k in 0..4 {
            mean[k] = z[k];
        }
        let h = z[3];
        let std = [
            2.0 * STD_WEIGHT_POSITION * h,
            2.0 * STD_WEIGHT_POSITION * h,
            1e-2,
            2.0 * STD_WEIGHT_POSITION * h,
            10.0 * STD_WEIGHT_VELOCITY * h,
            10.0 * STD_WEIGHT_VELOCITY * h,
            1e-5,
            10.0 * STD_WEIGHT_VELOCITY * h,
        ];
        let mut cov = Cov::zeros();
        for k in 0..8 {
            cov[(k, k)] = std[k] * std[k];
        }
        Self { mean, cov }
    }

    /// One frame forward: `x = F x`, `P = F P F' + Q`.
    pub fn predict(&mut self) {
        let h = self.mean[3];
        for k in 0..4 {
            self.mean[k] += self.mean[k + 4];
        }
        // P = [[A, B], [B', C]]  ->  F P F' = [[A + B + B' + C, B + C], [B' + C, C]]
        let a = self.cov.fixed_view::<4, 4>(0, 0).into_owned();
        let b = self.cov.fixed_view::<4, 4>(0, 4).into_owned();
        let c = self.cov.fixed_view::<4, 4>(4, 4).into_owned();
        let bc = b + c;
        let new_a = a + b + b.transpose() + c;
        self.cov.fixed_view_mut::<4, 4>(0, 0).copy_from(&new_a);
        self.cov.fixed_view_mut::<4, 4>(0, 4).copy_from(&bc);
        self.cov
            .fixed_view_mut::<4, 4>(4, 0)
            .copy_from(&bc.transpose());
        let qp = [
            STD_WEIGHT_POSITION * h,
            STD_WEIGHT_POSITION * h,
            1e-2,
            STD_WEIGHT_POSITION * h,
        ];
        let qv = [
            STD_WEIGHT_VELOCITY * h,
            STD_WEIGHT_VELOCITY * h,
            1e-5,
            STD_WEIGHT_VELOCITY * h,
        ];
        for k in 0..4 {
            self.cov[(k, k)] += qp[k] * qp[k];
            self.cov[(k + 4, k + 4)] += qv[k] * qv[k];
        }
    }

    /// Correct with measurement `z` (xyah). Returns false (state unchanged) if the innovation
    /// covariance is not positive definite, which only happens with degenerate input.
    pub fn update(&mut self, z: [f64; 4]) -> bool {
        let h = self.mean[3];
        let r = [
            STD_WEIGHT_POSITION * h,
            STD_WEIGHT_POSITION * h,
            1e-1,
            STD_WEIGHT_POSITION * h,
        ];
        let mut s: Matrix4<f64> = self.cov.fixed_view::<4, 4>(0, 0).into_owned();
        for k in 0..4 {
            s[(k, k)] += r[k] * r[k];
        }
        let Some(chol) = s.cholesky() else {
            return false;
        };
        // K = P H' S^-1, with P H' = the first four columns of P.
        let pht = self.cov.fixed_view::<8, 4>(0, 0).into_owned();
        let k = chol.solve(&pht.transpose()).transpose(); // 8x4
        let innovation = Vector4::new(
            z[0] - self.mean[0],
            z[1] - self.mean[1],
            z[2] - self.mean[2],
            z[3] - self.mean[3],
        );
        self.mean += k * innovation;
        // P -= K S K' = K (P H')'
        self.cov -= k * pht.transpose();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook form with full matrices, to check the blockwise one.
    fn reference_step(st: &KalmanState, z: [f64; 4]) -> KalmanState {
        let mut f = Cov::identity();
        for k in 0..4 {
            f[(k, k + 4)] = 1.0;
        }
        let h = st.mean[3];
        let mut q = Cov::zeros();
        let qd = [
            STD_WEIGHT_POSITION * h,
            STD_WEIGHT_POSITION * h,
            1e-2,
            STD_WEIGHT_POSITION * h,
            STD_WEIGHT_VELOCITY * h,
            STD_WEIGHT_VELOCITY * h,
            1e-5,
            STD_WEIGHT_VELOCITY * h,
        ];
        for k in 0..8 {
            q[(k, k)] = qd[k] * qd[k];
        }
        let mean = f * st.mean;
        let cov = f * st.cov * f.transpose() + q;
        let hm = SMatrix::<f64, 4, 8>::from_fn(|i, j| if i == j { 1.0 } else { 0.0 });
        let hh = mean[3];
        let rd = [
            STD_WEIGHT_POSITION * hh,
            STD_WEIGHT_POSITION * hh,
            1e-1,
            STD_WEIGHT_POSITION * hh,
        ];
        let r = Matrix4::from_diagonal(&Vector4::from_fn(|k, _| rd[k] * rd[k]));
        let s = hm * cov * hm.transpose() + r;
        let k = cov * hm.transpose() * s.try_inverse().unwrap();
        let zv = Vector4::from_column_slice(&z);
        KalmanState {
            mean: mean + k * (zv - hm * mean),
            cov: cov - k * s * k.transpose(),
        }
    }

    #[test]
    fn blockwise_matches_full_matrices() {
        let mut st = KalmanState::initiate([100.0, 50.0, 0.5, 80.0]);
        let mut reference = st;
        for t in 1..20 {
            let z = [
                100.0 + 3.0 * t as f64,
                50.0 - 1.0 * t as f64,
                0.5 + 0.001 * t as f64,
                80.0 + 0.5 * t as f64,
            ];
            reference = reference_step(&reference, z);
            st.predict();
            assert!(st.update(z));
            let dm = (st.mean - reference.mean).abs().max();
            let dc = (st.cov - reference.cov).abs().max();
            assert!(
                dm < 1e-9 && dc < 1e-9,
                "step {t}: mean diff {dm}, cov diff {dc}"
            );
        }
        // It has learned the velocity.
        assert!(
            (st.mean[4] - 3.0).abs() < 0.2 && (st.mean[5] + 1.0).abs() < 0.2,
            "{:?}",
            st.mean
        );
    }

    #[test]
    fn box_conversions_round_trip() {
        let b = [10.0, 20.0, 50.0, 100.0];
        let z = xyah_from_xyxy(b);
        let st = KalmanState::initiate(z);
        let back = xyxy_from_mean(&st.mean);
        for k in 0..4 {
            assert!((back[k] - b[k]).abs() < 1e-12);
        }
    }
}

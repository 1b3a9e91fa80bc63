//! Flow matching: the straight probability path and the ODE solvers that integrate a learned
//! velocity field from t = 0 (prior) to t = 1 (data).

pub mod solver;

pub use solver::{AdaptiveOptions, Solution, Solver, VelocityField, solve_adaptive, time_grid};

use burn::prelude::*;

/// A point on the straight path x_t = (1 - t) x0 + t x1, with t given per batch row.
pub fn path_point<B: Backend>(x0: Tensor<B, 4>, x1: Tensor<B, 4>, t: Tensor<B, 1>) -> Tensor<B, 4> {
    let n = t.dims()[0];
    let t = t.reshape([n, 1, 1, 1]);
    x0.clone() + (x1 - x0) * t
}

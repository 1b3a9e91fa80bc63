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

/// Smallest 1 - t a data-predicting network's velocity divides by: near t = 1 the division
/// would otherwise amplify the network's error without bound.
const DATA_PREDICTION_MIN_GAP: f32 = 0.05;

/// The velocity of the straight path through x_t that ends at `x1_hat`: (x1_hat - x_t) / (1 - t),
/// with 1 - t clamped at 0.05 (`DATA_PREDICTION_MIN_GAP`); t per batch row. Exact for x1_hat = x1
/// wherever 1 - t >= the clamp.
pub fn velocity_from_data<B: Backend>(x1_hat: Tensor<B, 4>, xt: Tensor<B, 4>, t: Tensor<B, 1>) -> Tensor<B, 4> {
    let n = t.dims()[0];
    let gap = t.neg().add_scalar(1.0).clamp_min(DATA_PREDICTION_MIN_GAP).reshape([n, 1, 1, 1]);
    (x1_hat - xt) / gap
}

/// The velocity a network's output stands for under `prediction`.
pub fn output_to_velocity<B: Backend>(
    prediction: crate::config::Prediction,
    out: Tensor<B, 4>,
    xt: Tensor<B, 4>,
    t: Tensor<B, 1>,
) -> Tensor<B, 4> {
    match prediction {
        crate::config::Prediction::Velocity => out,
        crate::config::Prediction::Data => velocity_from_data(out, xt, t),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = crate::CpuBackend;

    #[test]
    fn data_prediction_of_the_true_endpoint_gives_the_path_velocity() {
        let dev = Default::default();
        let x0 = Tensor::<B, 4>::random([3, 2, 4, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let x1 = Tensor::<B, 4>::random([3, 2, 4, 4], burn::tensor::Distribution::Normal(0.0, 1.0), &dev);
        let t = Tensor::<B, 1>::from_floats([0.0, 0.5, 0.9], &dev);
        let xt = path_point(x0.clone(), x1.clone(), t.clone());
        let v = velocity_from_data(x1.clone(), xt, t);
        let err: f32 = (v - (x1 - x0)).abs().max().into_scalar();
        assert!(err < 1e-5, "{err}");
        // Past the clamp the division stops growing: at t = 1 the gap is 0.05, not 0.
        let t1 = Tensor::<B, 1>::from_floats([1.0], &dev);
        let x = Tensor::<B, 4>::zeros([1, 1, 1, 1], &dev);
        let v = velocity_from_data(x.clone().add_scalar(1.0), x, t1);
        assert!((v.into_scalar() - 20.0).abs() < 1e-4);
    }
}

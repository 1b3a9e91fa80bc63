//! Fixed-grid ODE solvers (Euler, Midpoint, Heun, RK4) and an adaptive Dormand-Prince 5(4),
//! all written as backend tensor ops so they run wherever the velocity network runs.
//! Every solver counts its network function evaluations (NFE): the cost measure of the method.

use burn::prelude::*;
use burn::tensor::ElementConversion;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A velocity field v(x, t) to integrate from t = 0 to t = 1.
pub trait VelocityField<B: Backend, const D: usize> {
    fn velocity(&self, x: Tensor<B, D>, t: f32) -> Tensor<B, D>;
}

impl<B: Backend, const D: usize, F: Fn(Tensor<B, D>, f32) -> Tensor<B, D>> VelocityField<B, D> for F {
    fn velocity(&self, x: Tensor<B, D>, t: f32) -> Tensor<B, D> {
        self(x, t)
    }
}

/// Fixed-grid solvers; `steps` grid intervals cost `steps * evals_per_step()` NFE.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    Euler,
    Midpoint,
    Heun,
    Rk4,
}

/// The result of a solve: the state at t = 1 and how many network evaluations it took.
#[derive(Debug, Clone)]
pub struct Solution<B: Backend, const D: usize> {
    pub x: Tensor<B, D>,
    pub nfe: usize,
}

/// Called after every step with (step index from 1, total steps, time reached, state); returns
/// the state to continue from (inpainting re-imposes known pixels here) or an error to stop
/// (cancellation).
pub type StepHook<'a, B, const D: usize> = dyn FnMut(usize, usize, f32, Tensor<B, D>) -> Result<Tensor<B, D>> + 'a;

pub const ALL_SOLVERS: [Solver; 4] = [Solver::Euler, Solver::Midpoint, Solver::Heun, Solver::Rk4];

impl Solver {
    pub fn evals_per_step(self) -> usize {
        match self {
            Solver::Euler => 1,
            Solver::Midpoint | Solver::Heun => 2,
            Solver::Rk4 => 4,
        }
    }

    /// Global order of accuracy.
    pub fn order(self) -> usize {
        self.evals_per_step().min(4)
    }

    pub fn name(self) -> &'static str {
        match self {
            Solver::Euler => "euler",
            Solver::Midpoint => "midpoint",
            Solver::Heun => "heun",
            Solver::Rk4 => "rk4",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        ALL_SOLVERS
            .into_iter()
            .find(|v| v.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| Error::InvalidArgument(format!("unknown solver '{s}' (euler, midpoint, heun, rk4)")))
    }

    /// One step of size h from (x, t).
    pub fn step<B: Backend, const D: usize>(
        self,
        f: &impl VelocityField<B, D>,
        x: Tensor<B, D>,
        t: f32,
        h: f32,
    ) -> Tensor<B, D> {
        match self {
            Solver::Euler => x.clone() + f.velocity(x, t) * h,
            Solver::Midpoint => {
                let k1 = f.velocity(x.clone(), t);
                let mid = x.clone() + k1 * (0.5 * h);
                x + f.velocity(mid, t + 0.5 * h) * h
            }
            Solver::Heun => {
                let k1 = f.velocity(x.clone(), t);
                let pred = x.clone() + k1.clone() * h;
                let k2 = f.velocity(pred, t + h);
                x + (k1 + k2) * (0.5 * h)
            }
            Solver::Rk4 => {
                let k1 = f.velocity(x.clone(), t);
                let k2 = f.velocity(x.clone() + k1.clone() * (0.5 * h), t + 0.5 * h);
                let k3 = f.velocity(x.clone() + k2.clone() * (0.5 * h), t + 0.5 * h);
                let k4 = f.velocity(x.clone() + k3.clone() * h, t + h);
                x + (k1 + (k2 + k3) * 2.0 + k4) * (h / 6.0)
            }
        }
    }

    /// Integrates from t = 0 to t = 1 on `steps` equal intervals.
    pub fn solve<B: Backend, const D: usize>(
        self,
        f: &impl VelocityField<B, D>,
        x0: Tensor<B, D>,
        steps: usize,
        hook: &mut StepHook<'_, B, D>,
    ) -> Result<Solution<B, D>> {
        self.solve_shifted(f, x0, steps, 1.0, hook)
    }

    /// Integrates from t = 0 to t = 1 on the grid [`time_grid`]`(steps, shift)`.
    pub fn solve_shifted<B: Backend, const D: usize>(
        self,
        f: &impl VelocityField<B, D>,
        x0: Tensor<B, D>,
        steps: usize,
        shift: f32,
        hook: &mut StepHook<'_, B, D>,
    ) -> Result<Solution<B, D>> {
        self.solve_from(f, x0, 0.0, steps, shift, hook)
    }

    /// Integrates from t = `start` (in [0, 1)) to t = 1: the grid [`time_grid`]`(steps, shift)`
    /// mapped onto [start, 1] (start + (1 - start) t), so `steps` intervals cover what is left.
    pub fn solve_from<B: Backend, const D: usize>(
        self,
        f: &impl VelocityField<B, D>,
        x0: Tensor<B, D>,
        start: f32,
        steps: usize,
        shift: f32,
        hook: &mut StepHook<'_, B, D>,
    ) -> Result<Solution<B, D>> {
        if steps == 0 {
            return Err(Error::InvalidArgument("steps must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&start) {
            return Err(Error::InvalidArgument(format!("the start time must be in [0, 1), got {start}")));
        }
        let mut grid = time_grid(steps, shift)?;
        if start > 0.0 {
            for t in &mut grid[..steps] {
                *t = start + (1.0 - start) * *t;
            }
        }
        // Equal steps from 0 take exactly h each, as before the shift existed (grid differences
        // can be an ulp off), so unshifted results stay bit for bit what they were.
        let h = 1.0 / steps as f32;
        let mut x = x0;
        for k in 0..steps {
            let dt = if shift == 1.0 && start == 0.0 { h } else { grid[k + 1] - grid[k] };
            x = self.step(f, x, grid[k], dt);
            x = hook(k + 1, steps, grid[k + 1], x)?;
        }
        Ok(Solution { x, nfe: steps * self.evals_per_step() })
    }
}

/// The `steps + 1` times of a fixed solver grid from 0 (the prior) to exactly 1 (the data).
///
/// `shift` 1 gives equal intervals. Otherwise the grid is uniform in the distance from the data,
/// sigma = 1 - t, remapped as sigma' = shift * sigma / (1 + (shift - 1) * sigma) (the timestep
/// shift of Stable Diffusion 3): `shift` > 1 takes shorter steps near the prior, where a
/// Gaussian-prior flow turns fastest, and longer ones near the data; `shift` < 1 the reverse.
pub fn time_grid(steps: usize, shift: f32) -> Result<Vec<f32>> {
    if !shift.is_finite() || shift <= 0.0 {
        return Err(Error::InvalidArgument(format!("time shift must be finite and > 0, got {shift}")));
    }
    let h = 1.0 / steps as f32;
    Ok((0..=steps)
        .map(|k| {
            if k == steps {
                1.0
            } else if k == 0 {
                0.0
            } else if shift == 1.0 {
                // Exactly k*h, as before the shift existed.
                k as f32 * h
            } else {
                let sigma = 1.0 - k as f32 * h;
                1.0 - shift * sigma / (1.0 + (shift - 1.0) * sigma)
            }
        })
        .collect())
}

impl std::fmt::Display for Solver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Tolerances and limits of the adaptive solver.
#[derive(Clone, Copy, Debug)]
pub struct AdaptiveOptions {
    pub rtol: f32,
    pub atol: f32,
    /// Stop with an error rather than loop forever on a stiff field.
    pub max_nfe: usize,
    pub initial_step: f32,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        Self { rtol: 1e-3, atol: 1e-3, max_nfe: 2000, initial_step: 0.1 }
    }
}

/// Dormand-Prince 5(4) with first-same-as-last and standard step-size control on the RMS of
/// the scaled error estimate. Returns the solution at t = 1 and its NFE.
pub fn solve_adaptive<B: Backend, const D: usize>(
    f: &impl VelocityField<B, D>,
    x0: Tensor<B, D>,
    opts: AdaptiveOptions,
) -> Result<Solution<B, D>> {
    if !(opts.rtol > 0.0 && opts.atol > 0.0 && opts.initial_step > 0.0) {
        return Err(Error::InvalidArgument("adaptive solver: tolerances and initial step must be > 0".into()));
    }
    const C: [f32; 6] = [1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
    const A2: [f32; 1] = [1.0 / 5.0];
    const A3: [f32; 2] = [3.0 / 40.0, 9.0 / 40.0];
    const A4: [f32; 3] = [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0];
    const A5: [f32; 4] = [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0];
    const A6: [f32; 5] = [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0];
    const B5: [f32; 6] = [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0];
    // Difference between the 5th- and embedded 4th-order weights (7 stages, FSAL).
    const E: [f32; 7] =
        [71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0];
    let comb = |x: &Tensor<B, D>, h: f32, a: &[f32], k: &[Tensor<B, D>]| {
        let mut acc = x.clone();
        for (ai, ki) in a.iter().zip(k) {
            if *ai != 0.0 {
                acc = acc + ki.clone() * (h * ai);
            }
        }
        acc
    };
    let mut t = 0.0f32;
    let mut h = opts.initial_step.min(1.0);
    let mut x = x0;
    let mut k1 = f.velocity(x.clone(), t);
    let mut nfe = 1;
    while t < 1.0 {
        if nfe + 6 > opts.max_nfe {
            return Err(Error::InvalidArgument(format!(
                "adaptive solver needed more than {} evaluations (tolerance too tight for this field)",
                opts.max_nfe
            )));
        }
        let h_eff = h.min(1.0 - t);
        let mut k = vec![k1.clone()];
        for (stage, a) in [&A2[..], &A3[..], &A4[..], &A5[..], &A6[..]].into_iter().enumerate() {
            let xi = comb(&x, h_eff, a, &k);
            k.push(f.velocity(xi, t + C[stage] * h_eff));
        }
        let x_new = comb(&x, h_eff, &B5, &k);
        let t_new = if t + h_eff >= 1.0 - 1e-7 { 1.0 } else { t + h_eff };
        let k7 = f.velocity(x_new.clone(), t_new);
        nfe += 6;
        k.push(k7.clone());
        let mut err = k[0].clone() * (h_eff * E[0]);
        for i in 1..7 {
            if E[i] != 0.0 {
                err = err + k[i].clone() * (h_eff * E[i]);
            }
        }
        let scale = x.clone().abs().max_pair(x_new.clone().abs()) * opts.rtol + opts.atol;
        let ratio = err / scale;
        let norm: f32 = (ratio.clone() * ratio).mean().sqrt().into_scalar().elem();
        if !norm.is_finite() {
            return Err(Error::InvalidArgument("adaptive solver: the state became non-finite".into()));
        }
        if norm <= 1.0 {
            t = t_new;
            x = x_new;
            k1 = k7;
        }
        let factor = if norm == 0.0 { 5.0 } else { (0.9 * norm.powf(-0.2)).clamp(0.2, 5.0) };
        h = (h_eff * factor).max(1e-6);
    }
    Ok(Solution { x, nfe })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CpuBackend as B;

    /// dx/dt = (cos(3t) + 0.5) x, x(0) = 1  =>  x(t) = exp(sin(3t)/3 + t/2). Time-dependent on
    /// purpose, so a solver that evaluates at the wrong t loses its order.
    fn field(x: Tensor<B, 1>, t: f32) -> Tensor<B, 1> {
        x * ((3.0 * t).cos() + 0.5)
    }

    fn exact() -> f64 {
        ((3.0f64).sin() / 3.0 + 0.5).exp()
    }

    fn error(solver: Solver, steps: usize) -> f64 {
        let x0 = Tensor::<B, 1>::from_floats([1.0f32], &Default::default());
        let sol = solver.solve(&field, x0, steps, &mut |_, _, _, x| Ok(x)).unwrap();
        assert_eq!(sol.nfe, steps * solver.evals_per_step());
        let v: f32 = sol.x.into_scalar().elem();
        (v as f64 - exact()).abs()
    }

    #[test]
    fn time_grid_runs_from_zero_to_one_and_shifts_steps_toward_the_prior() {
        let uniform = time_grid(4, 1.0).unwrap();
        assert_eq!(uniform, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        let g = time_grid(4, 3.0).unwrap();
        assert_eq!((g[0], g[4]), (0.0, 1.0));
        assert!(g.windows(2).all(|w| w[1] > w[0]), "{g:?}");
        // sigma 0.75 -> 3 * 0.75 / (1 + 2 * 0.75) = 0.9: a first step of 0.1 instead of 0.25.
        assert!((g[1] - 0.1).abs() < 1e-6, "{g:?}");
        let steps: Vec<f32> = g.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.windows(2).all(|w| w[1] > w[0]), "shift > 1: steps grow toward the data {steps:?}");
        let inv = time_grid(4, 1.0 / 3.0).unwrap();
        let steps: Vec<f32> = inv.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(steps.windows(2).all(|w| w[1] < w[0]), "shift < 1: steps shrink toward the data {steps:?}");
        for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(time_grid(4, bad).is_err());
        }
        // Shift 1 is the equal-step grid bit for bit: every step exactly h = 1/steps, also where
        // grid differences would be an ulp off (steps = 3).
        let x0 = Tensor::<B, 1>::from_floats([1.0f32], &Default::default());
        let sol = Solver::Euler.solve_shifted(&field, x0.clone(), 3, 1.0, &mut |_, _, _, x| Ok(x)).unwrap();
        let h = 1.0f32 / 3.0;
        let mut manual = x0;
        for k in 0..3 {
            manual = manual.clone() + field(manual, k as f32 * h) * h;
        }
        let (a, b): (f32, f32) = (sol.x.into_scalar().elem(), manual.into_scalar().elem());
        assert_eq!(a.to_bits(), b.to_bits());
        // A shifted grid still integrates: Midpoint on 64 shifted steps is accurate.
        let x0 = Tensor::<B, 1>::from_floats([1.0f32], &Default::default());
        let sol = Solver::Midpoint.solve_shifted(&field, x0, 64, 3.0, &mut |_, _, _, x| Ok(x)).unwrap();
        let v: f32 = sol.x.into_scalar().elem();
        assert!((v as f64 - exact()).abs() < 1e-3);
    }

    /// Least-squares slope of log(error) against log(step size).
    fn observed_order(solver: Solver, steps: &[usize]) -> f64 {
        let pts: Vec<(f64, f64)> = steps.iter().map(|&n| ((1.0 / n as f64).ln(), error(solver, n).ln())).collect();
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
        let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
        sxy / sxx
    }

    #[test]
    fn euler_is_first_order() {
        let p = observed_order(Solver::Euler, &[16, 32, 64, 128]);
        assert!((p - 1.0).abs() < 0.15, "Euler order {p}");
    }

    #[test]
    fn midpoint_and_heun_are_second_order() {
        for s in [Solver::Midpoint, Solver::Heun] {
            // The midpoint rule reaches its asymptotic regime late on this field; f32 round-off
            // stays far below the error up to 128 steps.
            let p = observed_order(s, &[32, 64, 128]);
            assert!((p - 2.0).abs() < 0.2, "{s} order {p}");
        }
    }

    #[test]
    fn rk4_is_fourth_order() {
        // Few steps: with f32 state, round-off (~1e-7) swamps the error beyond ~20 steps.
        let p = observed_order(Solver::Rk4, &[3, 4, 6, 8]);
        assert!((p - 4.0).abs() < 0.4, "RK4 order {p}");
    }

    #[test]
    fn dormand_prince_meets_tolerance_and_counts_nfe() {
        let x0 = Tensor::<B, 1>::from_floats([1.0f32], &Default::default());
        let loose =
            solve_adaptive(&field, x0.clone(), AdaptiveOptions { rtol: 1e-3, atol: 1e-3, ..Default::default() })
                .unwrap();
        let tight =
            solve_adaptive(&field, x0, AdaptiveOptions { rtol: 1e-6, atol: 1e-6, ..Default::default() }).unwrap();
        let e = |s: Solution<B, 1>| (s.x.into_scalar().elem::<f32>() as f64 - exact()).abs();
        assert!(tight.nfe > loose.nfe, "tighter tolerance must cost more NFE");
        assert_eq!((loose.nfe - 1) % 6, 0);
        let (nl, nt) = (loose.nfe, tight.nfe);
        let (el, et) = (e(loose), e(tight));
        assert!(el < 1e-2 && et < 1e-4 && et < el, "errors {el} ({nl} NFE) {et} ({nt} NFE)");
    }

    #[test]
    fn zero_steps_is_an_error() {
        let x0 = Tensor::<B, 1>::from_floats([1.0f32], &Default::default());
        assert!(Solver::Euler.solve(&field, x0, 0, &mut |_, _, _, x| Ok(x)).is_err());
    }
}

//! Fused CPU inference passes of the networks that dominate a sampling call: the velocity
//! network ([`dit::CpuDit`]) and the auxiliary decoder ([`decoder::CpuDecoder`]); the auxiliary
//! encoder ([`encoder::CpuEncoder`]) for `encode` and for LeDiFlow's FM training, which also
//! decodes its prior draws here. Training's autodiff ops on these kernels live in
//! `super::cpu_autodiff`.
//!
//! burn runs a network as a chain of tensor operations, each writing a fresh tensor; on the CPU
//! these small networks then spend more time allocating, copying and walking memory than
//! multiplying. The passes here run the same networks on plain f32 buffers: matrix products
//! through the `gemm` crate that burn's CPU backend itself uses (~165 GFLOP/s per core on these
//! shapes), written into reused buffers, and every element-wise stage as one vectorised pass.
//! They are built from a loaded burn module and checked against its forward pass in tests
//! (the latent flow's too: [`latent::CpuLatentFlow`]). On CPUs with AVX512-BF16 the velocity
//! network and the decoder can multiply in bf16 instead ([`Kernels`], [`bf16`]). The networks
//! being trained and every CUDA computation stay on burn.

use burn::nn::Linear;
use burn::prelude::*;

use super::{TIME_FREQ_DIM, erf_f32};

/// Defines `fn $name(args)` that runs its body compiled for AVX-512 or AVX2+FMA when the CPU
/// has them (checked at run time; the std check is a cached load) and for the build's baseline
/// otherwise. The crate builds for plain x86-64 (SSE2), so without this the element-wise loops
/// below would use 4-wide vectors on a CPU with 16-wide ones.
macro_rules! multiversion {
    ($(#[$m:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$m])*
        // A kernel takes its buffers and sizes as plain arguments; grouping them would only
        // move the count into a struct every caller builds.
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn imp($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) { imp($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) { imp($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") {
                    // SAFETY: the CPU has the features v4 is compiled for (checked just above).
                    return unsafe { v4($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for v3's features.
                    return unsafe { v3($($arg),*) };
                }
            }
            imp($($arg),*)
        }
    };
}
pub(crate) use multiversion;

pub mod bf16;
pub(crate) mod conv;
pub mod decoder;
pub mod dit;
pub mod encoder;
pub mod latent;
pub(crate) mod rowops;

/// Which kernels a fused pass multiplies with: fp32 (`gemm`), or bf16 inputs with fp32 sums
/// ([`bf16`]; only where the CPU has them). Everything other than the matrix products of
/// weights stays fp32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Kernels {
    #[default]
    Fp32,
    Bf16,
}

/// A linear layer's parameters, y = x W + b with W row-major [input, output].
pub(super) struct Dense {
    pub(super) w: Vec<f32>,
    pub(super) b: Vec<f32>,
    pub(super) input: usize,
    pub(super) output: usize,
    /// W rounded to bf16 and packed, made on first use by [`Kernels::Bf16`].
    packed: std::sync::OnceLock<bf16::PackedBf16>,
}

pub(super) fn floats<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().into_vec::<f32>().expect("f32 data after convert")
}

/// A layer's bias as floats, zeros when it has none.
pub(super) fn bias_or_zeros<B: Backend>(bias: &Option<burn::module::Param<Tensor<B, 1>>>, n: usize) -> Vec<f32> {
    bias.as_ref().map(|b| floats(b.val())).unwrap_or_else(|| vec![0.0; n])
}

/// Runs f on K scratch buffers of the given lengths, carved out of `key`'s per-thread storage,
/// which grows to the largest request and is kept for the next call (a solver calls the same
/// network once per step with the same sizes). Contents are left over from earlier calls.
/// Not re-entrant for one key: each pass has its own.
pub(super) fn with_buffers<const K: usize, R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    sizes: [usize; K],
    f: impl FnOnce([&mut [f32]; K]) -> R,
) -> R {
    key.with(|ws| {
        let mut ws = ws.borrow_mut();
        let total: usize = sizes.iter().sum();
        if ws.len() < total {
            ws.resize(total, 0.0);
        }
        let mut rest = &mut ws[..total];
        let bufs: [&mut [f32]; K] = std::array::from_fn(|i| {
            let (head, tail) = std::mem::take(&mut rest).split_at_mut(sizes[i]);
            rest = tail;
            head
        });
        f(bufs)
    })
}

impl Dense {
    pub(super) fn new(w: Vec<f32>, b: Vec<f32>, input: usize, output: usize) -> Self {
        assert!(w.len() == input * output && b.len() == output, "Dense: W or b does not match [{input}, {output}]");
        Self { w, b, input, output, packed: Default::default() }
    }

    pub(super) fn from_linear<B: Backend>(l: &Linear<B>) -> Self {
        let [input, output] = l.weight.dims();
        Self::new(floats(l.weight.val()), bias_or_zeros(&l.bias, output), input, output)
    }

    fn packed(&self) -> &bf16::PackedBf16 {
        self.packed.get_or_init(|| bf16::PackedBf16::pack(&self.w, self.input, self.output))
    }
}

thread_local! {
    /// Activations as bf16 pairs for the bf16 products (per thread, reused).
    static PAIRS: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs f on this thread's bf16-pair scratch buffer (contents left from earlier calls). Not
/// re-entrant: f must not call [`product`] or another `with_pairs`.
pub(super) fn with_pairs<R>(f: impl FnOnce(&mut Vec<u32>) -> R) -> R {
    PAIRS.with(|p| f(&mut p.borrow_mut()))
}

/// out [rows, output] = (out if `accumulate`, else 0) + x W for the rows of x [rows, input]
/// (row-major, contiguous), with the chosen kernels.
pub(super) fn product(kernels: Kernels, l: &Dense, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
    match kernels {
        Kernels::Fp32 => {
            matmul((rows, l.output, l.input), out, l.output, accumulate, x, (l.input, 1), &l.w, (l.output, 1), 1.0)
        }
        Kernels::Bf16 => with_pairs(|pairs| {
            bf16::to_pairs(x, rows, l.input, l.input, pairs);
            bf16::gemm(rows, pairs, l.input.div_ceil(2), l.packed(), out, l.output, accumulate);
        }),
    }
}

/// [`dense`] with the chosen kernels.
pub(super) fn dense_with(kernels: Kernels, l: &Dense, x: &[f32], rows: usize, out: &mut [f32]) {
    for r in out[..rows * l.output].chunks_exact_mut(l.output) {
        r.copy_from_slice(&l.b);
    }
    product(kernels, l, x, rows, out, true);
}

/// A [`crate::model::ClassTable`]'s rows as f32 (the last row: no class).
pub(super) struct ClassRows {
    rows: Vec<f32>,
    width: usize,
}

impl ClassRows {
    pub(super) fn from_table<B: Backend>(t: &Option<crate::model::ClassTable<B>>) -> Option<Self> {
        t.as_ref().map(|t| Self { rows: floats(t.weight.val()), width: t.weight.dims()[1] })
    }

    /// Adds class `class`'s row (None, or an id past the table: the no-class row) to every row
    /// of `pre` (the time conditioning before its SiLU).
    pub(super) fn add(&self, pre: &mut [f32], class: Option<u32>) {
        let last = self.rows.len() / self.width - 1;
        let k = class.map_or(last, |c| (c as usize).min(last));
        let row = &self.rows[k * self.width..][..self.width];
        for r in pre.chunks_exact_mut(self.width) {
            for (x, y) in r.iter_mut().zip(row) {
                *x += y;
            }
        }
    }
}

/// dst[m x n] (+)= beta * lhs[m x k] * rhs[k x n], all row-major with the given row strides
/// (lhs and rhs may be read transposed through their strides). Checked so the unsafe call can
/// never touch memory outside the slices.
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[f32],
    (rhs_rs, rhs_cs): (usize, usize),
    beta: f32,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, rs: usize, cols: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(dst_rs >= n && last(m, dst_rs, n, 1) < dst.len(), "matmul: dst out of bounds");
    if k > 0 {
        assert!(last(m, lhs_rs, k, lhs_cs) < lhs.len(), "matmul: lhs out of bounds");
        assert!(last(k, rhs_rs, n, rhs_cs) < rhs.len(), "matmul: rhs out of bounds");
    }
    // SAFETY: the asserts above keep every element gemm reads or writes inside the slices; dst
    // does not alias lhs or rhs (a &mut and two & borrows).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0,
            beta,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// x W + b for the rows of x (row-major [rows, input]) into out [rows, output].
pub(super) fn dense(l: &Dense, x: &[f32], rows: usize, out: &mut [f32]) {
    dense_with(Kernels::Fp32, l, x, rows, out)
}

/// Sum of a slice with 8 independent accumulators (a plain float sum cannot be vectorised: its
/// order of additions is fixed).
#[inline(always)]
pub(super) fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    let tail: f32 = it.remainder().iter().sum();
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
pub(super) fn max8(v: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            acc[i] = if c[i] > acc[i] { c[i] } else { acc[i] };
        }
    }
    it.remainder().iter().chain(acc.iter()).fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m })
}

/// e^x, Cephes' expf polynomial after the usual range reduction x = n ln2 + r. Only
/// multiplies, adds and integer bit moves, so a loop of it vectorises; relative error ~2e-7.
/// x is clamped to [-87, 88]: tiny results come out near 1.6e-38 instead of 0, huge ones
/// as 1.65e38 instead of infinity (fine for softmax and SiLU, its uses here).
#[inline(always)]
pub(super) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // Round to nearest without a rounding instruction: adding 1.5 * 2^23 leaves the integer part.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let k = x * LOG2E + MAGIC;
    let n = k - MAGIC;
    // k and MAGIC share their exponent, so their bit patterns differ by exactly the integer n:
    // 2^n without a float-to-int conversion (Rust's saturating `as` would not vectorise).
    let pow2n = f32::from_bits(((k.to_bits() as i32 - MAGIC.to_bits() as i32 + 127) << 23) as u32);
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * pow2n
}

multiversion! {
    /// In-place softmax of each row of `rows` (rows of length `n`).
    pub(super) fn softmax_rows(rows: &mut [f32], n: usize) {
        for row in rows.chunks_exact_mut(n) {
            let m = max8(row);
            for v in row.iter_mut() {
                *v = exp_f32(*v - m);
            }
            let inv = 1.0 / sum8(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// Columns of one register tile of [`rows_matmul_acc`].
const TILE_J: usize = 32;

/// out[r] += x[r] W for R rows starting at r0 and TILE_J columns starting at j0.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_tile<const R: usize>(x: &[f32], w: &[f32], out: &mut [f32], r0: usize, j0: usize, k: usize, n: usize) {
    let mut acc = [[0f32; TILE_J]; R];
    for (r, a) in acc.iter_mut().enumerate() {
        a.copy_from_slice(&out[(r0 + r) * n + j0..][..TILE_J]);
    }
    let xs: [&[f32]; R] = std::array::from_fn(|r| &x[(r0 + r) * k..][..k]);
    for kk in 0..k {
        let wr: &[f32; TILE_J] = w[kk * n + j0..][..TILE_J].try_into().unwrap();
        for r in 0..R {
            let xv = xs[r][kk];
            for j in 0..TILE_J {
                acc[r][j] += xv * wr[j];
            }
        }
    }
    for (r, a) in acc.iter().enumerate() {
        out[(r0 + r) * n + j0..][..TILE_J].copy_from_slice(a);
    }
}

multiversion! {
    /// out[r] += x[r] W for each of `rows` rows (x [rows, k], W [k, n], out [rows, n], all
    /// row-major), every element summed over k in order with a separate multiply and add. A
    /// row's result therefore does not depend on the other rows or on how many there are,
    /// unlike gemm's, whose blocking depends on the product's height. For the latent flow,
    /// whose batch of latents is a batch of rows; tiles of 8 rows reuse each loaded piece of W.
    pub(super) fn rows_matmul_acc(x: &[f32], w: &[f32], out: &mut [f32], rows: usize, k: usize, n: usize) {
        assert!(x.len() >= rows * k && w.len() >= k * n && out.len() >= rows * n, "rows_matmul_acc: short slice");
        let full = n - n % TILE_J;
        for r0 in (0..rows).step_by(8) {
            for j0 in (0..full).step_by(TILE_J) {
                match rows - r0 {
                    1 => rows_tile::<1>(x, w, out, r0, j0, k, n),
                    2 => rows_tile::<2>(x, w, out, r0, j0, k, n),
                    3 => rows_tile::<3>(x, w, out, r0, j0, k, n),
                    4 => rows_tile::<4>(x, w, out, r0, j0, k, n),
                    5 => rows_tile::<5>(x, w, out, r0, j0, k, n),
                    6 => rows_tile::<6>(x, w, out, r0, j0, k, n),
                    7 => rows_tile::<7>(x, w, out, r0, j0, k, n),
                    _ => rows_tile::<8>(x, w, out, r0, j0, k, n),
                }
            }
        }
        // Columns past the last full tile: the same operations in the same order, one element
        // at a time.
        for r in 0..rows {
            for j in full..n {
                let mut a = out[r * n + j];
                for kk in 0..k {
                    a += x[r * k + kk] * w[kk * n + j];
                }
                out[r * n + j] = a;
            }
        }
    }
}

/// Mean and 1 / sqrt(biased variance + eps) of one row (layer norm), two passes.
#[inline(always)]
pub(super) fn mean_inv_std(x: &[f32], eps: f32) -> (f32, f32) {
    let mean = sum8(x) / x.len() as f32;
    let mut sq = [0f32; 8];
    let mut it = x.chunks_exact(8);
    for c in &mut it {
        for i in 0..8 {
            let v = c[i] - mean;
            sq[i] += v * v;
        }
    }
    let tail: f32 = it.remainder().iter().map(|v| (v - mean) * (v - mean)).sum();
    let var = (sq.iter().sum::<f32>() + tail) / x.len() as f32;
    (mean, 1.0 / (var + eps).sqrt())
}

/// Sinusoidal time features as in `model::time_embedding`: one row of TIME_FREQ_DIM per t.
pub(super) fn time_features(t: &[f32], out: &mut [f32]) {
    let half = TIME_FREQ_DIM / 2;
    for (row, &ti) in out.chunks_exact_mut(TIME_FREQ_DIM).zip(t) {
        for i in 0..half {
            let freq = (-(10_000f32.ln()) * i as f32 / half as f32).exp();
            let arg = ti * 1000.0 * freq;
            row[i] = arg.cos();
            row[half + i] = arg.sin();
        }
    }
}

multiversion! {
    /// x * sigmoid(x) in place.
    pub(super) fn silu_in_place(v: &mut [f32]) {
        for x in v {
            *x /= 1.0 + exp_f32(-*x);
        }
    }
}

multiversion! {
    pub(super) fn gelu_in_place(v: &mut [f32]) {
        for x in v {
            *x = 0.5 * *x * (1.0 + erf_f32(*x * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use burn::module::{Module, ModuleMapper, Param};
    use burn::prelude::*;
    use burn::tensor::TensorData;

    /// Replaces every parameter by N(0, 0.1^2) draws (trainable ones stay trainable): fresh networks have zero-initialised
    /// output layers (adaLN-Zero), which would hide most of a forward pass from a comparison.
    struct Randomize(crate::rng::Rng);

    impl<Bk: Backend> ModuleMapper<Bk> for Randomize {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<Bk, D>>) -> Param<Tensor<Bk, D>> {
            let (id, t, mapper) = param.consume();
            let shape = t.dims();
            let v: Vec<f32> = self.0.normal_vec(shape.iter().product()).into_iter().map(|x| x * 0.1).collect();
            let fresh = Tensor::from_data(TensorData::new(v, shape), &t.device()).set_require_grad(t.is_require_grad());
            Param::from_mapped_value(id, fresh, mapper)
        }
    }

    pub fn randomized<Bk: Backend, M: Module<Bk>>(m: M, seed: u64) -> M {
        m.map(&mut Randomize(crate::rng::Rng::new(seed)))
    }

    /// Largest |a - b| relative to the largest |a| (at least 1); panics if a is ~0 everywhere,
    /// where a comparison would prove nothing.
    pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(scale > 0.05, "the reference output is ~0 ({scale}); the comparison would prove nothing");
        a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale.max(1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        for i in -870_000..=880_000 {
            let x = i as f32 * 1e-4;
            let (a, b) = (exp_f32(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
        }
        assert!(worst < 1e-6, "max relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        // Clamped, finite, at both ends.
        assert!((0.0..1e-37).contains(&exp_f32(-1000.0)));
        assert!(exp_f32(1000.0).is_finite() && exp_f32(1000.0) > 1e38);
    }

    /// Each row of rows_matmul_acc is bitwise the same whatever rows surround it (tile or edge
    /// path), and the product is right.
    #[test]
    fn rows_matmul_is_row_independent() {
        let (k, n) = (37, 70); // edge tiles in both directions
        let mut rng = crate::rng::Rng::new(4);
        let x = rng.normal_vec(9 * k);
        let w = rng.normal_vec(k * n);
        let bias = rng.normal_vec(n);
        let run = |rows: &[f32], count: usize| {
            let mut out: Vec<f32> = (0..count).flat_map(|_| bias.iter().copied()).collect();
            rows_matmul_acc(rows, &w, &mut out, count, k, n);
            out
        };
        let all = run(&x, 9);
        for i in 0..9 {
            assert_eq!(&all[i * n..(i + 1) * n], &run(&x[i * k..(i + 1) * k], 1)[..], "row {i}");
            for j in 0..n {
                let want: f64 =
                    bias[j] as f64 + (0..k).map(|kk| x[i * k + kk] as f64 * w[kk * n + j] as f64).sum::<f64>();
                assert!((all[i * n + j] as f64 - want).abs() < 1e-4, "row {i} col {j}");
            }
        }
    }

    #[test]
    fn silu_matches_std() {
        let mut v: Vec<f32> = (-2000..2000).map(|i| i as f32 * 0.01).collect();
        let want: Vec<f32> = v.iter().map(|x| x / (1.0 + (-x).exp())).collect();
        silu_in_place(&mut v);
        for (a, b) in v.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
    }
}

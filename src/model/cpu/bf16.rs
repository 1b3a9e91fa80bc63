//! bf16 matrix products for CPU inference: weights rounded to bfloat16 once (on first use),
//! activations rounded per product, every product accumulated in fp32 by AVX512-BF16's
//! `vdpbf16ps` (two bf16 products and an fp32 add per lane and instruction, twice fp32 FMA's
//! work per instruction on the same 512-bit units).
//!
//! The `gemm` crate the fp32 passes use has no bf16 type, and the kernel is small: B is packed
//! into 16-column blocks of k/2 pairs, `[n/16][k/2][16][2]` bf16, so one 64-byte load is one
//! pair of weight rows for 16 columns; A is converted to bf16 pairs (two consecutive k, one u32)
//! and each pair broadcast to all 16 lanes; a register tile of 8 rows x 48 columns holds 24 fp32
//! accumulators. Layer norms, softmax, attention, the solver's state and every element-wise
//! stage stay fp32 (see `dit`).
//!
//! A product's result depends only on its own row of A, W and the shapes: the kernel walks k
//! in one fixed order for every row, so the bitwise batch independence of the fp32 passes holds
//! within this precision too.

/// Whether this CPU runs the bf16 kernels here (AVX-512F and AVX512-BF16, checked at run time;
/// the std check is a cached load).
pub fn cpu_has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU has AMX tiles for bf16 (CPUID leaf 7: AMX-BF16 and AMX-TILE). Reported by
/// `lediflow info`; the products here use AVX512-BF16, which every such CPU also has.
pub fn cpu_has_amx_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid_count;
        // Leaf 7 is valid when leaf 0 reports it.
        if __cpuid_count(0, 0).eax < 7 {
            return false;
        }
        let edx = __cpuid_count(7, 0).edx;
        // EDX bit 22: AMX-BF16, bit 24: AMX-TILE.
        edx & (1 << 22) != 0 && edx & (1 << 24) != 0
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// f32 -> bf16, rounding to nearest even (what `vcvtne2ps2bf16` does); NaN stays a quiet NaN.
#[inline(always)]
pub(crate) fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

#[cfg(test)]
fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// A weight matrix W [k, n] (row-major) rounded to bf16 and packed for [`gemm`]: 16-column
/// blocks, each k/2 pairs of rows, each pair 16 lanes of (W[2i][j], W[2i+1][j]). Columns past n
/// and the row past an odd k are zeros.
pub(crate) struct PackedBf16 {
    /// Pairs of bf16 as u32 (low half: the even row), [blocks][k2][16].
    data: Vec<u32>,
    pub(crate) k: usize,
    pub(crate) n: usize,
}

impl PackedBf16 {
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedBf16::pack: W holds {} numbers for [{k}, {n}]", w.len());
        let (k2, blocks) = (k.div_ceil(2), n.div_ceil(16));
        let mut data = vec![0u32; blocks * k2 * 16];
        let at = |r: usize, c: usize| if r < k && c < n { to_bf16(w[r * n + c]) as u32 } else { 0 };
        for b in 0..blocks {
            for i in 0..k2 {
                for l in 0..16 {
                    let c = b * 16 + l;
                    data[(b * k2 + i) * 16 + l] = at(2 * i, c) | (at(2 * i + 1, c) << 16);
                }
            }
        }
        Self { data, k, n }
    }

    fn k2(&self) -> usize {
        self.k.div_ceil(2)
    }
}

/// Rows of an f32 matrix (`rows` x `k`, row stride `lda`) as bf16 pairs into `out`, row stride
/// k/2 rounded up (the odd k's partner is 0).
pub(crate) fn to_pairs(a: &[f32], rows: usize, k: usize, lda: usize, out: &mut Vec<u32>) {
    let k2 = k.div_ceil(2);
    assert!(rows == 0 || (rows - 1) * lda + k <= a.len(), "to_pairs: A is too short");
    out.clear();
    out.resize(rows * k2, 0);
    for r in 0..rows {
        pairs_of(&a[r * lda..][..k], &mut out[r * k2..][..k2]);
    }
}

/// One run of f32 as bf16 pairs (the odd length's partner 0).
fn pairs_of(src: &[f32], dst: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if cpu_has_avx512_bf16() {
        // SAFETY: the CPU has the features `pairs_avx512` is compiled for (checked just above).
        return unsafe { pairs_avx512(src, dst) };
    }
    pairs_scalar(src, dst, 0);
}

fn pairs_scalar(src: &[f32], dst: &mut [u32], from: usize) {
    for (i, d) in dst.iter_mut().enumerate().skip(from) {
        let lo = to_bf16(src[2 * i]) as u32;
        let hi = src.get(2 * i + 1).map_or(0, |&x| to_bf16(x) as u32);
        *d = lo | (hi << 16);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn pairs_avx512(src: &[f32], dst: &mut [u32]) {
    use std::arch::x86_64::*;
    let full = src.len() / 32;
    for c in 0..full {
        // SAFETY: chunk c covers src[32c..32c+32] and dst[16c..16c+16], inside both slices
        // (dst has len/2 rounded up >= 16 full entries per full chunk).
        unsafe {
            let lo = _mm512_loadu_ps(src.as_ptr().add(32 * c));
            let hi = _mm512_loadu_ps(src.as_ptr().add(32 * c + 16));
            // Lower 16 bf16 from the second operand: src[32c..32c+32] in order.
            let v = _mm512_cvtne2ps_pbh(hi, lo);
            _mm512_storeu_si512(dst.as_mut_ptr().add(16 * c).cast(), std::mem::transmute::<__m512bh, __m512i>(v));
        }
    }
    pairs_scalar(src, dst, 16 * full);
}

/// Rows of one register tile.
#[cfg(target_arch = "x86_64")]
const TILE_R: usize = 8;
/// 16-column blocks of one register tile.
#[cfg(target_arch = "x86_64")]
const TILE_Q: usize = 3;

/// c[m x n] (row stride `ldc`) = (c if `accumulate`, else 0) + A W, with A as bf16 pairs
/// (m rows, row stride `lda2` pairs, each row's first w.k/2 rounded up pairs used; rows may
/// overlap) and
/// W packed. Sums run over k in order, per row.
///
/// Panics if the CPU lacks AVX512-BF16 (callers choose this path through
/// [`cpu_has_avx512_bf16`]) or a slice is too short.
pub(crate) fn gemm(m: usize, a: &[u32], lda2: usize, w: &PackedBf16, c: &mut [f32], ldc: usize, accumulate: bool) {
    let (k2, n) = (w.k2(), w.n);
    if m == 0 || n == 0 {
        return;
    }
    // Rows may overlap (lda2 < k2: a padded map's shifted rows, see `decoder::Conv3`).
    assert!((m - 1) * lda2 + k2 <= a.len(), "bf16 gemm: A is too short");
    assert!(ldc >= n && (m - 1) * ldc + n <= c.len(), "bf16 gemm: C is too short");
    assert!(cpu_has_avx512_bf16(), "bf16 gemm on a CPU without AVX512-BF16");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has the kernel's features (asserted above); the asserts keep every read
    // of A and every read and write of C inside the slices, and W's blocks are its own.
    unsafe {
        gemm_avx512(m, a, lda2, w, c, ldc, accumulate)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, lda2, c, ldc, accumulate); // unreachable: the assert above fails off x86-64
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn gemm_avx512(m: usize, a: &[u32], lda2: usize, w: &PackedBf16, c: &mut [f32], ldc: usize, acc: bool) {
    let (k2, n) = (w.k2(), w.n);
    let blocks = n.div_ceil(16);
    for r0 in (0..m).step_by(TILE_R) {
        let rows = (m - r0).min(TILE_R);
        for q0 in (0..blocks).step_by(TILE_Q) {
            let qs = (blocks - q0).min(TILE_Q);
            let args = Tile {
                a: a[r0 * lda2..].as_ptr(),
                lda2,
                k2,
                b: w.data[q0 * k2 * 16..].as_ptr(),
                c: c[r0 * ldc..].as_mut_ptr(),
                ldc,
                col0: q0 * 16,
                n,
                acc,
            };
            // SAFETY: as in `gemm`: rows r0..r0+rows of A and C and blocks q0..q0+qs of W exist.
            unsafe {
                match (rows, qs) {
                    (8, 3) => tile::<8, 3>(args),
                    (8, 2) => tile::<8, 2>(args),
                    (8, _) => tile::<8, 1>(args),
                    (r, q) => tile_dyn(r, q, args),
                }
            }
        }
    }
}

/// One register tile's place in the product.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Tile {
    a: *const u32,
    lda2: usize,
    k2: usize,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    /// The tile's first column in C, and C's width: columns past n are neither read nor written.
    col0: usize,
    n: usize,
    acc: bool,
}

/// The edge tiles (fewer than 8 rows): a tile per row count, 1..=3 blocks each.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn tile_dyn(rows: usize, qs: usize, t: Tile) {
    macro_rules! by_q {
        ($r:literal) => {
            match qs {
                3 => tile::<$r, 3>(t),
                2 => tile::<$r, 2>(t),
                _ => tile::<$r, 1>(t),
            }
        };
    }
    // SAFETY: forwarded from the caller.
    unsafe {
        match rows {
            1 => by_q!(1),
            2 => by_q!(2),
            3 => by_q!(3),
            4 => by_q!(4),
            5 => by_q!(5),
            6 => by_q!(6),
            _ => by_q!(7),
        }
    }
}

/// The lanes of a 16-column block starting at column `col` that lie inside C's n columns.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn column_mask(n: usize, col: usize) -> u16 {
    let left = n.saturating_sub(col);
    if left >= 16 { 0xffff } else { ((1u32 << left) - 1) as u16 }
}

/// R rows x Q 16-column blocks of C += A W, accumulators in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn tile<const R: usize, const Q: usize>(t: Tile) {
    use std::arch::x86_64::*;
    let mask = |q: usize| column_mask(t.n, t.col0 + 16 * q);
    // SAFETY (whole body): the caller guarantees R rows of A (k2 pairs each, stride lda2) and
    // of C (stride ldc, masked to the n columns), and Q blocks of W (k2 * 16 pairs each).
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); Q]; R];
        if t.acc {
            for (r, row) in acc.iter_mut().enumerate() {
                for (q, v) in row.iter_mut().enumerate() {
                    *v = _mm512_maskz_loadu_ps(mask(q), t.c.add(r * t.ldc + t.col0 + 16 * q));
                }
            }
        }
        for i in 0..t.k2 {
            let mut b = [std::mem::transmute::<__m512i, __m512bh>(_mm512_setzero_si512()); Q];
            for (q, v) in b.iter_mut().enumerate() {
                *v = std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(t.b.add((q * t.k2 + i) * 16).cast()));
            }
            for (r, row) in acc.iter_mut().enumerate() {
                let pair = *t.a.add(r * t.lda2 + i);
                let av = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(pair as i32));
                for (q, v) in row.iter_mut().enumerate() {
                    *v = _mm512_dpbf16_ps(*v, av, b[q]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (q, v) in row.iter().enumerate() {
                _mm512_mask_storeu_ps(t.c.add(r * t.ldc + t.col0 + 16 * q), mask(q), *v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to even (1).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3 * 2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up to even.
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        // The largest finite f32 rounds up to infinity, as the instruction does.
        assert_eq!(from_bf16(to_bf16(f32::MAX)), f32::INFINITY);
    }

    /// The vector conversion rounds exactly like the scalar one, tails included.
    #[test]
    fn pairs_match_the_scalar_conversion() {
        if !cpu_has_avx512_bf16() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut rng = crate::rng::Rng::new(9);
        for len in [1, 2, 31, 32, 33, 64, 95, 130] {
            let src: Vec<f32> = rng.normal_vec(len).into_iter().map(|x| x * 1e3).collect();
            let mut want = vec![0u32; len.div_ceil(2)];
            pairs_scalar(&src, &mut want, 0);
            let mut got = vec![7u32; len.div_ceil(2)];
            pairs_of(&src, &mut got);
            assert_eq!(got, want, "length {len}");
        }
    }

    /// Against an f64 product of the same bf16-rounded inputs: only the fp32 accumulation's
    /// rounding is left, so the tolerance is that of k fp32 adds. Against the unrounded f32
    /// inputs the error is bf16's (8 bits of mantissa), bounded relative to sum |a||w|.
    #[test]
    fn products_match_an_f32_reference() {
        if !cpu_has_avx512_bf16() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let mut rng = crate::rng::Rng::new(5);
        // Edge tiles in rows and columns, odd k, the network's shapes.
        for (m, k, n) in [(1, 1, 1), (3, 7, 5), (9, 33, 17), (13, 64, 49), (64, 128, 384), (64, 512, 128), (17, 96, 32)]
        {
            let a = rng.normal_vec(m * k);
            let w = rng.normal_vec(k * n);
            let c0 = rng.normal_vec(m * n);
            let packed = PackedBf16::pack(&w, k, n);
            let mut pairs = Vec::new();
            to_pairs(&a, m, k, k, &mut pairs);
            for accumulate in [false, true] {
                let mut c = c0.clone();
                gemm(m, &pairs, k.div_ceil(2), &packed, &mut c, n, accumulate);
                for i in 0..m {
                    for j in 0..n {
                        let start = if accumulate { c0[i * n + j] as f64 } else { 0.0 };
                        let (mut rounded, mut exact, mut magnitude) = (start, start, start.abs());
                        for kk in 0..k {
                            let (x, y) = (a[i * k + kk] as f64, w[kk * n + j] as f64);
                            rounded += from_bf16(to_bf16(x as f32)) as f64 * from_bf16(to_bf16(y as f32)) as f64;
                            exact += x * y;
                            magnitude += (x * y).abs();
                        }
                        let got = c[i * n + j] as f64;
                        let fp32_adds = (k as f64 + 1.0) * f32::EPSILON as f64 * magnitude;
                        assert!(
                            (got - rounded).abs() <= fp32_adds + 1e-6,
                            "[{m},{k},{n}] ({i},{j}): {got} vs {rounded}"
                        );
                        // Two bf16 roundings per product: relative 2^-8 each.
                        assert!(
                            (got - exact).abs() <= 2.0 * magnitude / 256.0 + fp32_adds,
                            "[{m},{k},{n}] ({i},{j}): {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }

    /// A row's result is bitwise the same whatever rows surround it (full or edge tile).
    #[test]
    fn rows_are_independent() {
        if !cpu_has_avx512_bf16() {
            eprintln!("skipped: this CPU has no AVX512-BF16");
            return;
        }
        let (k, n) = (37, 70);
        let mut rng = crate::rng::Rng::new(4);
        let a = rng.normal_vec(11 * k);
        let packed = PackedBf16::pack(&rng.normal_vec(k * n), k, n);
        let run = |rows: &[f32], m: usize| {
            let mut pairs = Vec::new();
            to_pairs(rows, m, k, k, &mut pairs);
            let mut c = vec![0f32; m * n];
            gemm(m, &pairs, k.div_ceil(2), &packed, &mut c, n, false);
            c
        };
        let all = run(&a, 11);
        for i in 0..11 {
            assert_eq!(&all[i * n..(i + 1) * n], &run(&a[i * k..(i + 1) * k], 1)[..], "row {i}");
        }
    }
}

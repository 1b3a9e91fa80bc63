/* fp32 peak of this CPU: independent FMA chains in the widest vectors the compiler targets
 * (-march=native: AVX-512 where present), one OpenMP thread per core requested.
 *
 *     gcc -O2 -march=native -fopenmp bench/peak_flops.c -o /tmp/peak_flops
 *     OMP_NUM_THREADS=1 /tmp/peak_flops; OMP_NUM_THREADS=2 /tmp/peak_flops
 *
 * Prints GFLOP/s (one FMA = 2 FLOP), the best of 5 runs. `lediflow bench --peak-gflops` takes it.
 */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define WIDTH 16
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SET1(x) _mm512_set1_ps(x)
#define SUM(v) _mm512_reduce_add_ps(v)
#define ISA "AVX-512"
#else
typedef __m256 vec;
#define WIDTH 8
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SET1(x) _mm256_set1_ps(x)
static float SUM(__m256 v) { float f[8]; _mm256_storeu_ps(f, v); return f[0] + f[1] + f[2] + f[3] + f[4] + f[5] + f[6] + f[7]; }
#define ISA "AVX2"
#endif

#define CHAINS 12
#define ITERS 50000000L

static float run(void) {
    vec acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) acc[i] = SET1((float)i * 1e-3f);
    const vec a = SET1(0.999999f), b = SET1(1e-7f);
    for (long it = 0; it < ITERS; it++) {
#pragma GCC unroll 64
        for (int i = 0; i < CHAINS; i++) acc[i] = FMA(acc[i], a, b);
    }
    float s = 0;
    for (int i = 0; i < CHAINS; i++) s += SUM(acc[i]);
    return s;
}

int main(void) {
    int threads = omp_get_max_threads();
    double best = 0;
    volatile float sink = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = omp_get_wtime();
#pragma omp parallel reduction(+ : sink)
        sink += run();
        double dt = omp_get_wtime() - t0;
        double gflops = (double)threads * ITERS * CHAINS * WIDTH * 2 / dt / 1e9;
        if (gflops > best) best = gflops;
    }
    printf("%s, %d thread(s): %.1f GFLOP/s fp32 peak (FMA chains)\n", ISA, threads, best);
    return 0;
}

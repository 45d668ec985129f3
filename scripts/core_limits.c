/* What one core of this machine can do, for the speed claims in the README:
 *   1. the fp32 FMA peak (12 independent AVX-512 FMA chains), the ceiling of any fp32 training step;
 *   2. how fast one core streams a decoding step's int8 weights (the 4.5 MB of [W_head; W_hhᵀ] of
 *      the bundled model) through a plain VNNI loop, as csrc/gemv_int8.c reads them: from cache,
 *      after 64 MB of other writes, with software prefetch 1, 4 or 8 KB ahead, and on 2 MB pages.
 *
 *     cc -O2 -march=native scripts/core_limits.c -o /tmp/core_limits && /tmp/core_limits
 *
 * Needs AVX-512 with VNNI. Figures move with the VM's other tenants: run it more than once. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static double fma_peak(void) {
    __m512 a0 = _mm512_set1_ps(1), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0, a8 = a0,
           a9 = a0, a10 = a0, a11 = a0, b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    long n = 100000000;
    double t0 = now();
    for (long k = 0; k < n; k++) {
        a0 = _mm512_fmadd_ps(a0, b, c); a1 = _mm512_fmadd_ps(a1, b, c); a2 = _mm512_fmadd_ps(a2, b, c);
        a3 = _mm512_fmadd_ps(a3, b, c); a4 = _mm512_fmadd_ps(a4, b, c); a5 = _mm512_fmadd_ps(a5, b, c);
        a6 = _mm512_fmadd_ps(a6, b, c); a7 = _mm512_fmadd_ps(a7, b, c); a8 = _mm512_fmadd_ps(a8, b, c);
        a9 = _mm512_fmadd_ps(a9, b, c); a10 = _mm512_fmadd_ps(a10, b, c); a11 = _mm512_fmadd_ps(a11, b, c);
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), "+v"(a6), "+v"(a7),
                         "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
    }
    double t = now() - t0;
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                             _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
    if (_mm512_reduce_add_ps(s) == 0.0f) printf(" ");  /* keep the chains */
    return n * 12.0 * 32 / t / 1e9;
}

/* csrc/gemv_int8.c's inner loop without the quantisation and scaling: [N/16][K/4][16][4] int8 */
static void stream(int64_t N, int64_t K, const int8_t *W, const uint8_t *q, int32_t *y, int64_t pf) {
    const int32_t *q4 = (const int32_t *)q;
    for (int64_t b = 0; b < N / 16; b++) {
        const int8_t *wb = W + b * K * 16;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int64_t k = 0; k < K / 4; k += 2) {
            if (pf) {
                _mm_prefetch((const char *)(wb + k * 64 + pf), _MM_HINT_T1);
                _mm_prefetch((const char *)(wb + k * 64 + 64 + pf), _MM_HINT_T1);
            }
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(q4[k]), _mm512_loadu_si512((const void *)(wb + k * 64)));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(q4[k + 1]),
                                     _mm512_loadu_si512((const void *)(wb + (k + 1) * 64)));
        }
        _mm512_storeu_si512(y + b * 16, _mm512_add_epi32(a0, a1));
    }
}

int main(void) {
    printf("fp32 FMA peak, one core: %.1f GFLOP/s\n", fma_peak());
    const int64_t K = 512, N = 8896;  /* 6,837 + 2,048 rows, padded to 16 */
    const size_t huge = 2 << 20, bytes = (N * K + huge - 1) / huge * huge, junk_bytes = 64 << 20;
    char *junk = malloc(junk_bytes);
    uint8_t q[512];
    memset(q, 3, sizeof q);
    int32_t *y = aligned_alloc(64, N * 4);
    for (int pages = 0; pages < 2; pages++) {
        int8_t *W = aligned_alloc(huge, bytes);
        if (pages) madvise(W, bytes, MADV_HUGEPAGE);  /* transparent huge pages in "madvise" mode */
        memset(W, 1, bytes);
        const int64_t pfs[] = {0, 1024, 4096, 8192};
        for (int p = 0; p < 4; p++)
            for (int evict = 0; evict < 2; evict++) {
                if (pages && (p || evict)) continue;  /* 2 MB pages: the plain loop only */
                double best = 1e9, total = 0;
                const int R = 50;
                for (int r = 0; r < R; r++) {
                    if (evict) memset(junk, r, junk_bytes);
                    double t0 = now();
                    stream(N, K, W, q, y, pfs[p]);
                    double t = now() - t0;
                    best = t < best ? t : best;
                    total += t;
                }
                printf("int8 weights %.1f MB, %s pages, prefetch %5ld B ahead, %s: mean %4.0f µs, best %4.0f µs "
                       "(%.1f GB/s)\n", N * K / 1e6, pages ? "2 MB" : "4 KB", (long)pfs[p],
                       evict ? "after 64 MB of other writes" : "from cache                 ", total / R * 1e6,
                       best * 1e6, N * K / best / 1e9);
            }
        free(W);
    }
    return 0;
}

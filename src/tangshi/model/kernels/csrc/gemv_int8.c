/* One row through an int8 weight matrix, for decoding one poem: y = x Wᵀ + b with W (N, K) int8.
 *
 * A poem's step multiplies one hidden state by the output layer (6,837 × 512) and by weight_hh, and it is
 * bound by reading those bytes. fbgemm's dynamic int8 kernel (the batch path, model/step_weights.py) takes
 * ~165 µs for the output layer on the development CPU; this one, with AVX-512 VNNI's u8 × s8 dot
 * products over a layout where one 64-byte load feeds 16 rows, ~125 µs.
 *
 * Numerics. W: one symmetric scale per row, s_w[n] = max|W[n]| / 127, values in [-127, 127] (as
 * model/step_weights.py packs them for fbgemm). x: quantised per call to 8 bits, symmetric: s_x = max|x|/127,
 * q = round(x / s_x) in [-127, 127], stored as q + 128 (unsigned, for vpdpbusd). The int32 sums are
 * exact; the offset is removed with the row sums of W:
 *     y[n] = (Σ_k (q_k + 128) W[n,k] − 128 Σ_k W[n,k]) · s_x · s_w[n] + b[n]
 * Built with the other kernels by model/kernels/__init__.py; `gemv_int8_available()` is 0 where the compiler
 * targets a CPU without AVX-512 VNNI, and decoding then stays with fbgemm.
 */
#include <stdint.h>

#if defined(__AVX512F__) && defined(__AVX512VNNI__)
#include <immintrin.h>

int32_t gemv_int8_available(void) { return 1; }

/* W packed by model/step_weights.py as [N16][K/4][16][4] int8 (N padded to 16 rows with zeros, K a
 * multiple of 8): block b holds rows 16b..16b+15, and its k-th 64 bytes hold columns 4k..4k+3 of
 * those 16 rows, so that one vpdpbusd adds 4 products to each of 16 row sums. rowsum (N16·16): Σ_k W[n,k];
 * scale (N16·16): s_w; bias (N) or NULL; x (K) fp32; y (N) fp32 out; q: K bytes of scratch. */
void gemv_int8(int64_t N, int64_t K, const int8_t *restrict W, const int32_t *restrict rowsum,
               const float *restrict scale, const float *restrict bias, const float *restrict x, float *restrict y,
               uint8_t *restrict q) {
    float amax = 0.0f;
    int nan = 0;
    for (int64_t k = 0; k < K; k++) {
        float a = x[k] < 0 ? -x[k] : x[k];
        amax = a > amax ? a : amax;
        nan |= x[k] != x[k];
    }
    nan |= amax == __builtin_inff();  /* an infinity too: no finite scale holds it */
    if (nan || amax == 0.0f) {  /* a NaN spreads to every output, as in the product; x = 0 gives b */
        for (int64_t n = 0; n < N; n++) y[n] = nan ? __builtin_nanf("") : (bias ? bias[n] : 0.0f);
        return;
    }
    float s_x = amax / 127.0f;
    for (int64_t k = 0; k < K; k++) q[k] = (uint8_t)(__builtin_nearbyintf(x[k] / s_x) + 128.0f);
    const int32_t *q4 = (const int32_t *)q;
    int64_t N16 = (N + 15) / 16;
    for (int64_t b = 0; b < N16; b++) {
        const int8_t *wb = W + b * K * 16;
        __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
        for (int64_t k = 0; k < K / 4; k += 2) {
            a0 = _mm512_dpbusd_epi32(a0, _mm512_set1_epi32(q4[k]), _mm512_loadu_si512((const void *)(wb + k * 64)));
            a1 = _mm512_dpbusd_epi32(a1, _mm512_set1_epi32(q4[k + 1]),
                                     _mm512_loadu_si512((const void *)(wb + (k + 1) * 64)));
        }
        __m512i acc = _mm512_sub_epi32(_mm512_add_epi32(a0, a1),
                                       _mm512_slli_epi32(_mm512_loadu_si512((const void *)(rowsum + b * 16)), 7));
        __m512 out = _mm512_mul_ps(_mm512_cvtepi32_ps(acc),
                                   _mm512_mul_ps(_mm512_set1_ps(s_x), _mm512_loadu_ps(scale + b * 16)));
        float o[16];
        _mm512_storeu_ps(o, out);
        for (int r = 0; r < 16 && b * 16 + r < N; r++) y[b * 16 + r] = bias ? o[r] + bias[b * 16 + r] : o[r];
    }
}

void lstm_cell_forward(int64_t B, int64_t H, float *a, const float *xz_t, const float *c_prev, float *c, float *tc,
                       float *h);  /* lstm_cell.c */

/* One poem's decoding step for its last LSTM layer and the output layer, in one call: lstm_cell.c's
 * forward on z_t = hz + xz (hz = h_{t-1} weight_hh and xz = x_t weight_ih + b, both read only) gives C_t and
 * h_t, then gemv_int8 gives y = h_t Wᵀ + b. W is [W_head; W_hhᵀ] (N = V + 4H rows), so y holds the
 * logits and the next step's h_t weight_hh. The same two functions, in the same order, as the two calls
 * from Python (stepweights.cell, then Int8Linear), so the same values. work: 5H floats (the gates,
 * tanh C_t); q: H bytes. */
void lstm_step_row_int8(int64_t H, const float *restrict hz, const float *restrict xz, const float *restrict c_prev,
                        float *restrict work, float *restrict c, float *restrict h, int64_t N, const int8_t *restrict W,
                        const int32_t *restrict rowsum, const float *restrict scale, const float *restrict bias,
                        float *restrict y, uint8_t *restrict q) {
    for (int64_t k = 0; k < 4 * H; k++) work[k] = hz[k];
    lstm_cell_forward(1, H, work, xz, c_prev, c, work + 4 * H, h);
    gemv_int8(N, H, W, rowsum, scale, bias, h, y, q);
}

#else
int32_t gemv_int8_available(void) { return 0; }

void lstm_step_row_int8(int64_t H, const float *hz, const float *xz, const float *c_prev, float *work, float *c,
                        float *h, int64_t N, const int8_t *W, const int32_t *rowsum, const float *scale,
                        const float *bias, float *y, uint8_t *q) {
    (void)H; (void)hz; (void)xz; (void)c_prev; (void)work; (void)c; (void)h; (void)N; (void)W; (void)rowsum;
    (void)scale; (void)bias; (void)y; (void)q;
}

void gemv_int8(int64_t N, int64_t K, const int8_t *W, const int32_t *rowsum, const float *scale, const float *bias,
               const float *x, float *y, uint8_t *q) {
    (void)N; (void)K; (void)W; (void)rowsum; (void)scale; (void)bias; (void)x; (void)y; (void)q;
}
#endif

/* The gate arithmetic of one LSTM time step, fused: one pass over (B, H) forward and one backward.
 *
 * These are the equations of `LSTMRecurrence` (model/lm.py; Part 1 notation, docs/lstm-backprop.md),
 * which also runs them as PyTorch ops where this file is not built. The matrix products stay in
 * PyTorch (MKL/oneDNN); this file replaces the ~11 small elementwise kernels per step in each
 * direction, whose launches and memory passes cost more than their arithmetic.
 *
 * Built at first use by `model/kernels/__init__.py` with the machine's C compiler (-O3 -march=native), so the
 * loops vectorise for the CPU at hand (AVX-512, AVX2, ...). Gate order in a row of z: i, f, c~, o.
 */
#include <stdint.h>

#include "common.h"

static inline float sigmoid_(float x) { return 1.0f / (1.0f + exp_(-x)); }
static inline float tanh_(float x) { return 2.0f / (1.0f + exp_(-2.0f * x)) - 1.0f; }

/* Forward, one step. a (B, 4H): in h_{t-1} weight_hh, to which xz_t = x_t weight_ih + b (B, 4H) is added
 * first unless xz_t is NULL (then a holds all of z_t); out the gates i, f, c~, o. c_prev (B, H):
 * C_{t-1}; c, tc, h (B, H): out C_t, tanh(C_t), h_t. All rows contiguous. (The slopes σ', tanh'
 * are not stored: the backward recomputes them from the gates, which saves a (T, B, 4H) buffer.) */
void lstm_cell_forward(int64_t B, int64_t H, float *restrict a, const float *restrict xz_t,
                       const float *restrict c_prev, float *restrict c, float *restrict tc, float *restrict h) {
#pragma omp parallel for if (B * H >= PARALLEL_MIN) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *ab = a + b * 4 * H;
        const float *cpb = c_prev + b * H;
        float *cb = c + b * H, *tcb = tc + b * H, *hb = h + b * H;
        if (xz_t) {
            const float *xb = xz_t + b * 4 * H;
#pragma omp simd
            for (int64_t k = 0; k < 4 * H; k++) ab[k] += xb[k];
        }
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float i = sigmoid_(ab[j]), f = sigmoid_(ab[H + j]), g = tanh_(ab[2 * H + j]), o = sigmoid_(ab[3 * H + j]);
            ab[j] = i; ab[H + j] = f; ab[2 * H + j] = g; ab[3 * H + j] = o;
            float cc = f * cpb[j] + i * g;  /* C_t = f ⊙ C_{t-1} + i ⊙ c~ */
            float t = tanh_(cc);
            cb[j] = cc; tcb[j] = t; hb[j] = o * t;  /* h_t = o ⊙ tanh(C_t) */
        }
    }
}

/* Backward, one step. d_h (B, H): δz_{t+1} weight_hh^T (the recurrent path); d_hs_t (B, H, row
 * stride ld): ∂E/∂h_t from above; d_c (B, H): in δC_{t+1} ⊙ f_{t+1}, out δC_t ⊙ f_t (for t-1);
 * dz (B, 4H): out δz_t = (δi, δf, δc~, δo), through the slopes:
 *     δ_t  = ∂E/∂h_t + δz_{t+1} weight_hh^T
 *     δC_t = δ_t ⊙ o_t ⊙ (1 - tanh²C_t) + δC_{t+1} ⊙ f_{t+1}
 *     δi = δC_t ⊙ c~ ⊙ σ'   δf = δC_t ⊙ C_{t-1} ⊙ σ'   δc~ = δC_t ⊙ i ⊙ tanh'   δo = δ_t ⊙ tanh(C_t) ⊙ σ' */
void lstm_cell_backward(int64_t B, int64_t H, const float *restrict gates, const float *restrict c_prev,
                        const float *restrict tc, const float *restrict d_h, const float *restrict d_hs_t, int64_t ld,
                        float *restrict d_c, float *restrict dz) {
#pragma omp parallel for if (B * H >= PARALLEL_MIN) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        const float *gb = gates + b * 4 * H, *cpb = c_prev + b * H, *tcb = tc + b * H;
        const float *dhb = d_h + b * H, *dhsb = d_hs_t + b * ld;
        float *dcb = d_c + b * H, *dzb = dz + b * 4 * H;
#pragma omp simd
        for (int64_t j = 0; j < H; j++) {
            float i = gb[j], f = gb[H + j], g = gb[2 * H + j], o = gb[3 * H + j];
            float delta = dhb[j] + dhsb[j], t = tcb[j];
            float dc = dcb[j] + delta * o * (1.0f - t * t);
            dzb[j] = dc * g * (i - i * i);
            dzb[H + j] = dc * cpb[j] * (f - f * f);
            dzb[2 * H + j] = dc * i * (1.0f - g * g);
            dzb[3 * H + j] = delta * t * (o - o * o);
            dcb[j] = dc * f;
        }
    }
}

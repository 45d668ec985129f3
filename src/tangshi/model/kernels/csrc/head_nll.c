/* The training loss's elementwise work on one chunk of the output layer, fused: `HeadNLL` (model/head_loss.py)
 * multiplies h Wᵀ in PyTorch, then this turns the logits into the loss and ∂E/∂logits in place, in
 * three passes over each row (add the bias and find the maximum; exp and sum; divide), where the
 * PyTorch ops took about eight (the bias copied into the product's output, amax, sub, exp, sum, two
 * divisions, the target's correction), each over the whole (rows, V) chunk.
 *
 * Per row r with target t = targets[r] (0 <= t < V, checked by the caller), s the row of h Wᵀ:
 *     v = s + b;  with the assignment's ReLU: live = v > 0, v = max(v, 0)
 *     m = max v;  e = exp(v − m);  z = Σ e
 *     loss_r = log z + m − v_t                          (−log softmax(v)_t)
 *     s ← (e / z − onehot(t)) ⊙ live / N                 (∂E/∂v of the mean over N rows)
 * Returns Σ_r loss_r, summed in float64. The same equations as HeadNLL's PyTorch ops, which run
 * where this file is not built; the values differ in the last bits (this exp is exp_, common.h).
 */
#include <math.h>
#include <stdint.h>

#include "common.h"

double head_nll_rows(int64_t n, int64_t V, float *restrict s, const float *restrict bias,
                     const int64_t *restrict targets, int32_t relu, int64_t N) {
    double total = 0.0;
    const float fN = (float)N;
#pragma omp parallel for reduction(+ : total) if (n * V >= PARALLEL_MIN) schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *row = s + r * V;
        const int64_t t = targets[r];
        float m = -INFINITY;
        if (relu) {
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < V; j++) {
                float v = row[j] + bias[j];
                v = v > 0.0f ? v : 0.0f;  /* live = v > 0 is recovered from v below: max(v, 0) > 0 ⟺ v > 0 */
                row[j] = v;
                m = v > m ? v : m;
            }
        } else {
#pragma omp simd reduction(max : m)
            for (int64_t j = 0; j < V; j++) {
                float v = row[j] + bias[j];
                row[j] = v;
                m = v > m ? v : m;
            }
        }
        const float v_t = row[t];
        float z = 0.0f;
        if (relu) {  /* e > 0 always (exp_ never underflows to 0), so a dead entry keeps its sign bit as the flag */
#pragma omp simd reduction(+ : z)
            for (int64_t j = 0; j < V; j++) {
                float e = exp_(row[j] - m);
                z += e;
                row[j] = row[j] > 0.0f ? e : -e;
            }
        } else {
#pragma omp simd reduction(+ : z)
            for (int64_t j = 0; j < V; j++) {
                float e = exp_(row[j] - m);
                z += e;
                row[j] = e;
            }
        }
        total += log((double)z) + (double)m - (double)v_t;
        const float e_t = row[t];
        if (relu) {
#pragma omp simd
            for (int64_t j = 0; j < V; j++) row[j] = row[j] > 0.0f ? (row[j] / z) / fN : 0.0f;
            row[t] = e_t > 0.0f ? (e_t / z - 1.0f) / fN : 0.0f;
        } else {
#pragma omp simd
            for (int64_t j = 0; j < V; j++) row[j] = (row[j] / z) / fN;
            row[t] = (e_t / z - 1.0f) / fN;
        }
    }
    return total;
}

/* What the compiled kernels share: when they split rows over threads, and float32 math that the
 * compiler vectorises (no libm call). */
#ifndef TANGSHI_COMMON_H
#define TANGSHI_COMMON_H
#include <stdint.h>

/* Rows are split over OpenMP threads (torch's own runtime: the library links libgomp.so.1, which is
 * the copy torch has loaded, so torch.set_num_threads sets its team) above this many elements. */
#define PARALLEL_MIN 16384

/* exp(x) in float32, written so that the compiler vectorises it (no libm call): x = n ln2 + r,
 * |r| <= ln2/2, exp(x) = 2^n p(r) with Cephes' expf polynomial (about 1 ulp). x is clamped so that
 * 2^n stays a normal float: exp_ is never inf (so σ and tanh never see inf/inf); comparisons keep a
 * NaN a NaN. */
static inline float exp_(float x) {
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365402221679f ? -87.3365402221679f : x;
    float fn = __builtin_floorf(x * 1.44269504088896341f + 0.5f);
    int32_t n = (int32_t)fn;
    float r = x - fn * 0.693359375f;
    r = r + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    union { int32_t i; float f; } two_n;
    two_n.i = (n + 127) << 23;
    return p * two_n.f;
}

#endif

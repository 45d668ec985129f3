/* Sampling one row of the next-token distribution, compiled: `_choose`'s temperature, bias and mask,
 * then `_top_k`, `_top_p` and `_draw` (decode/search.py) for one row, in two calls around torch.softmax.
 *
 * Decoding one poem is ~60 steps of one row, and in NumPy or torch each of those steps cost a dozen
 * calls over the 6,837 probabilities (two full sorts among them), ~0.2 ms a step. Here neither the
 * k-th largest value nor the nucleus needs the whole row sorted: a histogram by binade (the float's
 * exponent) says which binade holds it, and only that one is sorted.
 *
 * The arithmetic is the batch path's, so the same row gives the same filtered probabilities and, from
 * the same uniform number, the same token (tests/test_generate.py compares them):
 *   - cumulative sums accumulate in float64 and are rounded to float32 at each position, as
 *     torch.cumsum does on the CPU (adding 0.0 is exact, so zeros may be skipped);
 *   - the nucleus threshold is the first sorted value whose ascending cumulative sum reaches
 *     (1 - top_p) of the total (`_top_p`); the mass below the sorted binade is summed in another
 *     order than the sorted one, which could only matter if two float64 sums of the same values
 *     rounded to different float32 numbers.
 * Built with lstm_cell.c into one library by model/kernels/__init__.py.
 */
#include <stddef.h>
#include <stdint.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

/* z (V) in place: z_j / temperature + bias_j where allowed_j, -inf elsewhere (bias may be NULL). */
void sample_prepare(int64_t V, float *restrict z, const uint8_t *restrict allowed, const float *restrict bias,
                    float temperature) {
    const float ninf = -__builtin_inff();
    if (bias) {
        for (int64_t j = 0; j < V; j++) z[j] = allowed[j] ? z[j] / temperature + bias[j] : ninf;
    } else {
        for (int64_t j = 0; j < V; j++) z[j] = allowed[j] ? z[j] / temperature : ninf;
    }
}

/* Sort n floats ascending in place: Hoare's quicksort (median of three; equal keys split evenly,
 * so ties cost nothing extra), insertion sort below 24 elements. */
static void sort_floats(float *a, int64_t n) {
    while (n > 24) {
        float x = a[0], y = a[n / 2], z = a[n - 1];
        float pivot = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t i = -1, j = n;
        for (;;) {
            do i++; while (a[i] < pivot);
            do j--; while (a[j] > pivot);
            if (i >= j) break;
            float t = a[i]; a[i] = a[j]; a[j] = t;
        }
        /* [0, j] <= pivot <= [j + 1, n): recurse into the smaller part, loop on the larger */
        if (j + 1 < n - j - 1) { sort_floats(a, j + 1); a += j + 1; n -= j + 1; }
        else { sort_floats(a + j + 1, n - j - 1); n = j + 1; }
    }
    for (int64_t i = 1; i < n; i++) {
        float v = a[i];
        int64_t k = i - 1;
        while (k >= 0 && a[k] > v) { a[k + 1] = a[k]; k--; }
        a[k + 1] = v;
    }
}

/* A probability's binade: its float32 exponent bits, 0..255 (0 holds zeros and subnormals; the sign
 * is dropped, so that a NaN, whose sign bit x86 sets, still indexes the histograms safely). */
static inline int binade(float p) {
    union { float f; uint32_t u; } v = {p};
    return (int)((v.u >> 23) & 0xFFu);
}

/* The smallest float of binade e: values v with binade(v) >= e are exactly those v >= lowest(e). */
static inline float lowest(int e) {
    union { uint32_t u; float f; } v = {(uint32_t)e << 23};
    return v.f;
}

/* The sum of the values under `below` (all values if below is +inf), in float64: eight running sums,
 * so that it vectorises; the batch path sums in sorted order, and the two agree to ~1e-16 relative,
 * far inside a float32 rounding step. */
static double sum_under(int64_t V, const float *p, float below) {
    double acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= V; j += 8)
        for (int l = 0; l < 8; l++) acc[l] += p[j + l] < below ? p[j + l] : 0.0f;
    double s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; j < V; j++) s += p[j] < below ? p[j] : 0.0f;
    return s;
}

/* The values v of p with lo <= v < hi, sorted ascending, into work (V + 16 floats); their count.
 * With AVX-512, 16 at a time, compressed in a register (a plain filter loop vectorises into
 * AVX-512's compressing stores to memory, which are slow). */
static int64_t sorted_band(int64_t V, const float *p, float lo, float hi, float *work) {
    int64_t n = 0, j = 0;
#ifdef __AVX512F__
    __m512 vlo = _mm512_set1_ps(lo), vhi = _mm512_set1_ps(hi);
    for (; j + 16 <= V; j += 16) {
        __m512 v = _mm512_loadu_ps(p + j);
        __mmask16 m = _mm512_cmp_ps_mask(v, vlo, _CMP_GE_OQ) & _mm512_cmp_ps_mask(v, vhi, _CMP_LT_OQ);
        if (!m) continue;
        _mm512_storeu_ps(work + n, _mm512_maskz_compress_ps(m, v));
        n += __builtin_popcount(m);
    }
#endif
    for (; j < V; j++)
        if (p[j] >= lo && p[j] < hi) work[n++] = p[j];
    sort_floats(work, n);
    return n;
}

/* Per binade, the count (count != NULL) or the mass (mass != NULL) of p's values: eight partial
 * histograms, so that neighbours in one binade do not wait on each other's store. */
static void binade_histogram(int64_t V, const float *p, int64_t *count, double *mass) {
    int32_t c[8][256] = {{0}};
    float m[8][256] = {{0}};
    int64_t j = 0;
    if (count)
        for (; j + 8 <= V; j += 8)
            for (int l = 0; l < 8; l++) c[l][binade(p[j + l])]++;
    else
        for (; j + 8 <= V; j += 8)
            for (int l = 0; l < 8; l++) m[l][binade(p[j + l])] += p[j + l];
    for (; j < V; j++) {
        c[0][binade(p[j])]++;
        m[0][binade(p[j])] += p[j];
    }
    for (int b = 0; b < 256; b++) {
        int64_t cs = 0;
        double ms = 0.0;
        for (int l = 0; l < 8; l++) { cs += c[l][b]; ms += m[l][b]; }
        if (count) count[b] = cs;
        if (mass) mass[b] = ms;
    }
}

/* The k-th largest of p's V values (duplicates counted), 0 < k < V: np.sort(p)[-k]. Only the binade
 * that holds it is sorted. */
static float kth_largest(int64_t V, const float *p, int64_t k, float *work) {
    int64_t count[256];
    binade_histogram(V, p, count, NULL);
    int64_t above = 0;
    int e = 255;
    while (above + count[e] < k) above += count[e--];
    int64_t n = sorted_band(V, p, e == 0 ? 0.0f : lowest(e), e == 255 ? __builtin_inff() : lowest(e + 1), work);
    return work[n - (k - above)];
}

/* The smallest kept probability of the nucleus: the first value s_j of p sorted ascending whose
 * cumulative sum cs_j reaches target = (1 - top_p) · cs_{V-1}. The binade where the cumulative mass
 * crosses the target is found from a histogram of mass by binade; only that binade is sorted (and,
 * should rounding put the crossing just past it, the values above it). */
static float nucleus_threshold(int64_t V, const float *p, float one_minus_top_p, float *work) {
    float target = one_minus_top_p * (float)sum_under(V, p, __builtin_inff());
    double mass[256];
    binade_histogram(V, p, NULL, mass);
    int e = 0;
    double under = mass[0];
    while (e < 254 && under < target) under += mass[++e];  /* the crossing is (about) in binade e */
    for (;; e--) {  /* the exact mass under binade e must stay short of the target; else look lower */
        double below = e == 0 ? 0.0 : sum_under(V, p, lowest(e));
        if (e > 0 && (float)below >= target) continue;
        int64_t n = sorted_band(V, p, e == 0 ? 0.0f : lowest(e), lowest(e + 1), work);
        double cs = below;
        for (int64_t i = 0; i < n; i++) {
            cs += work[i];
            if ((float)cs >= target) return work[i];
        }
        n = sorted_band(V, p, lowest(e + 1), __builtin_inff(), work);  /* rounding: the crossing is above */
        for (int64_t i = 0; i < n; i++) {
            cs += work[i];
            if ((float)cs >= target) return work[i];
        }
        return n ? work[n - 1] : 0.0f;
    }
}

/* p[j, j + 16) (cut at V) is all zeros. */
static inline int zeros16(const float *p, int64_t j, int64_t V) {
    if (j + 16 > V) return 0;
    int any = 0;
    for (int l = 0; l < 16; l++) any |= p[j + l] != 0.0f;
    return !any;
}

/* Filter p (V, the softmax of one row; in place) by top_k (0: off) and the nucleus (use_top_p:
 * keep the tokens whose mass above them is at most top_p of the row's), then draw with the uniform
 * u in [0, 1): the first index whose cumulative probability exceeds u · the total, or the most
 * probable token where rounding lands on a zero. work: V + 16 floats of scratch. */
int64_t sample_row(int64_t V, float *restrict p, int64_t top_k, int32_t use_top_p, float one_minus_top_p, float u,
                   float *restrict work) {
    if (top_k > 0 && top_k < V) {
        float kth = kth_largest(V, p, top_k, work);
        for (int64_t j = 0; j < V; j++) p[j] = p[j] < kth ? 0.0f : p[j];
    }
    if (use_top_p) {
        float theta = nucleus_threshold(V, p, one_minus_top_p, work);
        for (int64_t j = 0; j < V; j++) p[j] = p[j] < theta ? 0.0f : p[j];
    }
    double total = 0.0;  /* in index order, as torch.cumsum; blocks of zeros skipped (adding 0 is exact) */
    for (int64_t j = 0; j < V; j += 16)
        if (!zeros16(p, j, V))
            for (int64_t i = j; i < j + 16 && i < V; i++) total += p[i];
    float target = u * (float)total;
    int64_t idx = V - 1;
    double cs = 0.0;
    for (int64_t j = 0; j < V && idx == V - 1; j += 16) {
        if (zeros16(p, j, V)) continue;
        for (int64_t i = j; i < j + 16 && i < V; i++) {
            cs += p[i];
            if (p[i] != 0.0f && (float)cs > target) { idx = i; break; }
        }
    }
    if (!(p[idx] > 0.0f)) {  /* only through rounding at the very top of the row: the first most probable */
        idx = 0;
        for (int64_t j = 1; j < V; j++)
            if (p[j] > p[idx]) idx = j;
    }
    return idx;
}

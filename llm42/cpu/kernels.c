/* llm42's CPU kernels for one-token decode steps: matrix-vector products over bf16, int8 and int4 weights,
 * and attention for one query over a bf16 KV cache. Plain C that the compiler vectorizes for the machine it
 * runs on (-O3 -march=native, or a named target such as x86-64-v3; -fno-trapping-math so that loops with
 * comparisons vectorize: nothing here reads the floating-point exception flags), threads from OpenMP (the same
 * runtime PyTorch uses, so one thread pool).
 *
 * Why: for one token, every weight is read once and used once, so speed is memory bandwidth. PyTorch's
 * kernels for these shapes run at half of it on a small CPU (bf16 rows converted slowly, int8/int4
 * compute-bound, batched attention matmuls on strided bf16 views); these stream the weights once with fp32
 * accumulation, and keep activations exact (weight-only quantization: the maths of llm42's int8/int4).
 *
 * Layouts: W[n][k] row-major (bf16 bits, int8); int4 in llm42's own packing (below: one layout on every CPU,
 * never PyTorch's, which differs between its AVX2 and AVX512 builds); KV cache [kv_heads][capacity][head_dim].
 * Paths: AVX512-BF16 / VNNI, AVX2 + FMA + F16C, and plain C for anything else (Arm, older x86). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/* (bits moved with memcpy, not a union: the vectorizer takes a loop of these only so) */
static inline float bf16(uint16_t v) {
    uint32_t u = (uint32_t)v << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline uint16_t to_bf16(float f) { /* round to nearest even, as PyTorch converts */
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t)((u >> 16) | 64); /* NaN stays NaN */
    return (uint16_t)((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

static inline void widen(const uint16_t *x, float *out, int64_t k) {
    for (int64_t i = 0; i < k; i++) out[i] = bf16(x[i]);
}

/* m rows of x in groups of at most `most`, as even as they go (9 rows in fours as 3 + 3 + 3, not 4 + 4 + 1: a group
 * of one waits on its sums' latency as long as a group of four): the size of a group */
static inline int64_t x_group(int64_t m, int64_t most) {
    int64_t groups = (m + most - 1) / most;
    return (m + groups - 1) / groups;
}

int llm42_kernels_version(void) { return 15; }

/* How far ahead the products prefetch their weights, in bytes: the integer ones (AVX512-VNNI and AVX2), the bf16
 * ones on AVX512-BF16 (dot_bf16) and the AVX2 panels against several rows of x (panel_tile). The VNNI ones fetched the
 * next row's, 1-2 KB ahead in a 2048-wide row, too close to hide memory's latency when it streams fast (the 42dot step,
 * old and new library alternating in one process: int4 17.07 -> 15.46 and 16.86 -> 15.17 ms, int8 21.68 -> 20.99 and
 * 22.86 -> 21.99; within 2 % either way in slower hours); the AVX2 ones fetched nothing (int4 over six 42dot layers,
 * forced to that class: one row 3.95 -> 3.61 ms, four rows side by side 14.5 -> 10.4). */
enum { AHEAD = 4096 };

/* y[n] = W[n][k] x[k], W bf16 */
#if defined(__AVX512BF16__)
/* R weight rows (from r) times XS rows of x (x, y already at the first of them; y's rows n apart). AVX512-BF16:
 * 32 products of bf16 pairs per instruction, accumulated in fp32 in one sum per (weight row, x row) over the
 * 32-element chunks in order, then the tail. Every bf16 product below sums in exactly this order, so each row of a
 * several-row product is the same bits as its own one-row product; R and XS are constants at each call, so the
 * R x XS sums stay in registers. The weights `ahead` elements on are prefetched (0: with several rows of x, the
 * next R rows' at this chunk, else none; -1: none, an earlier group of rows of x fetched them). */
static inline __attribute__((always_inline)) void dot_bf16(const uint16_t *w, const uint16_t *x, uint16_t *y,
                                                           int64_t r, const int R, const int XS, int64_t n,
                                                           int64_t k, int64_t ahead) {
    int64_t body = k - k % 32;
    __m512 acc[4][8];
    for (int a = 0; a < R; a++)
        for (int j = 0; j < XS; j++) acc[a][j] = _mm512_setzero_ps();
    for (int64_t i = 0; i < body; i += 32)
        for (int a = 0; a < R; a++) {
            if (ahead > 0 || (XS > 1 && ahead == 0)) {
                const uint16_t *next = ahead ? w + (r + a) * k + i + ahead : w + (r + a + R) * k + i;
                _mm_prefetch((const char *)next, _MM_HINT_T0);
            }
            __m512bh wv = (__m512bh)_mm512_loadu_si512(w + (r + a) * k + i);
            for (int j = 0; j < XS; j++)
                acc[a][j] = _mm512_dpbf16_ps(acc[a][j], wv, (__m512bh)_mm512_loadu_si512(x + j * k + i));
        }
    for (int a = 0; a < R; a++)
        for (int j = 0; j < XS; j++) {
            float s = _mm512_reduce_add_ps(acc[a][j]);
            for (int64_t t = body; t < k; t++) s += bf16(w[(r + a) * k + t]) * bf16(x[j * k + t]);
            y[j * n + r + a] = to_bf16(s);
        }
}

/* Long rows against 2-4 rows of x (a verify of 1-3 drafts over the 42dot shape): 4 weight rows side by side (the
 * path below for more rows) read slower than one row at a time, and one weight row against 2-4 rows of x has too few
 * chains to hide the latency of a horizontal sum per (row, x row). So each weight row's sums are left as vectors,
 * reduced 16 rows at a time (reduce16, 3 instructions a sum instead of 8), 16 results stored together. The same
 * bits as before. On a Zen 5, the old and new library alternating: the 42dot shape's bf16 verify of 3 rows 74.2 ->
 * 63.6 ms, of 4 rows 78.3 -> 70.6 (a step 61; in a faster hour 3 rows 55.6 -> 52.5, a step 41); with 5 or more rows
 * of x (in groups) and on SmolLM2's short rows this way was no faster. */
static inline int slot(int64_t r) { return (int)(4 * (r % 4) + r / 4); } /* where row r of 16 goes into reduce16 */

/* 16 vectors' horizontal sums as one vector, each in exactly _mm512_reduce_add_ps's order (lanes i and i + 8 first,
 * then 4 apart, 2, 1), so each is the same bits as dot_bf16's: vector slot(r) in, row r's sum in lane r out */
static inline __m512 reduce16(const __m512 *v) {
    __m512 w[8], x[4], y[2];
    for (int p = 0; p < 8; p++)
        w[p] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * p], v[2 * p + 1], 0xEE));
    for (int g = 0; g < 4; g++)
        x[g] = _mm512_add_ps(_mm512_shuffle_f32x4(w[2 * g], w[2 * g + 1], 0x88),
                             _mm512_shuffle_f32x4(w[2 * g], w[2 * g + 1], 0xDD));
    for (int h = 0; h < 2; h++) {
        __m512d a = _mm512_castps_pd(x[2 * h]), b = _mm512_castps_pd(x[2 * h + 1]);
        y[h] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(y[0], y[1], 0x88), _mm512_shuffle_ps(y[0], y[1], 0xDD));
}

/* weight rows t0 .. t0 + rows - 1 (at most 16) against XS rows of x */
static inline __attribute__((always_inline)) void tile_bf16(const uint16_t *w, const uint16_t *x, uint16_t *y,
                                                            int64_t t0, int64_t rows, const int XS, int64_t n,
                                                            int64_t k) {
    int64_t body = k - k % 32;
    __m512 part[4][16];
    for (int64_t t = 0; t < 16; t++) {
        __m512 acc[4];
        for (int j = 0; j < XS; j++) acc[j] = _mm512_setzero_ps();
        for (int64_t i = 0; i < body && t < rows; i += 32) {
            _mm_prefetch((const char *)(w + (t0 + t + 1) * k + i), _MM_HINT_T0);
            __m512bh wv = (__m512bh)_mm512_loadu_si512(w + (t0 + t) * k + i);
            for (int j = 0; j < XS; j++)
                acc[j] = _mm512_dpbf16_ps(acc[j], wv, (__m512bh)_mm512_loadu_si512(x + j * k + i));
        }
        for (int j = 0; j < XS; j++) part[j][slot(t)] = acc[j];
    }
    for (int j = 0; j < XS; j++) {
        float s[16];
        _mm512_storeu_ps(s, reduce16(part[j]));
        for (int64_t t = 0; t < rows; t++) {
            for (int64_t i = body; i < k; i++) s[t] += bf16(w[(t0 + t) * k + i]) * bf16(x[j * k + i]);
            y[j * n + t0 + t] = to_bf16(s[t]);
        }
    }
}

void llm42_gemv_bf16(const uint16_t *restrict w, const uint16_t *restrict x, uint16_t *restrict y, int64_t n,
                     int64_t k) {
    /* one weight row after another: each thread streams its part of W in memory order (four rows side by side,
     * as this kernel first did, ran at 15-20 GB/s on 576-wide rows where one row at a time runs at 25-30), 4 KB of
     * it fetched ahead (left to the hardware's prefetcher, six 42dot layers took 3-10 % longer, SmolLM2's 7-8 %) */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) dot_bf16(w, x, y, r, 1, 1, n, k, AHEAD / 2);
}
#elif defined(__AVX2__)
static inline float hsum8(__m256 v);
void llm42_gemm_bf16(const uint16_t *restrict w, const uint16_t *restrict x16, uint16_t *restrict y, int64_t m,
                     int64_t n, int64_t k);

void llm42_gemv_bf16(const uint16_t *restrict w, const uint16_t *restrict x16, uint16_t *restrict y, int64_t n,
                     int64_t k) {
    llm42_gemm_bf16(w, x16, y, 1, n, k); /* one row of x: the several-row product below is the same loop */
}
#else
void llm42_gemv_bf16(const uint16_t *restrict w, const uint16_t *restrict x16, uint16_t *restrict y, int64_t n,
                     int64_t k) {
    float *x = malloc(sizeof(float) * k);
    widen(x16, x, k);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r += 4) {
        const uint16_t *w0 = w + r * k, *w1 = w0 + k, *w2 = w1 + k, *w3 = w2 + k;
        if (r + 4 <= n) {
            float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
#pragma omp simd reduction(+ : a0, a1, a2, a3)
            for (int64_t i = 0; i < k; i++) {
                float xi = x[i];
                a0 += bf16(w0[i]) * xi;
                a1 += bf16(w1[i]) * xi;
                a2 += bf16(w2[i]) * xi;
                a3 += bf16(w3[i]) * xi;
            }
            y[r] = to_bf16(a0), y[r + 1] = to_bf16(a1), y[r + 2] = to_bf16(a2), y[r + 3] = to_bf16(a3);
        } else {
            for (int64_t j = r; j < n; j++) {
                float a = 0;
                const uint16_t *wj = w + j * k;
#pragma omp simd reduction(+ : a)
                for (int64_t i = 0; i < k; i++) a += bf16(wj[i]) * x[i];
                y[j] = to_bf16(a);
            }
        }
    }
    free(x);
}
#endif

/* Y[m][n] = X[m][k] W[n][k]^T for a few rows of x (a verify pass): each weight row is read once for all m rows,
 * and each (row, x row) sum is accumulated in exactly the order llm42_gemv_bf16 uses, so a row's result is the
 * same bits as that row's own matrix-vector product. */
#if defined(__AVX512BF16__)
void llm42_gemm_bf16(const uint16_t *restrict w, const uint16_t *restrict x, uint16_t *restrict y, int64_t m,
                     int64_t n, int64_t k) {
    /* Short rows (up to 4 rows of x within 8 KB): one weight row at a time against up to 8 rows of x, W streamed
     * in memory order. Long rows: against 2-4 rows of x, one weight row at a time in tiles of 16 (tile_bf16); against
     * more, 4 weight rows against up to 4 rows of x, so that each x load serves 4 weight rows. Rows of x in groups
     * as even as they go; the weight rows of the next block prefetched (dot_bf16). On a Zen 5, alternating with
     * the kernel before in one process: SmolLM2's verify of 5 rows 8.5 -> 7.8 ms, of 9 rows 12.3 -> 10.2 (a step
     * 6.2); the 42dot shape's 3 rows 68.7 -> 57.0, 9 rows 102 -> 87 (a step 40). Short rows then fetched 4 KB ahead
     * by the first group of x rows only, where they had fetched the next row (1-3 KB) in every group: SmolLM2's
     * products, 2-5 rows 12 % faster, 9 rows 9 % (2 KB ahead: 3 % less; 8 KB: 9 rows 2 % slower). */
    int64_t block = m < 4 ? m : 4;
    if (m == 1 || block * k * 2 <= 8192) {
        int64_t g = x_group(m, 8);
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < n; r++)
            for (int64_t j = 0; j < m; j += g) {
                const uint16_t *xj = x + j * k;
                int64_t ahead = j == 0 ? AHEAD / 2 : -1;
                uint16_t *yj = y + j * n;
                switch (m - j < g ? m - j : g) {
                case 1: dot_bf16(w, xj, yj, r, 1, 1, n, k, ahead); break;
                case 2: dot_bf16(w, xj, yj, r, 1, 2, n, k, ahead); break;
                case 3: dot_bf16(w, xj, yj, r, 1, 3, n, k, ahead); break;
                case 4: dot_bf16(w, xj, yj, r, 1, 4, n, k, ahead); break;
                case 5: dot_bf16(w, xj, yj, r, 1, 5, n, k, ahead); break;
                case 6: dot_bf16(w, xj, yj, r, 1, 6, n, k, ahead); break;
                case 7: dot_bf16(w, xj, yj, r, 1, 7, n, k, ahead); break;
                default: dot_bf16(w, xj, yj, r, 1, 8, n, k, ahead);
                }
            }
        return;
    }
    if (m <= 4) { /* long rows, 2-4 rows of x: in tiles of 16 weight rows (tile_bf16) */
#pragma omp parallel for schedule(static)
        for (int64_t t0 = 0; t0 < n; t0 += 16) {
            int64_t rows = n - t0 < 16 ? n - t0 : 16;
            if (m == 2) tile_bf16(w, x, y, t0, rows, 2, n, k);
            else if (m == 3) tile_bf16(w, x, y, t0, rows, 3, n, k);
            else tile_bf16(w, x, y, t0, rows, 4, n, k);
        }
        return;
    }
    int64_t g = x_group(m, 4);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r += 4)
        for (int64_t j = 0; j < m; j += g) {
            const uint16_t *xj = x + j * k;
            uint16_t *yj = y + j * n;
            int64_t xs = m - j < g ? m - j : g;
            if (r + 4 > n) /* the last rows, when n is not a multiple of 4 */
                for (int64_t t = r; t < n; t++)
                    for (int64_t i = 0; i < xs; i++) dot_bf16(w, xj + i * k, yj + i * n, t, 1, 1, n, k, 0);
            else
                switch (xs) {
                case 1: dot_bf16(w, xj, yj, r, 4, 1, n, k, 0); break;
                case 2: dot_bf16(w, xj, yj, r, 4, 2, n, k, 0); break;
                case 3: dot_bf16(w, xj, yj, r, 4, 3, n, k, 0); break;
                default: dot_bf16(w, xj, yj, r, 4, 4, n, k, 0);
                }
        }
}
#elif defined(__AVX2__)
static inline __attribute__((always_inline)) void block_bf16(const uint16_t *w, const float *x, const uint16_t *x16,
                                                             uint16_t *y, int64_t r, int64_t j0, const int XS,
                                                             int64_t n, int64_t k, int64_t body) {
    const __m256i zero = _mm256_setzero_si256();
    __m256 acc[4][2];
    for (int j = 0; j < XS; j++) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
    for (int64_t i = 0; i < body; i += 16) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(w + r * k + i));
        __m256 lo = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v));
        __m256 hi = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v));
        for (int j = 0; j < XS; j++) {
            const float *xr = x + (j0 + j) * body + i;
            acc[j][0] = _mm256_fmadd_ps(lo, _mm256_load_ps(xr), acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(hi, _mm256_load_ps(xr + 8), acc[j][1]);
        }
    }
    for (int j = 0; j < XS; j++) {
        float s = hsum8(_mm256_add_ps(acc[j][0], acc[j][1]));
        for (int64_t i = body; i < k; i++) s += bf16(w[r * k + i]) * bf16(x16[(j0 + j) * k + i]);
        y[(j0 + j) * n + r] = to_bf16(s);
    }
}

void llm42_gemm_bf16(const uint16_t *restrict w, const uint16_t *restrict x16, uint16_t *restrict y, int64_t m,
                     int64_t n, int64_t k) {
    /* AVX2 without bf16 arithmetic: a bf16 is the top half of an fp32, so unpacking 16 weights with zeros below
     * gives 2 x 8 fp32 for free (in the order unpacklo/hi leave them: 0-3 and 8-11, then 4-7 and 12-15, which x
     * is put in once); 2 accumulators per row of x, fp32 throughout. One weight row after another (four side by
     * side, as the one-row kernel first did, ran at 60 % of the speed: each thread then streamed four places of W). */
    int64_t body = k - k % 16;
    float *x = aligned_alloc(32, sizeof(float) * m * (body + 16));
    for (int64_t j = 0; j < m; j++) /* each row of x in unpacklo/hi's order */
        for (int64_t i = 0; i < body; i += 16)
            for (int h = 0; h < 2; h++)
                for (int q = 0; q < 4; q++) {
                    x[j * body + i + h * 8 + q] = bf16(x16[j * k + i + h * 4 + q]);
                    x[j * body + i + h * 8 + 4 + q] = bf16(x16[j * k + i + 8 + h * 4 + q]);
                }
    int64_t g = x_group(m, 4); /* rows of x in groups of at most 4, as even as they go */
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++)
        for (int64_t j0 = 0; j0 < m; j0 += g) {
            switch (m - j0 < g ? m - j0 : g) {
            case 1: block_bf16(w, x, x16, y, r, j0, 1, n, k, body); break;
            case 2: block_bf16(w, x, x16, y, r, j0, 2, n, k, body); break;
            case 3: block_bf16(w, x, x16, y, r, j0, 3, n, k, body); break;
            default: block_bf16(w, x, x16, y, r, j0, 4, n, k, body);
            }
        }
    free(x);
}
#else
void llm42_gemm_bf16(const uint16_t *restrict w, const uint16_t *restrict x, uint16_t *restrict y, int64_t m,
                     int64_t n, int64_t k) {
    for (int64_t j = 0; j < m; j++) llm42_gemv_bf16(w, x + j * k, y + j * n, n, k);
}
#endif

/* bf16 weights two rows interleaved, for CPUs with bf16 arithmetic (AVX512-BF16) and rows of at most PAIR_K inputs
 * (SmolLM2's): pair p holds rows 2p and 2p + 1 in chunks of 32, chunk c of row 2p + a at p * 2k + 64c + 32a. Each
 * load of x then feeds two weight rows while the weights are still read as one stream in memory order. Two rows'
 * streams side by side in the row-major layout read slower from memory (SmolLM2's products, two threads: 35-38
 * against 45-51 GB/s), and one row at a time leaves each x load and horizontal sum to one row: with weights in cache
 * 9 rows of x ran at 5.9 G dpbf16/s against 7.5 in pairs, so a verify pass of SmolLM2 was bound by its arithmetic
 * where a step is bound by memory. Each row's sum runs over its chunks in order from zero, is reduced as
 * _mm512_reduce_add_ps reduces and rounded once: the bits of llm42_gemv_bf16 and llm42_gemm_bf16 for any m. */
#define PAIR_K 1536
int64_t llm42_bf16_pairs(int64_t n, int64_t k) { /* whether a weight [n][k] is laid out in pairs by this build */
#if defined(__AVX512BF16__)
    return n % 2 == 0 && k % 32 == 0 && k <= PAIR_K;
#else
    (void)n, (void)k;
    return 0;
#endif
}

#if defined(__AVX512BF16__)
/* pair p against XS rows of x (y's rows n apart); the weights `ahead` elements on are prefetched (0: not) */
static inline __attribute__((always_inline)) void dot_pair(const uint16_t *wp, const uint16_t *x, uint16_t *y,
                                                           int64_t p, const int XS, int64_t n, int64_t k,
                                                           int64_t ahead) {
    const uint16_t *w = wp + p * 2 * k;
    __m512 a0[9], a1[9];
    for (int j = 0; j < XS; j++) a0[j] = a1[j] = _mm512_setzero_ps();
    for (int64_t c = 0; c < k / 32; c++) {
        if (ahead) {
            _mm_prefetch((const char *)(w + c * 64 + ahead), _MM_HINT_T0);
            _mm_prefetch((const char *)(w + c * 64 + 32 + ahead), _MM_HINT_T0);
        }
        __m512bh v0 = (__m512bh)_mm512_loadu_si512(w + c * 64), v1 = (__m512bh)_mm512_loadu_si512(w + c * 64 + 32);
        for (int j = 0; j < XS; j++) {
            __m512bh xj = (__m512bh)_mm512_loadu_si512(x + j * k + c * 32);
            a0[j] = _mm512_dpbf16_ps(a0[j], v0, xj);
            a1[j] = _mm512_dpbf16_ps(a1[j], v1, xj);
        }
    }
    for (int j = 0; j < XS; j++) {
        y[j * n + 2 * p] = to_bf16(_mm512_reduce_add_ps(a0[j]));
        y[j * n + 2 * p + 1] = to_bf16(_mm512_reduce_add_ps(a1[j]));
    }
}
#endif

/* Y[m][n] = X[m][k] W[n][k]^T for W in pairs: each pair read once for every row of x (in groups of up to 9 rows: a
 * verify pass's in one, 18 chains of dot products; the first group fetching the weights 8 KB ahead), each thread one
 * stretch of pairs. Weights in cache (16384x576, two threads), G dpbf16/s row-major -> pairs: 9 rows of x 5.9-6.3 ->
 * 8.7-9.1 (groups of up to 8: 7.8-8.1), 5 rows 5.4 -> 7.8, one row 1.6 -> 2.7. */
void llm42_gemm_pairs(const uint16_t *restrict wp, const uint16_t *restrict x, uint16_t *restrict y, int64_t m,
                      int64_t n, int64_t k) {
#if defined(__AVX512BF16__)
    int64_t g = x_group(m, 9);
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n / 2; p++)
        for (int64_t j = 0; j < m; j += g) {
            const uint16_t *xj = x + j * k;
            uint16_t *yj = y + j * n;
            int64_t ahead = j == 0 ? AHEAD : 0;
            switch (m - j < g ? m - j : g) {
            case 1: dot_pair(wp, xj, yj, p, 1, n, k, ahead); break;
            case 2: dot_pair(wp, xj, yj, p, 2, n, k, ahead); break;
            case 3: dot_pair(wp, xj, yj, p, 3, n, k, ahead); break;
            case 4: dot_pair(wp, xj, yj, p, 4, n, k, ahead); break;
            case 5: dot_pair(wp, xj, yj, p, 5, n, k, ahead); break;
            case 6: dot_pair(wp, xj, yj, p, 6, n, k, ahead); break;
            case 7: dot_pair(wp, xj, yj, p, 7, n, k, ahead); break;
            case 8: dot_pair(wp, xj, yj, p, 8, n, k, ahead); break;
            default: dot_pair(wp, xj, yj, p, 9, n, k, ahead);
            }
        }
#else /* never laid out here (llm42_bf16_pairs); the row-major product of the unpacked weight */
    uint16_t *w = malloc(2 * n * k);
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < k / 32; c++) memcpy(w + r * k + c * 32, wp + (r / 2) * 2 * k + c * 64 + (r % 2) * 32, 64);
    llm42_gemm_bf16(w, x, y, m, n, k);
    free(w);
#endif
}

/* bf16 weights in panels of 16 rows, for CPUs without bf16 arithmetic (the AVX2 build): the products of a
 * verify pass then run as a small matrix multiply should, one weight load and one broadcast of x feeding 16 sums
 * each, where the row-major product above loads a vector of x per 8 weights and ends each row in a horizontal sum
 * (in-cache, 2 threads: 9.8 against 7.7 G 8-wide FMAs/s at 12 rows). Panel p holds rows 16p .. 16p + 15; for input
 * i, 16 values as 8 32-bit words, word l = row 16p + l in its low half, row 16p + 8 + l in its high half, so that
 * a shift and a mask make 2 x 8 fp32 of one load. Each output is one lane's sum over the inputs in order, the same
 * for every number of rows of x: a row of a verify pass is the same bits as a step's product of that row. */
int llm42_bf16_panel(void) {
#if defined(__AVX2__) && !defined(__AVX512BF16__)
    return 16;
#else
    return 0; /* the row-major kernels above are the fast ones there */
#endif
}

/* Row by row over blocks of 64 inputs (each row's block one contiguous read, the panel's block 2 KB that stays in L1):
 * walking the 16 rows input by input read them 4 KB apart at k = 2048, which the cache maps onto the same sets
 * (1.2 GB/s; 8 at k = 5632). */
#define BLOCK 64
static inline int64_t lane(int r) { return r < 8 ? 2 * r : 2 * (r - 8) + 1; } /* row r of a panel: its 16-bit slot */

void llm42_pack_bf16(const uint16_t *restrict w, uint16_t *restrict out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n / 16; p++)
        for (int64_t i0 = 0; i0 < k; i0 += BLOCK)
            for (int r = 0; r < 16; r++) {
                const uint16_t *row = w + (16 * p + r) * k;
                uint16_t *o = out + p * k * 16 + lane(r);
                for (int64_t i = i0; i < i0 + BLOCK && i < k; i++) o[i * 16] = row[i];
            }
}

/* the panels back as W[n][k] (bf16, for a state dict) ... */
void llm42_unpack_bf16(const uint16_t *restrict wp, uint16_t *restrict out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n / 16; p++)
        for (int64_t i0 = 0; i0 < k; i0 += BLOCK)
            for (int r = 0; r < 16; r++) {
                uint16_t *row = out + (16 * p + r) * k;
                const uint16_t *o = wp + p * k * 16 + lane(r);
                for (int64_t i = i0; i < i0 + BLOCK && i < k; i++) row[i] = o[i * 16];
            }
}

/* ... widened to fp32 as W^T [k][n] (a prompt's many-row product then multiplies by it as a transposed view): each
 * panel's 16 values of an input are one 64-byte line of W^T, written whole (into rows of W they were 16 scattered
 * writes: 2.5 GB/s) */
void llm42_widen_bf16p(const uint16_t *restrict wp, float *restrict out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < n / 16; p++)
        for (int64_t i = 0; i < k; i++) {
            const uint16_t *o = wp + (p * k + i) * 16;
            float *line = out + i * n + 16 * p;
            for (int l = 0; l < 8; l++) line[l] = bf16(o[2 * l]), line[8 + l] = bf16(o[2 * l + 1]);
        }
}

#define CHUNK 512 /* inputs per pass over a panel: 16 KB of it, still in L1 when the next group of x rows meets it */
#if defined(__AVX2__) && !defined(__AVX512BF16__)
/* P panels x XS rows of x over inputs i0 .. i1, P * XS <= 6 (each pair of accumulators a named variable: an array
 * of them is kept in memory, GCC replacing arrays by registers before it unrolls the loops that index them). The
 * sums start from `part` (16 floats per unit) after the first chunk and end there before the last. */
#define PANEL(a)                                                                                                     \
    if ((a) < P) {                                                                                                   \
        const __m256i v = _mm256_load_si256((const __m256i *)(wp + ((p0 + (a)) * k + i) * 16));                     \
        l##a = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)), h##a = _mm256_castsi256_ps(_mm256_and_si256(v, top)); \
    }
#define PICK(a, x0, x1, x2, x3) ((a) == 0 ? x0 : (a) == 1 ? x1 : (a) == 2 ? x2 : x3)
#define UNIT(u)                                                                                                      \
    if ((u) < P * XS) {                                                                                              \
        const __m256 b = _mm256_broadcast_ss(x + ((u) % XS) * k + i);                                                \
        c##u##l = _mm256_fmadd_ps(PICK((u) / XS, l0, l1, l2, l3), b, c##u##l);                                       \
        c##u##h = _mm256_fmadd_ps(PICK((u) / XS, h0, h1, h2, h3), b, c##u##h);                                       \
    }
#define LOAD(u)                                                                                                      \
    if ((u) < P * XS && i0 > 0)                                                                                      \
        c##u##l = _mm256_loadu_ps(part + (u) * 16), c##u##h = _mm256_loadu_ps(part + (u) * 16 + 8);
#define STORE(u)                                                                                                     \
    if ((u) < P * XS) {                                                                                              \
        _mm256_storeu_ps(part + (u) * 16, c##u##l), _mm256_storeu_ps(part + (u) * 16 + 8, c##u##h);                  \
        if (i1 == k)                                                                                                 \
            for (int l = 0; l < 16; l++)                                                                             \
                y[((u) % XS) * n + (p0 + (u) / XS) * 16 + l] = to_bf16(part[(u) * 16 + l]);                          \
    }
static inline __attribute__((always_inline)) void panel_tile(const uint16_t *wp, const float *x, uint16_t *y,
                                                             float *part, int64_t p0, const int P, const int XS,
                                                             int64_t n, int64_t k, int64_t i0, int64_t i1) {
    const __m256i top = _mm256_set1_epi32((int)0xffff0000);
    const __m256 z = _mm256_setzero_ps();
    __m256 c0l = z, c0h = z, c1l = z, c1h = z, c2l = z, c2h = z, c3l = z, c3h = z, c4l = z, c4h = z, c5l = z, c5h = z;
    LOAD(0) LOAD(1) LOAD(2) LOAD(3) LOAD(4) LOAD(5)
    for (int64_t i = i0; i < i1; i++) {
        __m256 l0 = z, h0 = z, l1 = z, h1 = z, l2 = z, h2 = z, l3 = z, h3 = z;
        if (XS > 1 && (i & 1) == 0) /* several rows of x: each panel AHEAD bytes on (see llm42_gemm_bf16p) */
            for (int a = 0; a < P; a++) _mm_prefetch((const char *)(wp + ((p0 + a) * k + i) * 16) + AHEAD, _MM_HINT_T0);
        PANEL(0) PANEL(1) PANEL(2) PANEL(3)
        UNIT(0) UNIT(1) UNIT(2) UNIT(3) UNIT(4) UNIT(5)
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
}
#else
/* plain C over the same layout and order (a build that does not pack calls this only from tests) */
static void panel_tile(const uint16_t *wp, const float *x, uint16_t *y, float *part, int64_t p0, const int P,
                       const int XS, int64_t n, int64_t k, int64_t i0, int64_t i1) {
    for (int a = 0; a < P; a++)
        for (int j = 0; j < XS; j++) {
            float *acc = part + (a * XS + j) * 16;
            if (i0 == 0)
                for (int l = 0; l < 16; l++) acc[l] = 0;
            for (int64_t i = i0; i < i1; i++)
                for (int l = 0; l < 8; l++) {
                    acc[l] = fmaf(bf16(wp[((p0 + a) * k + i) * 16 + 2 * l]), x[j * k + i], acc[l]);
                    acc[8 + l] = fmaf(bf16(wp[((p0 + a) * k + i) * 16 + 2 * l + 1]), x[j * k + i], acc[8 + l]);
                }
            if (i1 == k)
                for (int l = 0; l < 16; l++) y[j * n + (p0 + a) * 16 + l] = to_bf16(acc[l]);
        }
}
#endif

/* Y[m][n] = X[m][k] W[n][k]^T with W in panels (n a multiple of 16): rows of x in groups of at most 6, as even as
 * they go; a group of one row takes 4 panels at a time and a group of two 2 (enough independent sums to hide the
 * FMAs' latency), larger groups one; more than one group: the inputs in chunks, every group meeting a chunk of the
 * panel while it is in L1. With several rows of x each panel is fetched 4 KB ahead (the hardware's prefetcher fell
 * behind while they computed: six 42dot layers forced to this class on a Zen 5, the old and new library alternating,
 * 2 rows 16.3 -> 13.7 ms, 3 rows 22.0 -> 14.3, 5 rows 31.0 -> 15.5, 9 rows 44.1 -> 25.4; one row 13.7 either way). */
void llm42_gemm_bf16p(const uint16_t *restrict wp, const uint16_t *restrict x16, uint16_t *restrict y, int64_t m,
                      int64_t n, int64_t k) {
    if (m > 48) { /* at most 8 groups at a time (a prompt this long is widened instead: widen.py) */
        for (int64_t j = 0; j < m; j += 48) llm42_gemm_bf16p(wp, x16 + j * k, y + j * n, m - j < 48 ? m - j : 48, n, k);
        return;
    }
    float *x = malloc(sizeof(float) * m * k);
    for (int64_t i = 0; i < m * k; i++) x[i] = bf16(x16[i]);
    int64_t panels = n / 16, groups = (m + 5) / 6, g = (m + groups - 1) / groups;
    int64_t P = g == 1 ? 4 : g == 2 ? 2 : 1, chunk = groups == 1 ? k : CHUNK;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < panels; p += P) {
        float part[8][6 * 16]; /* each group's sums between chunks */
        int64_t pp = panels - p < P ? panels - p : P;
        for (int64_t i0 = 0; i0 < k; i0 += chunk) {
            int64_t i1 = i0 + chunk < k ? i0 + chunk : k;
            for (int64_t j0 = 0, gi = 0; j0 < m; j0 += g, gi++) {
                int64_t xs = m - j0 < g ? m - j0 : g;
                const float *xj = x + j0 * k;
                uint16_t *yj = y + j0 * n;
                float *acc = part[gi];
#define TILE(PP, XS) panel_tile(wp, xj, yj, acc, p, PP, XS, n, k, i0, i1)
                if (pp == 4 && xs == 1) TILE(4, 1);
                else if (pp == 2 && xs == 2) TILE(2, 2);
                else
                    for (int64_t a = 0; a < pp; a++) { /* one panel at a time (the last ones, or 3-6 rows of x) */
                        float *own = acc + a * 16 * xs; /* this panel's sums between chunks */
                        switch (xs) {
                        case 1: panel_tile(wp, xj, yj, own, p + a, 1, 1, n, k, i0, i1); break;
                        case 2: panel_tile(wp, xj, yj, own, p + a, 1, 2, n, k, i0, i1); break;
                        case 3: panel_tile(wp, xj, yj, own, p + a, 1, 3, n, k, i0, i1); break;
                        case 4: panel_tile(wp, xj, yj, own, p + a, 1, 4, n, k, i0, i1); break;
                        case 5: panel_tile(wp, xj, yj, own, p + a, 1, 5, n, k, i0, i1); break;
                        default: panel_tile(wp, xj, yj, own, p + a, 1, 6, n, k, i0, i1);
                        }
                    }
#undef TILE
            }
        }
    }
    free(x);
}

/* Weight-only int8 and int4 products. x is rounded to int8 per block of 32 inputs (its own scale, max|x|/127, as
 * llama.cpp's q8_0 does), so the weights meet x in integer dot products and are read at memory speed instead of
 * being converted to floats. Every build rounds x with the same scalar code, so the integer sums are the same on
 * every CPU; only the order of the fp32 sums of blocks differs. m rows of x share one pass over the weights (a
 * weight row, a few KB, stays in L1 while the m rows meet it): one token's step (m = 1), or a few verified ones. */

static void quantize_x(const uint16_t *x16, int64_t k, int8_t *xq, float *sx, int32_t *isum) {
    int64_t b = 0;
#if defined(__AVX2__)
    /* the same numbers eight at a time (the scalar loop took 33 us for the 5632 inputs of a down product, a tenth
     * of the product): max |x| is exact in any order, x * inv the same fp32 product, and the conversion rounds to
     * nearest even as lrintf does; the int8 packs then put the 32 values back in order */
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (; b < k / 32; b++) {
        __m256 v[4];
        for (int i = 0; i < 4; i++)
            v[i] = _mm256_castsi256_ps(_mm256_slli_epi32(
                _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(x16 + b * 32 + 8 * i))), 16));
        __m256 mx = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs), _mm256_and_ps(v[1], abs)),
                                  _mm256_max_ps(_mm256_and_ps(v[2], abs), _mm256_and_ps(v[3], abs)));
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        float m = _mm_cvtss_f32(_mm_max_ss(h, _mm_movehdup_ps(h)));
        __m256 inv = _mm256_set1_ps(m > 0 ? 127.0f / m : 0.0f);
        __m256i q[4];
        for (int i = 0; i < 4; i++) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], inv));
        __m256i bytes = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256((__m256i *)(xq + b * 32), _mm256_permutevar8x32_epi32(bytes, order));
        __m256i t = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i t4 = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
        t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, _MM_SHUFFLE(1, 0, 3, 2)));
        t4 = _mm_add_epi32(t4, _mm_shuffle_epi32(t4, _MM_SHUFFLE(2, 3, 0, 1)));
        sx[b] = m / 127.0f, isum[b] = _mm_cvtsi128_si32(t4);
    }
#endif
    for (; b < k / 32; b++) {
        float m = 0;
        for (int i = 0; i < 32; i++) m = fmaxf(m, fabsf(bf16(x16[b * 32 + i])));
        float inv = m > 0 ? 127.0f / m : 0.0f;
        int32_t s = 0;
        for (int i = 0; i < 32; i++) s += xq[b * 32 + i] = (int8_t)lrintf(bf16(x16[b * 32 + i]) * inv);
        sx[b] = m / 127.0f, isum[b] = s;
    }
}

typedef struct { int8_t *q; float *s; int32_t *sum; } QuantizedX;

static QuantizedX quantize_rows(const uint16_t *x16, int64_t m, int64_t k) {
    QuantizedX x = {aligned_alloc(64, (size_t)((m * k + 63) / 64 * 64)), malloc(sizeof(float) * m * (k / 32) + 4),
                    malloc(sizeof(int32_t) * m * (k / 32) + 4)};
#pragma omp parallel for if (m > 3) /* a prompt's rows: each its own, the same code and bits on any thread */
    for (int64_t j = 0; j < m; j++) quantize_x(x16 + j * k, k, x.q + j * k, x.s + j * (k / 32), x.sum + j * (k / 32));
    return x;
}

static void free_rows(QuantizedX x) { free(x.q), free(x.s), free(x.sum); }

/* one block of 32 in integers, as every path ends an odd block: int8 weights, or int4 codes (llm42's layout) */
static inline int32_t block_int8(const int8_t *w, const int8_t *xq) {
    int32_t d = 0;
    for (int i = 0; i < 32; i++) d += (int32_t)w[i] * xq[i];
    return d;
}

static inline int32_t block_int4(const uint8_t *q, const int8_t *xq) {
    int32_t d = 0;
    for (int i = 0; i < 16; i++) d += (int32_t)(q[i] & 15) * xq[i] + (int32_t)(q[i] >> 4) * xq[16 + i];
    return d;
}

#if defined(__AVX2__)
static inline float hsum8(__m256 v) {
    __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    a = _mm_add_ps(a, _mm_movehl_ps(a, a));
    return _mm_cvtss_f32(_mm_add_ss(a, _mm_movehdup_ps(a)));
}
#endif


/* sum over blocks b of sx[b] * (w . xq) over the block, w int8 [k] */
static inline float row_int8(const int8_t *w, const int8_t *xq, const float *sx, const int32_t *isum, int64_t nb) {
    int64_t b = 0;
    float a = 0;
#if defined(__AVX2__) && !defined(__AVX512VNNI__)
    /* 32 products per instruction pair: |xq| (unsigned) times w with xq's sign (signed), pairs summed in 16 bits
     * (at most 2 * 127 * 127, no saturation), then in 32 */
    __m256 acc = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (; b < nb; b++) {
        if ((b & 1) == 0) _mm_prefetch((const char *)(w + b * 32 + AHEAD), _MM_HINT_T0);
        __m256i x = _mm256_loadu_si256((const __m256i *)(xq + b * 32));
        __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x),
                                         _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(w + b * 32)), x));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones)), _mm256_set1_ps(sx[b]), acc);
    }
    a += hsum8(acc);
#endif
    (void)isum;
    for (; b < nb; b++) a += (float)block_int8(w + b * 32, xq + b * 32) * sx[b];
    return a;
}

#if defined(__AVX2__) && !defined(__AVX512VNNI__)
/* AVX2, several rows of x (a verify, a short prompt): four weight rows at a time, each block of x loaded and its
 * signs taken once for the four, and the four chains of FMAs side by side (one row's chain alone waits on each FMA
 * before the next). Each row sums its blocks in the same order as row_int8 does: the bits of one row at a time. */
#define INT8_BLOCK(acc, w)                                                                                             \
    do {                                                                                                               \
        if ((b & 1) == 0) _mm_prefetch((const char *)((w) + b * 32 + AHEAD), _MM_HINT_T0);                            \
        acc = _mm256_fmadd_ps(                                                                                         \
            _mm256_cvtepi32_ps(_mm256_madd_epi16(                                                                      \
                _mm256_maddubs_epi16(ax, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)((w) + b * 32)), xv)),  \
                ones)),                                                                                                \
            s, acc);                                                                                                   \
    } while (0)

static inline __attribute__((always_inline)) void rows_int8(const int8_t *w, int64_t k, const int8_t *xq,
                                                            const float *sx, int64_t nb, float *out) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t b = 0; b < nb; b++) {
        __m256i xv = _mm256_loadu_si256((const __m256i *)(xq + b * 32)), ax = _mm256_sign_epi8(xv, xv);
        __m256 s = _mm256_set1_ps(sx[b]);
        INT8_BLOCK(a0, w);
        INT8_BLOCK(a1, w + k);
        INT8_BLOCK(a2, w + 2 * k);
        INT8_BLOCK(a3, w + 3 * k);
    }
    out[0] = hsum8(a0), out[1] = hsum8(a1), out[2] = hsum8(a2), out[3] = hsum8(a3);
}
#endif

#if defined(__AVX512VNNI__)
/* AVX512-VNNI: 64 products per instruction. VNNI multiplies unsigned by signed bytes: w goes in as w + 128 (a sign
 * flip of the bits), and 128 * sum over blocks of sx * sum(xq), a number per row of x, comes off at the end. Per
 * row of x, once: each pair of blocks' scales as one vector (the first block's in the low eight lanes), so a pair
 * costs a weight row a load, the flip, one dot product, a conversion and an FMA. One weight row at a time against
 * XS rows of x (1 for a token's step, up to 4 for a verify pass or a short prompt: the load and flip serve them
 * all), two accumulators per (row, x row) for even and odd pairs of blocks; each sum goes in this order whatever XS
 * and the number of rows of x are, so each row of a verify pass is the bits of a step's product. The next row is
 * prefetched as this one is read (a verify pass of 9 rows 84 -> 76 ms over the 42dot model's weights, a step ~4 %). */
typedef struct { __m512 *s; float *corr; } PairScales;

static PairScales pair_scales(QuantizedX x, int64_t m, int64_t nb) {
    int64_t pairs = nb / 2;
    PairScales p = {aligned_alloc(64, sizeof(__m512) * (m * pairs + 1)), malloc(sizeof(float) * m)};
    for (int64_t j = 0; j < m; j++) {
        const float *sx = x.s + j * nb;
        const int32_t *isum = x.sum + j * nb;
        float c = 0;
        for (int64_t t = 0; t < pairs; t++) {
            p.s[j * pairs + t] = _mm512_insertf32x8(_mm512_set1_ps(sx[2 * t]), _mm256_set1_ps(sx[2 * t + 1]), 1);
            c += sx[2 * t] * (float)isum[2 * t] + sx[2 * t + 1] * (float)isum[2 * t + 1];
        }
        p.corr[j] = 128.0f * c;
    }
    return p;
}

#define INT8_PAIR(acc, t)                                                                                              \
    do {                                                                                                               \
        __m512i w_ = _mm512_xor_si512(_mm512_loadu_si512(w + (t) * 64), flip);                                         \
        _mm_prefetch((const char *)(w + (t) * 64 + AHEAD), _MM_HINT_T0);                                               \
        for (int j = 0; j < XS; j++) {                                                                                 \
            __m512i d_ = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w_, _mm512_loadu_si512(x.q + j * k + (t) * 64));  \
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d_), ps.s[j * pairs + (t)], acc[j]);                           \
        }                                                                                                              \
    } while (0)

/* weight row w against rows 0 .. XS - 1 of x (x, ps and y already at the first of them; y's rows n apart) */
static inline __attribute__((always_inline)) void vnni_int8(const int8_t *w, float scale, QuantizedX x, PairScales ps,
                                                            int64_t k, int64_t nb, const int XS, uint16_t *y,
                                                            int64_t n) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    __m512 even[4], odd[4];
    for (int j = 0; j < XS; j++) even[j] = odd[j] = _mm512_setzero_ps();
    int64_t pairs = nb / 2, t = 0;
    for (; t + 2 <= pairs; t += 2) {
        INT8_PAIR(even, t);
        INT8_PAIR(odd, t + 1);
    }
    if (t < pairs) INT8_PAIR(even, t);
    for (int j = 0; j < XS; j++) {
        float r = _mm512_reduce_add_ps(_mm512_add_ps(even[j], odd[j])) - ps.corr[j];
        for (int64_t b = 2 * pairs; b < nb; b++) /* an odd last block */
            r += (float)block_int8(w + b * 32, x.q + j * k + b * 32) * x.s[j * nb + b];
        y[j * n] = to_bf16(r * scale);
    }
}
#endif

/* y[m][n] = scale[n] * (W[n][k] x[j]) for each of m rows x[j], W int8 row-major, one bf16 scale per row */
void llm42_gemm_int8(const int8_t *restrict w, const uint16_t *restrict scale, const uint16_t *restrict x16,
                     uint16_t *restrict y, int64_t m, int64_t n, int64_t k) {
    if (k % 32) { /* no block size fits (the 42dot and SmolLM2 shapes never take this path): exact fp32 */
        for (int64_t j = 0; j < m; j++)
            for (int64_t r = 0; r < n; r++) {
                float a = 0;
                for (int64_t i = 0; i < k; i++) a += (float)w[r * k + i] * bf16(x16[j * k + i]);
                y[j * n + r] = to_bf16(a * bf16(scale[r]));
            }
        return;
    }
    int64_t nb = k / 32;
    QuantizedX x = quantize_rows(x16, m, k);
#if defined(__AVX512VNNI__)
    /* a row at a time, each thread one stretch of rows (one stream of weights in memory order: 70 GB/s on a Zen 5's
     * two threads, where four rows' streams at once ran at 55 and interleaved chunks of rows at two thirds) */
    PairScales ps = pair_scales(x, m, nb);
    int64_t g = x_group(m, 4);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < m; j += g) {
            QuantizedX xj = {x.q + j * k, x.s + j * nb, x.sum + j * nb};
            PairScales pj = {ps.s + j * (nb / 2), ps.corr + j};
            float sr = bf16(scale[r]);
            switch (m - j < g ? m - j : g) {
            case 1: vnni_int8(w + r * k, sr, xj, pj, k, nb, 1, y + j * n + r, n); break;
            case 2: vnni_int8(w + r * k, sr, xj, pj, k, nb, 2, y + j * n + r, n); break;
            case 3: vnni_int8(w + r * k, sr, xj, pj, k, nb, 3, y + j * n + r, n); break;
            default: vnni_int8(w + r * k, sr, xj, pj, k, nb, 4, y + j * n + r, n);
            }
        }
    free(ps.s), free(ps.corr);
#elif defined(__AVX2__)
    /* one token: a row at a time, so the weights stream in memory order; several: four rows share each x load */
    int64_t quads = m > 1 ? n / 4 : 0;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < quads; t++)
        for (int64_t j = 0; j < m; j++) {
            float a[4];
            rows_int8(w + 4 * t * k, k, x.q + j * k, x.s + j * nb, nb, a);
            for (int i = 0; i < 4; i++) y[j * n + 4 * t + i] = to_bf16(a[i] * bf16(scale[4 * t + i]));
        }
#pragma omp parallel for schedule(static) if (n > 4 * quads)
    for (int64_t r = 4 * quads; r < n; r++) /* all rows of one token, or the last n % 4 of several */
    {
        float s = bf16(scale[r]);
        for (int64_t j = 0; j < m; j++)
            y[j * n + r] = to_bf16(row_int8(w + r * k, x.q + j * k, x.s + j * nb, x.sum + j * nb, nb) * s);
    }
#else
#pragma omp parallel for schedule(dynamic, 32)
    for (int64_t r = 0; r < n; r++) {
        float s = bf16(scale[r]);
        for (int64_t j = 0; j < m; j++)
            y[j * n + r] = to_bf16(row_int8(w + r * k, x.q + j * k, x.s + j * nb, x.sum + j * nb, nb) * s);
    }
#endif
    free_rows(x);
}

/* llm42's int4 layout (the same on every CPU, and in saved folders): W[n][k/2] bytes, row-major; per block of 32
 * inputs 16 bytes, byte j holding input j in its low nibble and input 16 + j in its high nibble (llama.cpp's q4_0
 * order). Scales, per weight row 4 + 2 * groups bytes (scales_row): the row's scale unit d (fp32), then per group of
 * `group` inputs its scale in units of d (uint8) and its zero in sixteenths of its scale (int8): scale = d * s and
 * w = (q - 8 + z / 16) * scale, 4.5 bits a weight in groups of 32 (a bf16 scale and zero per group took 5). Per group,
 * W x = scale * (q . x) + scale * (z / 16 - 8) * sum(x): the codes meet x unsigned, in integer dot products. */
static inline int64_t scales_row(int64_t groups) { return 4 + 2 * groups; }
static inline float row_unit(const uint8_t *sz) { /* the row's d (any alignment) */
    float d;
    memcpy(&d, sz, 4);
    return d;
}

/* Per row: bs[b] = sx[b] * scale of b's group, and the offsets' share, sum over groups of scale (z / 16 - 8) sum(x).
 * Vectorized for groups of 32 (a group's (s, z) pair read as one 16-bit lane), else per group. bs may be NULL (the
 * offsets' share only). */
static inline float row_scales(const uint8_t *sz, const float *sx, const float *xsum, int64_t groups, int64_t shift,
                               float *bs) {
    float off = 0, d = row_unit(sz);
    const uint8_t *pair = sz + 4;
    int64_t g = 0;
#if defined(__AVX512F__)
    if (shift == 0) {
        __m512 o = _mm512_setzero_ps();
        for (; g + 16 <= groups; g += 16) {
            __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(pair + 2 * g)));
            __m512 scale = _mm512_mul_ps(_mm512_set1_ps(d),
                                         _mm512_cvtepi32_ps(_mm512_and_si512(v, _mm512_set1_epi32(255))));
            __m512 z = _mm512_cvtepi32_ps(_mm512_srai_epi32(_mm512_slli_epi32(v, 16), 24));
            __m512 zero = _mm512_mul_ps(scale, _mm512_fmadd_ps(z, _mm512_set1_ps(0.0625f), _mm512_set1_ps(-8.0f)));
            o = _mm512_fmadd_ps(zero, _mm512_loadu_ps(xsum + g), o);
            if (bs) _mm512_storeu_ps(bs + g, _mm512_mul_ps(scale, _mm512_loadu_ps(sx + g)));
        }
        off = _mm512_reduce_add_ps(o);
    }
#elif defined(__AVX2__)
    if (shift == 0) {
        __m256 o = _mm256_setzero_ps();
        for (; g + 8 <= groups; g += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(pair + 2 * g)));
            __m256 scale = _mm256_mul_ps(_mm256_set1_ps(d),
                                         _mm256_cvtepi32_ps(_mm256_and_si256(v, _mm256_set1_epi32(255))));
            __m256 z = _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 16), 24));
            __m256 zero = _mm256_mul_ps(scale, _mm256_fmadd_ps(z, _mm256_set1_ps(0.0625f), _mm256_set1_ps(-8.0f)));
            o = _mm256_fmadd_ps(zero, _mm256_loadu_ps(xsum + g), o);
            if (bs) _mm256_storeu_ps(bs + g, _mm256_mul_ps(scale, _mm256_loadu_ps(sx + g)));
        }
        off = hsum8(o);
    }
#endif
    for (; g < groups; g++) {
        float scale = d * (float)pair[2 * g], zero = scale * ((float)(int8_t)pair[2 * g + 1] * 0.0625f - 8.0f);
        off += zero * xsum[g];
        for (int64_t b = g << shift; b < (g + 1) << shift && bs; b++) bs[b] = sx[b] * scale;
    }
    return off;
}

static inline float row_int4(const uint8_t *q, const uint8_t *sz, int64_t shift, const int8_t *xq, const float *sx,
                             const float *xsum, int64_t nb) {
    float bs[nb];
    float off = row_scales(sz, sx, xsum, nb >> shift, shift, bs), a = 0;
    for (int64_t b = 0; b < nb; b++) a += (float)block_int4(q + b * 16, xq + b * 32) * bs[b];
    return a + off;
}

#if defined(__AVX512VNNI__)
/* AVX512-VNNI: one 64-byte load of codes holds four blocks, so its low nibbles are inputs 0-15 of each block (one
 * 128-bit lane per block) and its high nibbles inputs 16-31: two dot products against x laid out to match (per four
 * blocks, inputs 0-15 of each, then 16-31 of each: quad_x, once per call) leave each block's sum in its own four
 * lanes, with no shuffle of the codes. Sixteen blocks at a time, the four loads' sums are folded (a 4 x 4
 * transpose in adds) into one vector of sixteen block sums, which meets its sixteen block scales in one conversion,
 * one multiply and one FMA: the row's (s, z) pairs read in one load, widened and put in the folded order by a
 * permute, x's block scales in that order once per call (sxt). Blocks past the last sixteen go four at a time in
 * each lane's own block (sxe), then one by one; the offsets' share is summed apart (row_scales). One weight row at a
 * time against up to 4 rows of x (its codes unpacked and scales read once for them all), one accumulator per (row,
 * x row): each sum in the same order for any number of rows of x. The codes AHEAD bytes on are prefetched. */
static void quad_x(const int8_t *xq, const float *sx, int64_t nb, int8_t *xr, float *sxe, float *sxt) {
    for (int64_t t = 0; t < nb / 4; t++)
        for (int b = 0; b < 4; b++) {
            memcpy(xr + t * 128 + b * 16, xq + (t * 4 + b) * 32, 16);
            memcpy(xr + t * 128 + 64 + b * 16, xq + (t * 4 + b) * 32 + 16, 16);
        }
    for (int64_t t = nb / 16 * 4; t < nb / 4; t++) /* each lane's block scale: read only past the last sixteen */
        for (int l = 0; l < 16; l++) sxe[t * 16 + l] = sx[t * 4 + l / 4];
    for (int64_t g = 0; g < nb / 16; g++) /* lane 4i + u: block 4u + i of the sixteen */
        for (int i = 0; i < 4; i++)
            for (int u = 0; u < 4; u++) sxt[g * 16 + 4 * i + u] = sx[g * 16 + 4 * u + i];
}

#define INT4_SIXTEEN(g)                                                                                                \
    do {                                                                                                               \
        __m512i lo_[4], hi_[4];                                                                                        \
        for (int u = 0; u < 4; u++) {                                                                                  \
            __m512i v_ = _mm512_loadu_si512(q + ((g) * 4 + u) * 64);                                                   \
            _mm_prefetch((const char *)(q + ((g) * 4 + u) * 64 + AHEAD), _MM_HINT_T0);                                \
            lo_[u] = _mm512_and_si512(v_, low), hi_[u] = _mm512_and_si512(_mm512_srli_epi16(v_, 4), low);              \
        }                                                                                                              \
        __m512i w_ = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(need16, pair + 2 * (((g) * 16) >> shift)));      \
        __m512 sc_ = _mm512_mul_ps(unit, _mm512_cvtepi32_ps(_mm512_and_si512(_mm512_permutexvar_epi32(folded, w_),    \
                                                                             _mm512_set1_epi32(255))));             \
        for (int j = 0; j < XS; j++) {                                                                                 \
            const int8_t *xj_ = xr + j * quads * 128 + (g) * 512;                                                      \
            __m512i d_[4];                                                                                             \
            for (int u = 0; u < 4; u++)                                                                                \
                d_[u] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo_[u],                        \
                                                                _mm512_load_si512(xj_ + u * 128)),                     \
                                            hi_[u], _mm512_load_si512(xj_ + u * 128 + 64));                            \
            __m512i a_ = _mm512_add_epi32(_mm512_unpacklo_epi32(d_[0], d_[1]), _mm512_unpackhi_epi32(d_[0], d_[1]));   \
            __m512i b_ = _mm512_add_epi32(_mm512_unpacklo_epi32(d_[2], d_[3]), _mm512_unpackhi_epi32(d_[2], d_[3]));   \
            __m512i s_ = _mm512_add_epi32(_mm512_unpacklo_epi64(a_, b_), _mm512_unpackhi_epi64(a_, b_));               \
            __m512 bs_ = _mm512_mul_ps(sc_, _mm512_load_ps(sxt + j * (nb / 16) * 16 + (g) * 16));                      \
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s_), bs_, acc[j]);                                             \
        }                                                                                                              \
    } while (0)

#define INT4_QUAD(t)                                                                                                   \
    do {                                                                                                               \
        __m512i v_ = _mm512_loadu_si512(q + (t) * 64);                                                                 \
        __m512i lo_ = _mm512_and_si512(v_, low), hi_ = _mm512_and_si512(_mm512_srli_epi16(v_, 4), low);               \
        __m128i w_ = _mm_maskz_loadu_epi16(need, pair + 2 * (((t) * 4) >> shift));                                   \
        __m512i p_ = _mm512_permutexvar_epi32(spread, _mm512_cvtepu16_epi32(_mm256_castsi128_si256(w_)));             \
        __m512 sc_ = _mm512_mul_ps(unit, _mm512_cvtepi32_ps(_mm512_and_si512(p_, _mm512_set1_epi32(255))));           \
        for (int j = 0; j < XS; j++) {                                                                                 \
            const int8_t *xj_ = xr + j * quads * 128 + (t) * 128;                                                      \
            __m512i d_ = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo_, _mm512_load_si512(xj_));                     \
            d_ = _mm512_dpbusd_epi32(d_, hi_, _mm512_load_si512(xj_ + 64));                                            \
            __m512 bs_ = _mm512_mul_ps(sc_, _mm512_load_ps(sxe + j * quads * 16 + (t) * 16));                          \
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d_), bs_, acc[j]);                                             \
        }                                                                                                              \
    } while (0)

/* weight row q (its scales sz) against rows 0 .. XS - 1 of x (each argument already at the first of them; xq, sx,
 * xsum, xr, sxe, sxt one row of x apart by k, nb, groups, quads * 128, quads * 16 and nb / 16 * 16; y's rows n
 * apart) */
static inline __attribute__((always_inline)) void vnni_int4(const uint8_t *q, const uint8_t *sz, int64_t k,
                                                            int64_t shift, const int8_t *xq, const int8_t *xr,
                                                            const float *sx, const float *sxe, const float *sxt,
                                                            const float *xsum, int64_t nb, const int XS, uint16_t *y,
                                                            int64_t n) {
    int64_t groups = nb >> shift, quads = nb / 4;
    const __m512i low = _mm512_set1_epi8(15);
    const __m512 unit = _mm512_set1_ps(row_unit(sz));
    const uint8_t *pair = sz + 4;
    /* lane 4i + u of the folded sums is block 4u + i of the sixteen: the (s, z) pair of its group */
    const __m512i folded = shift == 0   ? _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15)
                           : shift == 1 ? _mm512_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6, 1, 3, 5, 7, 1, 3, 5, 7)
                                        : _mm512_setr_epi32(0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3);
    const __mmask16 need16 = shift == 0 ? 0xFFFF : shift == 1 ? 0xFF : 0xF;
    /* lane l of a quad holds block l / 4 of it */
    const __m512i spread = shift == 0   ? _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
                           : shift == 1 ? _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1)
                                        : _mm512_setzero_si512();
    const __mmask8 need = shift == 0 ? 0xF : shift == 1 ? 0x3 : 0x1;
    __m512 acc[4];
    for (int j = 0; j < XS; j++) acc[j] = _mm512_setzero_ps();
    for (int64_t g = 0; g < nb / 16; g++) INT4_SIXTEEN(g);
    for (int64_t t = nb / 16 * 4; t < quads; t++) INT4_QUAD(t);
    for (int j = 0; j < XS; j++) {
        float bs[nb], off = row_scales(sz, sx + j * nb, xsum + j * groups, groups, shift, nb % 4 ? bs : NULL);
        float r = _mm512_reduce_add_ps(acc[j]);
        for (int64_t b = 4 * quads; b < nb; b++) /* the last nb % 4 blocks */
            r += (float)block_int4(q + b * 16, xq + j * k + b * 32) * bs[b];
        y[j * n] = to_bf16(r + off);
    }
}
#endif

#if defined(__AVX2__) && !defined(__AVX512VNNI__)
/* AVX2: one 32-byte load of codes holds two blocks (16 bytes each), so its low nibbles are inputs 0-15 of both and
 * its high nibbles inputs 16-31 of both. x is laid out to match once per call (per pair of blocks: inputs 0-15 of
 * the first and of the second, then 16-31 of each). Several rows of x (a verify, a short prompt): four weight rows
 * share each load of it, one accumulator each (four chains of FMAs side by side); one token: a row at a time (the
 * weights then stream in memory order: four rows' streams at once read slower on a Zen 3). Eight blocks' sums are
 * folded into one vector before they meet their scales (INT4_EIGHT): a 5632x2048 product alone, forced to this class
 * on a Zen 5, twelve weights cycled, old and new library in turn: 7,330-7,510 -> 8,270-8,470 a second (47.7 -> 55
 * GB/s); a 42dot int4 step 16.65 -> 15.50 ms in an hour when memory streamed fast, 18.98 -> 18.79 in a slow one. A
 * row's sums go in the same order whether it is one of four or alone, and whatever m is: each row of a verify is the
 * bits of a step. */
static void pair_x(const int8_t *xq, int64_t nb, int8_t *xp) {
    for (int64_t p = 0; p < nb / 2; p++)
        for (int i = 0; i < 16; i++) {
            const int8_t *b = xq + p * 64;
            int8_t *o = xp + p * 64;
            o[i] = b[i], o[16 + i] = b[32 + i], o[32 + i] = b[16 + i], o[48 + i] = b[48 + i];
        }
}

static inline __m256 pair_scale(const float *bs) { /* bs[0] in the low four lanes, bs[1] in the high four */
    __m256 two = _mm256_castps128_ps256(_mm_castpd_ps(_mm_load_sd((const double *)bs)));
    return _mm256_permutevar8x32_ps(two, _mm256_set_epi32(1, 1, 1, 1, 0, 0, 0, 0));
}

/* one pair of blocks' integer sums (32 bytes of codes at q against x laid out by pair_x): block 2p's in the low four
 * lanes, 2p + 1's in the high four (int32, exact) */
static inline __attribute__((always_inline)) __m256i pair_sums(const uint8_t *q, __m256i x0, __m256i x1) {
    const __m256i low = _mm256_set1_epi8(15), v = _mm256_loadu_si256((const __m256i *)q);
    __m256i lo = _mm256_maddubs_epi16(_mm256_and_si256(v, low), x0);
    __m256i hi = _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(v, 4), low), x1);
    return _mm256_madd_epi16(_mm256_add_epi16(lo, hi), _mm256_set1_epi16(1));
}

#define INT4_PAIR(acc, q, bs)                                                                                          \
    do {                                                                                                               \
        if ((p & 1) == 0) _mm_prefetch((const char *)((q) + p * 32 + AHEAD), _MM_HINT_T0);                            \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(pair_sums((q) + p * 32, x0, x1)), pair_scale((bs) + 2 * p), acc);     \
    } while (0)

/* a row's total: its accumulator, an odd last block, the offsets' share */
static __attribute__((noinline)) float finish_int4(__m256 acc, const uint8_t *q, const int8_t *xq, const float *bs,
                                                   int64_t nb, float off) {
    float a = hsum8(acc);
    for (int64_t b = nb & ~(int64_t)1; b < nb; b++) a += (float)block_int4(q + b * 16, xq + b * 32) * bs[b];
    return a + off;
}

/* eight blocks (four pairs from pair p on): their sums folded by three horizontal adds into one lane each (lanes
 * 0-3 blocks 0, 2, 4, 6 of the eight, lanes 4-7 blocks 1, 3, 5, 7), converted and scaled in one FMA (the block scales
 * put in that order by one permute), where each pair took its own conversion, scale spread and FMA */
#define INT4_EIGHT(acc, q, bs)                                                                                         \
    do {                                                                                                               \
        _mm_prefetch((const char *)((q) + p * 32 + AHEAD), _MM_HINT_T0);                                               \
        _mm_prefetch((const char *)((q) + p * 32 + 64 + AHEAD), _MM_HINT_T0);                                          \
        __m256i a_ = _mm256_hadd_epi32(pair_sums((q) + p * 32, x[0], x[1]), pair_sums((q) + p * 32 + 32, x[2], x[3])); \
        __m256i b_ = _mm256_hadd_epi32(pair_sums((q) + p * 32 + 64, x[4], x[5]),                                       \
                                       pair_sums((q) + p * 32 + 96, x[6], x[7]));                                      \
        __m256i h_ = _mm256_hadd_epi32(a_, b_);                                                                        \
        __m256 s_ = _mm256_permutevar8x32_ps(_mm256_loadu_ps((bs) + 2 * p), order);                                   \
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(h_), s_, acc);                                                        \
    } while (0)

/* rows r .. r + R - 1 (R = 4 or 1) against one row of x: its int8 (xq), paired (xp), block scales and group sums */
static inline __attribute__((always_inline)) void rows_int4(const uint8_t *q, const uint8_t *sz, int64_t k,
                                                            int64_t shift, const int8_t *xq, const int8_t *xp,
                                                            const float *sx, const float *xsum, int64_t nb, const int R,
                                                            uint16_t *y) {
    int64_t groups = nb >> shift, row = k / 2;
    float bs[4][nb], off[4];
    for (int i = 0; i < R; i++) off[i] = row_scales(sz + i * scales_row(groups), sx, xsum, groups, shift, bs[i]);
    const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t p = 0;
    for (; p + 4 <= nb / 2; p += 4) {
        __m256i x[8];
        for (int u = 0; u < 8; u++) x[u] = _mm256_load_si256((const __m256i *)(xp + p * 64 + u * 32));
        INT4_EIGHT(a0, q, bs[0]);
        if (R == 4) {
            INT4_EIGHT(a1, q + row, bs[1]);
            INT4_EIGHT(a2, q + 2 * row, bs[2]);
            INT4_EIGHT(a3, q + 3 * row, bs[3]);
        }
    }
    for (; p < nb / 2; p++) {
        __m256i x0 = _mm256_load_si256((const __m256i *)(xp + p * 64));
        __m256i x1 = _mm256_load_si256((const __m256i *)(xp + p * 64 + 32));
        INT4_PAIR(a0, q, bs[0]);
        if (R == 4) {
            INT4_PAIR(a1, q + row, bs[1]);
            INT4_PAIR(a2, q + 2 * row, bs[2]);
            INT4_PAIR(a3, q + 3 * row, bs[3]);
        }
    }
    __m256 acc[4] = {a0, a1, a2, a3};
    for (int i = 0; i < R; i++) y[i] = to_bf16(finish_int4(acc[i], q + i * row, xq, bs[i], nb, off[i]));
}
#endif

/* y[m][n] = W x[j] for each of m rows, W int4 in llm42's layout; group a multiple of 32 */
void llm42_gemm_int4(const uint8_t *restrict q, const uint8_t *restrict scales, int64_t group,
                     const uint16_t *restrict x16, uint16_t *restrict y, int64_t m, int64_t n, int64_t k) {
    int64_t nb = k / 32, groups = k / group, per = group / 32, shift = per == 4 ? 2 : per == 2 ? 1 : 0;
    QuantizedX x = quantize_rows(x16, m, k);
    float *xsum = malloc(sizeof(float) * m * groups); /* per row of x and group: sum of the rounded x */
    for (int64_t j = 0; j < m; j++)
        for (int64_t g = 0; g < groups; g++) {
            float s = 0;
            for (int64_t b = g * per; b < (g + 1) * per; b++) s += x.s[j * nb + b] * (float)x.sum[j * nb + b];
            xsum[j * groups + g] = s;
        }
#if defined(__AVX2__) && !defined(__AVX512VNNI__)
    int8_t *xp = aligned_alloc(64, (size_t)((m * k + 63) / 64 * 64));
#pragma omp parallel for if (m > 3)
    for (int64_t j = 0; j < m; j++) pair_x(x.q + j * k, nb, xp + j * k);
    /* one token: a row at a time, so the weights stream in memory order; several: four rows share each x load */
    int64_t step = m > 1 ? 4 : 1, tiles = n / step;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < tiles + n % step; t++) {
        int64_t r = t < tiles ? step * t : step * tiles + (t - tiles), R = t < tiles ? step : 1;
        const uint8_t *w = q + r * (k / 2);
        const uint8_t *sz = scales + r * scales_row(groups);
        uint16_t out[4];
        for (int64_t j = 0; j < m; j++) {
            if (R == 4)
                rows_int4(w, sz, k, shift, x.q + j * k, xp + j * k, x.s + j * nb, xsum + j * groups, nb, 4, out);
            else
                rows_int4(w, sz, k, shift, x.q + j * k, xp + j * k, x.s + j * nb, xsum + j * groups, nb, 1, out);
            for (int64_t i = 0; i < R; i++) y[j * n + r + i] = out[i];
        }
    }
    free(xp);
#elif defined(__AVX512VNNI__)
    int64_t quads = nb / 4;
    int8_t *xr = aligned_alloc(64, (size_t)(m * quads * 128 + 64));
    float *sxe = aligned_alloc(64, sizeof(float) * (m * quads * 16 + 16));
    float *sxt = aligned_alloc(64, sizeof(float) * (m * (nb / 16) * 16 + 16));
    for (int64_t j = 0; j < m; j++)
        quad_x(x.q + j * k, x.s + j * nb, nb, xr + j * quads * 128, sxe + j * quads * 16, sxt + j * (nb / 16) * 16);
    /* a row at a time against rows of x in groups of at most 4, each thread one stretch of rows (one stream of
     * weights in memory order; interleaved chunks of rows ran at two thirds of the speed) */
    int64_t g = x_group(m, 4);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < m; j += g) {
            const uint8_t *w = q + r * (k / 2);
            const uint8_t *sz = scales + r * scales_row(groups);
            const int8_t *xq = x.q + j * k, *xj = xr + j * quads * 128;
            const float *sx = x.s + j * nb, *sj = sxe + j * quads * 16, *st = sxt + j * (nb / 16) * 16;
            const float *xs = xsum + j * groups;
            uint16_t *yj = y + j * n + r;
            switch (m - j < g ? m - j : g) {
            case 1: vnni_int4(w, sz, k, shift, xq, xj, sx, sj, st, xs, nb, 1, yj, n); break;
            case 2: vnni_int4(w, sz, k, shift, xq, xj, sx, sj, st, xs, nb, 2, yj, n); break;
            case 3: vnni_int4(w, sz, k, shift, xq, xj, sx, sj, st, xs, nb, 3, yj, n); break;
            default: vnni_int4(w, sz, k, shift, xq, xj, sx, sj, st, xs, nb, 4, yj, n);
            }
        }
    free(xr), free(sxe), free(sxt);
#else
#pragma omp parallel for schedule(dynamic, 32)
    for (int64_t r = 0; r < n; r++)
        for (int64_t j = 0; j < m; j++)
            y[j * n + r] = to_bf16(row_int4(q + r * (k / 2), scales + r * scales_row(groups), shift, x.q + j * k,
                                            x.s + j * nb, xsum + j * groups, nb));
#endif
    free(xsum);
    free_rows(x);
}

/* e^x, vectorizable (libm's expf is a call per element): 2^(x log2 e) split into 2^integer (the exponent bits)
 * and 2^fraction (a degree-6 polynomial, relative error below 2e-7). Above 88.7 inf, as expf overflows; below
 * -87 it stays at e^-87, a stand-in for 0 (a softmax term, or silu's e^-x beside 1). */
static inline float exp_(float x) {
    float overflow = x > 88.7f ? INFINITY : 1.0f;
    x = x < -87.0f ? -87.0f : x > 88.7f ? 88.7f : x;
    float t = x * 1.44269504088896341f;
    float fi = floorf(t);
    float f = t - fi;
    float p = 1.5353362e-4f;
    p = p * f + 1.3398874e-3f;
    p = p * f + 9.6181291e-3f;
    p = p * f + 5.5504109e-2f;
    p = p * f + 2.4022650e-1f;
    p = p * f + 6.9314718e-1f;
    p = p * f + 1.0f;
    uint32_t bits = (uint32_t)((int32_t)fi + 127) << 23;
    float e;
    memcpy(&e, &bits, 4);
    return p * e * overflow;
}

/* Fetch `bytes` from p into the cache, a line at a time (a prefetch never faults: past the cache's end is harmless).
 * Attention reads each head's keys, then its values, in short streams (200 positions of a 64-wide head: 25 KB each)
 * that the hardware's prefetcher picks up late: where no other query head reads them (`cold`: no GQA group), the keys
 * are fetched a block ahead, the values of the first EARLY positions while the scores compute (into L2), the rest a
 * block ahead of the weighted sum. With the exponentials and their sum in vectors (below), 24 layers of the 42dot
 * shape, old and new library alternating in one process (Zen 5): one row over 200 positions 1.00 -> 0.81 ms, over
 * 1,000 4.40 -> 4.17, 9 rows over 1,000 16.7 -> 16.0 (forced to AVX2: one row 1.59 -> 1.12 and 4.93 -> 3.99);
 * SmolLM2's 30 layers (9 heads on 3), 9 rows over 400 positions 1.40 -> 1.26 ms, over 1,000 3.52 -> 3.09 (AVX2 6.24 ->
 * 5.55). Every value fetched during the scores was slower at 1,000 positions (4.40 against 4.12), none slower at
 * 200 (0.95 against 0.86); fetched for a GQA group's heads, which find them in cache, SmolLM2's one row over 200
 * positions went 0.21 -> 0.24 ms. A whole step is bound by memory in a slow hour and gains less (~1 %). */
enum { EARLY = 256 };
static inline void fetch(const void *p, int64_t bytes, const int far) {
    for (int64_t b = 0; b < bytes; b += 64)
        far ? __builtin_prefetch((const char *)p + b, 0, 2) : __builtin_prefetch((const char *)p + b, 0, 3);
}

/* One query per head against the first n positions of a KV cache: out[h] = softmax(q_h K^T * scale) V for
 * each query head h; heads share key/value heads in groups (GQA). K and V are read once. */
#if defined(__AVX512BF16__)
/* exp_ for sixteen lanes: the same steps (FMAs where exp_'s compiled form may round twice) */
static inline __m512 exp16(__m512 x) {
    __mmask16 over = _mm512_cmp_ps_mask(x, _mm512_set1_ps(88.7f), _CMP_GT_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.7f));
    __m512 t = _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f));
    __m512 fi = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, fi), p = _mm512_set1_ps(1.5353362e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3398874e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504109e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(fi), _mm512_set1_epi32(127)), 23);
    return _mm512_mask_mov_ps(_mm512_mul_ps(p, _mm512_castsi512_ps(bits)), over, _mm512_set1_ps(INFINITY));
}

/* 16 vectors of 16 partial sums -> one vector of their 16 totals (a transpose-and-add network): the
 * horizontal sums of 16 dot products for the price of about three instructions each. */
static inline __m512 sum16(__m512 v[16]) {
    __m512 t[8], u[4];
    for (int i = 0; i < 8; i++)
        t[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; i++) {
        __m512d a = _mm512_castps_pd(t[2 * i]), b = _mm512_castps_pd(t[2 * i + 1]);
        u[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)), _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
    }
    __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(u[0], u[1], 0x44), _mm512_shuffle_f32x4(u[0], u[1], 0xEE));
    __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(u[2], u[3], 0x44), _mm512_shuffle_f32x4(u[2], u[3], 0xEE));
    return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, 0x88), _mm512_shuffle_f32x4(x01, x23, 0xDD));
}

/* AVX512-BF16: scores as bf16 pair products (q and K are bf16, so each product is exact; the scale is applied
 * in fp32), sums in fp32, the softmax and the weighted values in fp32. Needs d a multiple of 32. */
static inline __attribute__((always_inline)) float softmax_chunks(const uint16_t *q16, const uint16_t *K,
                                                                  const uint16_t *V, int64_t n, int64_t d,
                                                                  float scale, float *s, int cold, const int chunks) {
    __m512bh q[8];
    for (int64_t c = 0; c < chunks; c++) q[c] = (__m512bh)_mm512_loadu_si512(q16 + c * 32);
    float m = -INFINITY;
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
        if (cold) { /* 16 positions: 32 d bytes */
            fetch(K + (t + 32) * d, 32 * d, 0);
            if (t < EARLY) fetch(V + t * d, 32 * d, 1);
        }
        __m512 acc[16];
        for (int j = 0; j < 16; j++) {
            acc[j] = _mm512_setzero_ps();
            for (int64_t c = 0; c < chunks; c++)
                acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_loadu_si512(K + (t + j) * d + c * 32), q[c]);
        }
        __m512 sc = _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale));
        _mm512_storeu_ps(s + t, sc);
        float top = _mm512_reduce_max_ps(sc);
        m = top > m ? top : m; /* (fmaxf was a library call here; no score is a NaN but from a NaN input) */
    }
    for (; t < n; t++) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < chunks; c++)
            acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(K + t * d + c * 32), q[c]);
        s[t] = _mm512_reduce_add_ps(acc) * scale;
        m = s[t] > m ? s[t] : m;
    }
    /* the exponentials sixteen at a time, their sum in sixteen lanes (they were one scalar chain) */
    __m512 total = _mm512_setzero_ps(), top = _mm512_set1_ps(m);
    for (t = 0; t < n; t += 16) {
        __mmask16 in = n - t >= 16 ? 0xFFFF : (__mmask16)((1u << (n - t)) - 1);
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(in, s + t), top));
        _mm512_mask_storeu_ps(s + t, in, e);
        total = _mm512_add_ps(total, _mm512_maskz_mov_ps(in, e));
    }
    return _mm512_reduce_add_ps(total);
}

static inline __m512 widen16(const uint16_t *p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

/* o = (acc + odd) / sum as bf16 */
static inline __attribute__((always_inline)) void finish_values(const __m512 *acc, const __m512 *odd, float sum,
                                                                uint16_t *out, int64_t d, const int chunks) {
    float o[256];
    for (int64_t c = 0; c < 2 * chunks; c++) _mm512_storeu_ps(o + c * 16, _mm512_add_ps(acc[c], odd[c]));
    for (int64_t i = 0; i < d; i++) out[i] = to_bf16(o[i] / sum);
}

static inline __attribute__((always_inline)) void attend_chunks(const uint16_t *q16, const uint16_t *K,
                                                                const uint16_t *V, uint16_t *out, int64_t n,
                                                                int64_t d, float scale, float *s, int cold,
                                                                const int chunks) {
    float sum = softmax_chunks(q16, K, V, n, d, scale, s, cold, chunks);
    /* values: weighted by the fp32 probabilities (PyTorch's attention keeps them in fp32 too), even and odd
     * positions in chains of their own (one chain waited on each FMA's latency) */
    __m512 acc[16], odd[16];
    for (int64_t c = 0; c < 2 * chunks; c++) acc[c] = odd[c] = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t + 2 <= n; t += 2) {
        if (cold && t % 16 == 0) fetch(V + (t + 32) * d, 32 * d, 0);
        __m512 p = _mm512_set1_ps(s[t]), p1 = _mm512_set1_ps(s[t + 1]);
        const uint16_t *vt = V + t * d;
        for (int64_t c = 0; c < 2 * chunks; c++) {
            acc[c] = _mm512_fmadd_ps(widen16(vt + c * 16), p, acc[c]);
            odd[c] = _mm512_fmadd_ps(widen16(vt + d + c * 16), p1, odd[c]);
        }
    }
    if (t < n) {
        __m512 p = _mm512_set1_ps(s[t]);
        for (int64_t c = 0; c < 2 * chunks; c++) acc[c] = _mm512_fmadd_ps(widen16(V + t * d + c * 16), p, acc[c]);
    }
    finish_values(acc, odd, sum, out, d, chunks);
}

/* The queries of a verify pass on one key head (its rows, and the heads of a GQA group): each query's scores,
 * exponentials and sum as attend_chunks computes them alone; then the values a block of VBLOCK positions at a time,
 * widened to fp32 once for all the queries (each query widened every value itself: two thirds of its instructions
 * there), each query's even and odd chains carried from block to block in memory: the same FMAs in the same order,
 * so every query is the same bits as alone (a step). Query g (first .. first + count - 1) is row g / per, head
 * a * per + g % per; row j sees n0 + j + 1 positions. */
#define VBLOCK 32
static inline __attribute__((always_inline)) void attend_group_chunks(const uint16_t *q16, const uint16_t *K,
                                                                      const uint16_t *V, uint16_t *out, int64_t a,
                                                                      int64_t first, int64_t count, int64_t heads,
                                                                      int64_t per, int64_t n0, int64_t d, float scale,
                                                                      const int chunks) {
#define SEEN(i) (n0 + (first + (i)) / per + 1)
#define AT(i) ((((first + (i)) / per) * heads + a * per + (first + (i)) % per) * d)
    int64_t last = SEEN(count - 1), stride = (last + 31) / 16 * 16;
    size_t floats = (size_t)(VBLOCK * d + count * (2 * d + stride + 1));
    float *mem = aligned_alloc(64, (sizeof(float) * floats + 63) / 64 * 64);
    float *block = mem, *chains = block + VBLOCK * d, *s = chains + count * 2 * d, *sum = s + count * stride;
    for (int64_t i = 0; i < count; i++) {
        sum[i] = softmax_chunks(q16 + AT(i), K, V, SEEN(i), d, scale, s + i * stride, i == 0, chunks); /* the first
         * fetches the keys ahead (and the first values), the others find them in cache */
        memset(chains + i * 2 * d, 0, sizeof(float) * 2 * d);
    }
    for (int64_t t0 = 0; t0 < last; t0 += VBLOCK) {
        int64_t len = last - t0 < VBLOCK ? last - t0 : VBLOCK;
        for (int64_t u = 0; u < len * d; u += 16) _mm512_store_ps(block + u, widen16(V + t0 * d + u));
        for (int64_t i = 0; i < count; i++) {
            int64_t mine = SEEN(i) - t0 < len ? SEEN(i) - t0 : len, u = 0; /* odd only where the query ends */
            if (mine <= 0) continue;
            const float *si = s + i * stride + t0;
            float *ci = chains + i * 2 * d;
            __m512 acc[16], odd[16];
            for (int64_t c = 0; c < 2 * chunks; c++) acc[c] = _mm512_load_ps(ci + c * 16), odd[c] = _mm512_load_ps(ci + d + c * 16);
            for (; u + 2 <= mine; u += 2) {
                __m512 p = _mm512_set1_ps(si[u]), p1 = _mm512_set1_ps(si[u + 1]);
                for (int64_t c = 0; c < 2 * chunks; c++) {
                    acc[c] = _mm512_fmadd_ps(_mm512_load_ps(block + u * d + c * 16), p, acc[c]);
                    odd[c] = _mm512_fmadd_ps(_mm512_load_ps(block + (u + 1) * d + c * 16), p1, odd[c]);
                }
            }
            if (u < mine) {
                __m512 p = _mm512_set1_ps(si[u]);
                for (int64_t c = 0; c < 2 * chunks; c++) acc[c] = _mm512_fmadd_ps(_mm512_load_ps(block + u * d + c * 16), p, acc[c]);
            }
            for (int64_t c = 0; c < 2 * chunks; c++) _mm512_store_ps(ci + c * 16, acc[c]), _mm512_store_ps(ci + d + c * 16, odd[c]);
        }
    }
    for (int64_t i = 0; i < count; i++) {
        float *ci = chains + i * 2 * d;
        __m512 acc[16], odd[16];
        for (int64_t c = 0; c < 2 * chunks; c++) acc[c] = _mm512_load_ps(ci + c * 16), odd[c] = _mm512_load_ps(ci + d + c * 16);
        finish_values(acc, odd, sum[i], out + AT(i), d, chunks);
    }
    free(mem);
#undef SEEN
#undef AT
}

static void attend_group(const uint16_t *q16, const uint16_t *K, const uint16_t *V, uint16_t *out, int64_t a,
                         int64_t first, int64_t count, int64_t heads, int64_t per, int64_t n0, int64_t d,
                         float scale) {
    switch (d / 32) {
    case 1: attend_group_chunks(q16, K, V, out, a, first, count, heads, per, n0, d, scale, 1); break;
    case 2: attend_group_chunks(q16, K, V, out, a, first, count, heads, per, n0, d, scale, 2); break;
    case 4: attend_group_chunks(q16, K, V, out, a, first, count, heads, per, n0, d, scale, 4); break;
    default: attend_group_chunks(q16, K, V, out, a, first, count, heads, per, n0, d, scale, d / 32);
    }
}

/* d a constant in each (32, 64, 128, 256): the values' sums then stay in registers (with d read at run time they
 * went through the stack at every position: 35 % of a verify's attention samples; the same instructions, so the
 * same bits). cold: no other query head reads this head's keys and values (see fetch) */
static void attend_head(const uint16_t *q16, const uint16_t *K, const uint16_t *V, uint16_t *out, int64_t n,
                        int64_t d, float scale, float *s, int cold) {
    switch (d / 32) {
    case 1: attend_chunks(q16, K, V, out, n, d, scale, s, cold, 1); break;
    case 2: attend_chunks(q16, K, V, out, n, d, scale, s, cold, 2); break;
    case 4: attend_chunks(q16, K, V, out, n, d, scale, s, cold, 4); break;
    default: attend_chunks(q16, K, V, out, n, d, scale, s, cold, d / 32);
    }
}
#endif

/* Plain C (and AVX2): q scaled in fp32, dot products, softmax and weighted values in fp32. */
static void attend_plain(const uint16_t *q16, const uint16_t *K, const uint16_t *V, uint16_t *out, int64_t n,
                         int64_t d, float scale, float *s) {
    float q[256], o[256];
    for (int64_t i = 0; i < d; i++) q[i] = bf16(q16[i]) * scale, o[i] = 0;
    float m = -INFINITY;
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *kt = K + t * d;
        float a = 0;
#pragma omp simd reduction(+ : a)
        for (int64_t i = 0; i < d; i++) a += q[i] * bf16(kt[i]);
        s[t] = a;
        m = a > m ? a : m;
    }
    float sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t t = 0; t < n; t++) {
        s[t] = exp_(s[t] - m);
        sum += s[t];
    }
    for (int64_t t = 0; t < n; t++) {
        const uint16_t *vt = V + t * d;
        float p = s[t];
#pragma omp simd
        for (int64_t i = 0; i < d; i++) o[i] += p * bf16(vt[i]);
    }
    for (int64_t i = 0; i < d; i++) out[i] = to_bf16(o[i] / sum);
}

/* Query head h of row j (of m rows at positions n0 .. n0 + m - 1) over the n0 + j + 1 positions it may see. */
static void attend_one(const uint16_t *q16, const uint16_t *keys, const uint16_t *values, uint16_t *out, int64_t j,
                       int64_t h, int64_t heads, int64_t per, int64_t n0, int64_t d, int64_t head_stride,
                       float scale) {
    int64_t n = n0 + j + 1, at = (j * heads + h) * d;
    const uint16_t *K = keys + (h / per) * head_stride, *V = values + (h / per) * head_stride;
    float *s = malloc(sizeof(float) * (n + 16));
#if defined(__AVX512BF16__)
    if (d % 32 == 0 && d <= 256)
        attend_head(q16 + at, K, V, out + at, n, d, scale, s, per == 1);
    else
#endif
        attend_plain(q16 + at, K, V, out + at, n, d, scale, s);
    free(s);
}

#if defined(__AVX2__) && !defined(__AVX512BF16__)
/* AVX2 (d a multiple of 8, at most 256): q scaled in fp32; q . k as one 8-lane FMA chain over d and one horizontal
 * sum (the keys widened in registers, or from a block widened once); the softmax's sum in position order; each
 * output element summed over the positions in order. A step and a verify pass run the same numbers per (row, head),
 * so they agree to the bit. In place of the plain C loop, whose order was the compiler's choice and which widened
 * each key twice as often (README: Speed, for the figures). */
static inline __m256 widen8(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

#define SHARED 32 /* positions per block: 16 KB of keys as fp32 (d = 128), in L1 while every query meets them */
static inline __attribute__((always_inline)) __m256 kv8(const uint16_t *p16, const float *pf, int64_t at,
                                                        const int wide) {
    return wide ? _mm256_loadu_ps(pf + at) : widen8(p16 + at);
}

/* a block of `len` positions' scores for one query (k16, kf: the block's first key, as bf16 / widened to fp32):
 * four positions' chains side by side, each position's chain the same as alone; returns the running max */
static inline __attribute__((always_inline)) float scores_block(const float *qi, const uint16_t *k16, const float *kf,
                                                                int64_t len, int64_t d, float *si, float m,
                                                                const int wide) {
    int64_t u = 0;
    for (; wide && u + 8 <= len; u += 8) { /* from fp32 keys (one load each), eight chains keep both FMA units busy */
        __m256 a[8];
        for (int r = 0; r < 8; r++) a[r] = _mm256_setzero_ps();
        for (int64_t c = 0; c < d; c += 8) {
            __m256 qc = _mm256_loadu_ps(qi + c);
            for (int r = 0; r < 8; r++) a[r] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(kf + (u + r) * d + c), a[r]);
        }
        for (int r = 0; r < 8; r++) si[u + r] = hsum8(a[r]), m = si[u + r] > m ? si[u + r] : m;
    }
    for (; u + 4 <= len; u += 4) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t c = 0; c < d; c += 8) {
            __m256 qc = _mm256_loadu_ps(qi + c);
            a0 = _mm256_fmadd_ps(qc, kv8(k16, kf, u * d + c, wide), a0);
            a1 = _mm256_fmadd_ps(qc, kv8(k16, kf, (u + 1) * d + c, wide), a1);
            a2 = _mm256_fmadd_ps(qc, kv8(k16, kf, (u + 2) * d + c, wide), a2);
            a3 = _mm256_fmadd_ps(qc, kv8(k16, kf, (u + 3) * d + c, wide), a3);
        }
        si[u] = hsum8(a0), si[u + 1] = hsum8(a1), si[u + 2] = hsum8(a2), si[u + 3] = hsum8(a3);
        for (int r = 0; r < 4; r++) m = si[u + r] > m ? si[u + r] : m;
    }
    for (; u < len; u++) {
        __m256 acc = _mm256_setzero_ps();
        for (int64_t c = 0; c < d; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(qi + c), kv8(k16, kf, u * d + c, wide), acc);
        si[u] = hsum8(acc);
        m = si[u] > m ? si[u] : m;
    }
    return m;
}

/* o (one query's output sums, fp32) += the block's values weighted by si, position by position in order */
static inline __attribute__((always_inline)) void values_block(const float *si, const uint16_t *v16, const float *vf,
                                                               int64_t len, int64_t d, float *o, const int wide) {
    for (int64_t c = 0; c < d; c += 64) {
        int64_t w = d - c < 64 ? (d - c) / 8 : 8;
        __m256 acc[8];
        for (int v = 0; v < w; v++) acc[v] = _mm256_loadu_ps(o + c + 8 * v);
        if (w == 8)
            for (int64_t u = 0; u < len; u++) {
                __m256 p = _mm256_set1_ps(si[u]);
                for (int v = 0; v < 8; v++) acc[v] = _mm256_fmadd_ps(p, kv8(v16, vf, u * d + c + 8 * v, wide), acc[v]);
            }
        else
            for (int64_t u = 0; u < len; u++) {
                __m256 p = _mm256_set1_ps(si[u]);
                for (int v = 0; v < w; v++) acc[v] = _mm256_fmadd_ps(p, kv8(v16, vf, u * d + c + 8 * v, wide), acc[v]);
            }
        for (int v = 0; v < w; v++) _mm256_storeu_ps(o + c + 8 * v, acc[v]);
    }
}

static void widen_block(const uint16_t *x, float *out, int64_t n) { /* n a multiple of 8 */
    for (int64_t i = 0; i < n; i += 8) _mm256_storeu_ps(out + i, widen8(x + i));
}

/* Several queries on one key head (the rows of a verify pass, the heads of a GQA group): each block of keys, then
 * of values, is read from memory once for all of them, and (for three or more) widened to fp32 once for them all
 * (one query per (row, head) read the whole cache again and widened every key itself: 3,100 positions, 5 rows, 5x the
 * KV). Each query's numbers are the same whichever queries share its blocks: the same values in the same chains, its
 * sums in position order (the output sums kept in memory between blocks, exactly). Query g (first .. first + count -
 * 1) is row g / per, head a * per + g % per; row j sees n0 + j + 1 positions. */
static void attend_shared(const uint16_t *q16, const uint16_t *K, const uint16_t *V, uint16_t *out, int64_t a,
                          int64_t first, int64_t count, int64_t heads, int64_t per, int64_t n0, int64_t d, float scale,
                          int cold) {
#define SEEN(i) (n0 + (first + (i)) / per + 1)                               /* positions query i sees */
#define AT(i) ((((first + (i)) / per) * heads + a * per + (first + (i)) % per) * d) /* its q and output */
    int64_t last = SEEN(count - 1), stride = last + 16;
    /* widened blocks pay from three queries on (two: widening in registers per query measured as fast) */
    int64_t wide = count > 2 ? SHARED * d : 0;
    /* one allocation, on a cache line: the widened block, q [count][d], output sums [count][d], scores
     * [count][stride], max and sum per query; zeroed */
    size_t bytes = sizeof(float) * (size_t)(wide + count * (2 * d + stride + 2));
    float *mem = aligned_alloc(64, (bytes + 63) / 64 * 64), *block = wide ? mem : NULL;
    memset(mem, 0, bytes);
    float *q = mem + wide, *o = q + count * d, *s = o + count * d, *mx = s + count * stride, *sum = mx + count;
    for (int64_t i = 0; i < count; i++) {
        mx[i] = -INFINITY;
        for (int64_t c = 0; c < d; c++) q[i * d + c] = bf16(q16[AT(i) + c]) * scale;
    }
    for (int64_t t0 = 0; t0 < last; t0 += SHARED) {
        int64_t len = last - t0 < SHARED ? last - t0 : SHARED;
        if (block) widen_block(K + t0 * d, block, len * d);
        if (cold) {
            fetch(K + (t0 + SHARED) * d, 2 * SHARED * d, 0);
            if (t0 < EARLY) fetch(V + t0 * d, 2 * SHARED * d, 1);
        }
        for (int64_t i = 0; i < count; i++) {
            int64_t mine = SEEN(i) - t0 < len ? SEEN(i) - t0 : len; /* this query's positions in the block */
            if (mine <= 0) continue;
            float *si = s + i * stride + t0;
            if (block) mx[i] = scores_block(q + i * d, K + t0 * d, block, mine, d, si, mx[i], 1);
            else mx[i] = scores_block(q + i * d, K + t0 * d, NULL, mine, d, si, mx[i], 0);
        }
    }
    for (int64_t i = 0; i < count; i++) {
        float *si = s + i * stride;
        for (int64_t t = 0; t < SEEN(i); t++) si[t] = exp_(si[t] - mx[i]);
        __m256 total = _mm256_setzero_ps(); /* the sum in eight lanes (it was one chain of adds) */
        int64_t t = 0;
        for (; t + 8 <= SEEN(i); t += 8) total = _mm256_add_ps(total, _mm256_loadu_ps(si + t));
        for (sum[i] = hsum8(total); t < SEEN(i); t++) sum[i] += si[t];
    }
    for (int64_t t0 = 0; t0 < last; t0 += SHARED) {
        int64_t len = last - t0 < SHARED ? last - t0 : SHARED;
        if (block) widen_block(V + t0 * d, block, len * d);
        if (cold) fetch(V + (t0 + SHARED) * d, 2 * SHARED * d, 0);
        for (int64_t i = 0; i < count; i++) {
            int64_t mine = SEEN(i) - t0 < len ? SEEN(i) - t0 : len;
            if (mine <= 0) continue;
            const float *si = s + i * stride + t0;
            if (block) values_block(si, V + t0 * d, block, mine, d, o + i * d, 1);
            else values_block(si, V + t0 * d, NULL, mine, d, o + i * d, 0);
        }
    }
    for (int64_t i = 0; i < count; i++)
        for (int64_t c = 0; c < d; c++) out[AT(i) + c] = to_bf16(o[i * d + c] / sum[i]);
    free(mem);
#undef SEEN
#undef AT
}
#endif

/* m query rows (a verify pass): row j attends to the cache's first n0 positions and rows 0..j, each (row, head) the
 * same bits whatever m is. On AVX2 the queries on one key head go in batches that read the keys and values once
 * (attend_shared; at least ~8 batches, for the threads); on AVX512-BF16 too, the values widened once per batch
 * (attend_group: alternating with the library before in one process, SmolLM2's 30 layers over 400 positions, 9 rows
 * 1.35 -> 1.13 ms, 5 rows 0.82 -> 0.71; over 1,000, 9 rows 3.32 -> 2.93; the 42dot shape's 24 layers over 200
 * positions 9 rows 4.08 -> 2.30 ms, 5 rows 2.74 -> 1.68, over 1,000 16.2 -> 11.3; whole verify passes of 9 rows at
 * 400 positions: SmolLM2 9.79 -> 9.35 ms, 42dot bf16 82.0 -> 78.4); plain C one task per (row, head). */
void llm42_attend_rows(const uint16_t *restrict q16, const uint16_t *restrict keys, const uint16_t *restrict values,
                       uint16_t *restrict out, int64_t m, int64_t heads, int64_t kv_heads, int64_t n0, int64_t d,
                       int64_t head_stride, float scale) {
    int64_t per = heads / kv_heads;
#if defined(__AVX2__) && !defined(__AVX512BF16__)
    const int64_t batches = 8, batched = d % 8 == 0 && d <= 256; /* a step too: its GQA group's heads */
#elif defined(__AVX512BF16__)
    /* a verify only; at least 4 batches (SmolLM2's 3 key heads: 2 each; 3 each was 11 % slower, 1 each 5 %) */
    const int64_t batches = 4, batched = m > 1 && d % 32 == 0 && d <= 256;
#endif
#if defined(__AVX2__) || defined(__AVX512BF16__)
    if (batched) { /* batches of the queries on one key head */
        int64_t queries = m * per, split = (batches + kv_heads - 1) / kv_heads; /* batches per key head */
        split = split > queries ? queries : split;
        int64_t size = (queries + split - 1) / split;
        split = (queries + size - 1) / size;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t t = 0; t < kv_heads * split; t++) {
            int64_t a = t / split, lo = (t % split) * size, count = queries - lo < size ? queries - lo : size;
            const uint16_t *K = keys + a * head_stride, *V = values + a * head_stride;
#if defined(__AVX2__) && !defined(__AVX512BF16__)
            attend_shared(q16, K, V, out, a, lo, count, heads, per, n0, d, scale, split == 1);
#elif defined(__AVX512BF16__)
            attend_group(q16, K, V, out, a, lo, count, heads, per, n0, d, scale);
#endif
        }
        return;
    }
#endif
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t t = 0; t < m * heads; t++)
        attend_one(q16, keys, values, out, t / heads, t % heads, heads, per, n0, d, head_stride, scale);
}

/* one query row (a step): the first row of a verify pass of one */
void llm42_attend(const uint16_t *restrict q16, const uint16_t *restrict keys, const uint16_t *restrict values,
                  uint16_t *restrict out, int64_t heads, int64_t kv_heads, int64_t n, int64_t d, int64_t head_stride,
                  float scale) {
    llm42_attend_rows(q16, keys, values, out, 1, heads, kv_heads, n - 1, d, head_stride, scale);
}

/* The small steps between the matmuls, one call each instead of a handful of PyTorch ops: */

/* out = weight * bf16(x / sqrt(mean(x^2) + eps)), as transformers' LlamaRMSNorm rounds it */
void llm42_rmsnorm(const uint16_t *restrict x, const uint16_t *restrict weight, uint16_t *restrict out, int64_t n,
                   float eps) {
    float ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t i = 0; i < n; i++) ss += bf16(x[i]) * bf16(x[i]);
    float inv = 1.0f / sqrtf(ss / (float)n + eps);
    for (int64_t i = 0; i < n; i++) out[i] = to_bf16(bf16(weight[i]) * bf16(to_bf16(bf16(x[i]) * inv)));
}

/* in place, each of `heads` rows of d: x * cos + rotate_half(x) * sin (rotate_half(x) = [-x2, x1]) */
void llm42_rope(uint16_t *restrict x, const uint16_t *restrict cos, const uint16_t *restrict sin, int64_t heads,
                int64_t d) {
    int64_t half = d / 2;
    for (int64_t h = 0; h < heads; h++) {
        uint16_t *r = x + h * d;
        float a[512];
        for (int64_t i = 0; i < d; i++) a[i] = bf16(r[i]);
        for (int64_t i = 0; i < d; i++) {
            float rot = i < half ? -a[i + half] : a[i - half];
            r[i] = to_bf16(bf16(to_bf16(a[i] * bf16(cos[i]))) + bf16(to_bf16(rot * bf16(sin[i]))));
        }
    }
}

/* the same for m rows of x (a verify pass): row j of x and out, and position j's cos and sin */
void llm42_rmsnorm_rows(const uint16_t *restrict x, const uint16_t *restrict weight, uint16_t *restrict out,
                        int64_t m, int64_t n, float eps) {
    for (int64_t j = 0; j < m; j++) llm42_rmsnorm(x + j * n, weight, out + j * n, n, eps);
}

void llm42_rope_rows(uint16_t *restrict x, const uint16_t *restrict cos, const uint16_t *restrict sin, int64_t m,
                     int64_t heads, int64_t d) {
    for (int64_t j = 0; j < m; j++) llm42_rope(x + j * heads * d, cos + j * d, sin + j * d, heads, d);
}

/* x += y (the residual stream), rounded to bf16 */
void llm42_add(uint16_t *restrict x, const uint16_t *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = to_bf16(bf16(x[i]) + bf16(y[i]));
}

/* gate = silu(gate) * up, rounded to bf16 after each as PyTorch does */
void llm42_silu_mul(uint16_t *restrict gate, const uint16_t *restrict up, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
        float g = bf16(gate[i]);
        gate[i] = to_bf16(bf16(to_bf16(g / (1.0f + exp_(-g)))) * bf16(up[i]));
    }
}

/* For prefill, weights unpacked to bf16 [n][k] once per forward, rounded exactly as PyTorch rounds
 * Int8Linear.dequantize (q * scale) and Int4Linear.dequantize (q * scale, then + (zero - 8 * scale)). */
void llm42_dequant_int8(const int8_t *restrict w, const uint16_t *restrict scale, uint16_t *restrict out, int64_t n,
                        int64_t k) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const int8_t *wr = w + r * k;
        uint16_t *o = out + r * k;
        float s = bf16(scale[r]);
        int64_t i = 0;
#if defined(__AVX512BF16__)
        __m512 sv = _mm512_set1_ps(s);
        for (; i + 32 <= k; i += 32) {
            __m512 a = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(wr + i)))), sv);
            __m512 b = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(wr + i + 16)))), sv);
            _mm512_storeu_si512(o + i, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        }
#endif
        for (; i < k; i++) o[i] = to_bf16((float)wr[i] * s);
    }
}

void llm42_dequant_int4(const uint8_t *restrict q, const uint8_t *restrict scales, int64_t group,
                        uint16_t *restrict out, int64_t n, int64_t k) {
    int64_t groups = k / group;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *sz = scales + r * scales_row(groups);
        float d = row_unit(sz);
        for (int64_t g = 0; g < groups; g++) {
            float scale = d * (float)sz[4 + 2 * g], zero = (float)(int8_t)sz[5 + 2 * g] * 0.0625f;
            for (int64_t b = g * group / 32; b < (g + 1) * group / 32; b++) {
                const uint8_t *p = q + r * (k / 2) + b * 16;
                uint16_t *o = out + r * k + b * 32;
                for (int j = 0; j < 16; j++) {
                    o[j] = to_bf16(((float)(p[j] & 15) - 8.0f + zero) * scale);
                    o[16 + j] = to_bf16(((float)(p[j] >> 4) - 8.0f + zero) * scale);
                }
            }
        }
    }
}

/* bf16 -> fp32, for prefill on CPUs without bf16 arithmetic (a shift per value, at memory speed) */
void llm42_widen_bf16(const uint16_t *restrict x, float *restrict out, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = bf16(x[i]);
}

/* A plain streaming read of n 64-bit words, folded by xor into *out so that it is not optimized away: the
 * machine's read bandwidth at the thread count in force, the roof the products are read against
 * (python -m llm42.bench --kernels). */
void llm42_read(const uint64_t *restrict p, int64_t n, uint64_t *restrict out) {
    uint64_t s = 0;
#pragma omp parallel for simd schedule(static) reduction(^ : s)
    for (int64_t i = 0; i < n; i++) s ^= p[i];
    *out = s;
}

/* A decode step's layers in one call: what gen/decode.py's Python loop calls per layer (norm, q/k/v products, rotary,
 * the KV write, attention, o product, residual add, norm, gate/up products, SiLU, down product, residual add), in the
 * same order and with the same kernels, so each row comes out the same bits; only the ~15 crossings from Python per
 * layer (and their tensors) are gone. m rows at positions pos .. pos + m - 1: a step (m = 1) or a verify pass.
 *
 * spec: per layer SPEC int64s: the two norms' weights, the layer's keys and values [kv_heads][capacity][d], then per
 * product (q, k, v, o, gate, up, down) its kind, weight, scales and group (PRODUCT int64s each); n and k follow
 * from the model's shape. x [m][hidden] is the residual stream, updated in place. */
enum { BF16 = 0, BF16_PANELS = 1, INT8 = 2, INT4 = 3, BF16_PAIRS = 4, PRODUCT = 4, SPEC = 4 + 7 * PRODUCT };

static void product(const int64_t *p, const uint16_t *x, uint16_t *y, int64_t m, int64_t n, int64_t k) {
    const void *w = (const void *)p[1];
    const uint16_t *s = (const uint16_t *)p[2];
    switch (p[0]) {
    case BF16:
        if (m == 1) llm42_gemv_bf16(w, x, y, n, k);
        else llm42_gemm_bf16(w, x, y, m, n, k);
        break;
    case BF16_PANELS: llm42_gemm_bf16p(w, x, y, m, n, k); break;
    case BF16_PAIRS: llm42_gemm_pairs(w, x, y, m, n, k); break;
    case INT8: llm42_gemm_int8(w, s, x, y, m, n, k); break;
    default: llm42_gemm_int4(w, (const uint8_t *)p[2], p[3], x, y, m, n, k);
    }
}

/* `count` products of one shape, one after another, as a step runs them (the roofline's: a product timed from Python
 * also timed the crossing, a third of a 2048x2048 int4 product's time); spec: PRODUCT int64s per product */
void llm42_products(const int64_t *restrict spec, int64_t count, const uint16_t *restrict x, uint16_t *restrict y,
                    int64_t m, int64_t n, int64_t k) {
    for (int64_t i = 0; i < count; i++) product(spec + i * PRODUCT, x, y, m, n, k);
}

void llm42_layers(const int64_t *restrict spec, int64_t layers, uint16_t *restrict x, int64_t m, int64_t pos,
                  const uint16_t *restrict cos, const uint16_t *restrict sin, int64_t hidden, int64_t ffn,
                  int64_t heads, int64_t kv_heads, int64_t d, int64_t capacity, float eps, float scale) {
    int64_t qn = heads * d, kn = kv_heads * d, most = hidden > qn ? hidden : qn;
    uint16_t *h = malloc(2 * m * most), *q = malloc(2 * m * qn), *kk = malloc(2 * m * kn), *v = malloc(2 * m * kn);
    uint16_t *att = malloc(2 * m * qn), *o = malloc(2 * m * hidden), *g = malloc(2 * m * ffn), *u = malloc(2 * m * ffn);
    for (int64_t l = 0; l < layers; l++) {
        const int64_t *L = spec + l * SPEC, *P = L + 4;
        uint16_t *keys = (uint16_t *)L[2], *values = (uint16_t *)L[3];
        llm42_rmsnorm_rows(x, (const uint16_t *)L[0], h, m, hidden, eps);
        product(P, h, q, m, qn, hidden);
        product(P + PRODUCT, h, kk, m, kn, hidden);
        product(P + 2 * PRODUCT, h, v, m, kn, hidden);
        llm42_rope_rows(q, cos, sin, m, heads, d);
        llm42_rope_rows(kk, cos, sin, m, kv_heads, d);
        for (int64_t j = 0; j < m; j++)
            for (int64_t a = 0; a < kv_heads; a++) {
                memcpy(keys + (a * capacity + pos + j) * d, kk + (j * kv_heads + a) * d, 2 * d);
                memcpy(values + (a * capacity + pos + j) * d, v + (j * kv_heads + a) * d, 2 * d);
            }
        llm42_attend_rows(q, keys, values, att, m, heads, kv_heads, pos, d, capacity * d, scale);
        product(P + 3 * PRODUCT, att, o, m, hidden, qn);
        llm42_add(x, o, m * hidden);
        llm42_rmsnorm_rows(x, (const uint16_t *)L[1], h, m, hidden, eps);
        product(P + 4 * PRODUCT, h, g, m, ffn, hidden);
        product(P + 5 * PRODUCT, h, u, m, ffn, hidden);
        llm42_silu_mul(g, u, m * ffn);
        product(P + 6 * PRODUCT, g, o, m, hidden, ffn);
        llm42_add(x, o, m * hidden);
    }
    free(h), free(q), free(kk), free(v), free(att), free(o), free(g), free(u);
}

/* Sampling's distribution (gen/sampling.py) over a CPU's logits in one call, where a dozen PyTorch operations each
 * found their caches cold after a decode step had streamed the weights (0.38 ms a token on SmolLM2 at 42dot's
 * defaults, 6 % of its step). In transformers' order: the logits as fp32 (bf16 widened), the repetition penalty on
 * the seen ids (CTRL's rule: divided when positive, multiplied when negative; an id seen twice counts once), then
 * temperature, the top_k highest scores with every score tied with the k-th (TopKLogitsWarper), and top-p
 * (TopPLogitsWarper: in ascending order, the tokens whose cumulative probability stays within 1 - top_p go; the
 * most likely always stays). Out: the kept ids and their probabilities in descending order (ties by id), their
 * number returned; 0 where no score is a number (the caller's PyTorch path then decides). temperature 0: the
 * highest penalized score alone, the first id among equals (argmax). scratch: vocab floats; ids, probs: room for
 * every score tied with the k-th (vocab at most). */
static float widened(const void *logits, int64_t is_bf16, int64_t i) {
    return is_bf16 ? bf16(((const uint16_t *)logits)[i]) : ((const float *)logits)[i];
}

static void sort_desc(int64_t *ids, float *v, int64_t n) { /* insertion sort: a few dozen candidates */
    for (int64_t a = 1; a < n; a++) {
        int64_t id = ids[a];
        float x = v[a];
        int64_t b = a;
        for (; b > 0 && (v[b - 1] < x || (v[b - 1] == x && ids[b - 1] > id)); b--) ids[b] = ids[b - 1], v[b] = v[b - 1];
        ids[b] = id, v[b] = x;
    }
}

/* which of s[0..15] are above thr (ge: or equal), as bits: the scans below look at a score only where one of its 16
 * is, which after the first few hundred scores is seldom */
static inline uint32_t above16(const float *s, float thr, int ge) {
#if defined(__AVX512F__)
    __m512 v = _mm512_loadu_ps(s), t = _mm512_set1_ps(thr);
    return ge ? _mm512_cmp_ps_mask(v, t, _CMP_GE_OQ) : _mm512_cmp_ps_mask(v, t, _CMP_GT_OQ);
#elif defined(__AVX2__)
    __m256 t = _mm256_set1_ps(thr), a = _mm256_loadu_ps(s), b = _mm256_loadu_ps(s + 8);
    __m256 ca = ge ? _mm256_cmp_ps(a, t, _CMP_GE_OQ) : _mm256_cmp_ps(a, t, _CMP_GT_OQ);
    __m256 cb = ge ? _mm256_cmp_ps(b, t, _CMP_GE_OQ) : _mm256_cmp_ps(b, t, _CMP_GT_OQ);
    return (uint32_t)_mm256_movemask_ps(ca) | (uint32_t)_mm256_movemask_ps(cb) << 8;
#else
    uint32_t bits = 0;
    for (int i = 0; i < 16; i++) bits |= (uint32_t)(ge ? s[i] >= thr : s[i] > thr) << i;
    return bits;
#endif
}

int64_t llm42_sample_dist(const void *logits, int64_t is_bf16, int64_t vocab, const int64_t *seen, int64_t nseen,
                          float penalty, float temperature, int64_t top_k, float top_p, float *scratch, int64_t *ids,
                          float *probs) {
    float *s = scratch;
    int64_t k = temperature == 0.0f ? 1 : top_k < 1 || top_k > vocab ? vocab : top_k;
    if (k > 64) return 0; /* a wide top-k: PyTorch's sort */
    if (is_bf16)
        widen(logits, s, vocab);
    else
        memcpy(s, logits, sizeof(float) * vocab);
    if (penalty != 1.0f)
        for (int64_t t = 0; t < nseen; t++) {
            int64_t i = seen[t];
            if (i < 0 || i >= vocab) continue;
            float v = widened(logits, is_bf16, i); /* from the logit itself: an id seen twice is penalized once */
            s[i] = v < 0 ? v * penalty : v / penalty;
        }
    if (temperature != 0.0f) /* as TemperatureLogitsWarper divides each score, before top-k */
        for (int64_t i = 0; i < vocab; i++) s[i] /= temperature;
    /* the k-th highest score: the k best so far in descending order, a new one going in only above the last */
    float best[64];
    int64_t have = 0, body = vocab - vocab % 16;
    for (int64_t c = 0; c < vocab; c += 16) {
        uint32_t bits = c < body ? above16(s + c, have < k ? -INFINITY : best[k - 1], 0) : 0xffffu >> (16 - (vocab - c));
        for (; bits; bits &= bits - 1) {
            float x = s[c + __builtin_ctz(bits)];
            if (!(x == x) || (have == k && !(x > best[k - 1]))) continue; /* NaN, or no longer above */
            int64_t b = have < k ? have++ : k - 1;
            for (; b > 0 && best[b - 1] < x; b--) best[b] = best[b - 1];
            best[b] = x;
        }
    }
    if (have == 0) return 0;
    float kth = best[have - 1];
    int64_t n = 0;
    for (int64_t c = 0; c < vocab; c += 16) { /* every score tied with the k-th too */
        uint32_t bits = c < body ? above16(s + c, kth, 1) : 0xffffu >> (16 - (vocab - c));
        for (; bits; bits &= bits - 1) {
            int64_t i = c + __builtin_ctz(bits);
            if (s[i] >= kth) ids[n] = i, probs[n] = s[i], n++;
        }
    }
    sort_desc(ids, probs, n);
    if (temperature == 0.0f) {
        probs[0] = 1.0f;
        return 1;
    }
    float top = probs[0], sum = 0;
    float *e = scratch; /* the scores are read no more */
    for (int64_t j = 0; j < n; j++) sum += e[j] = expf(probs[j] - top);
    int64_t kept = n;
    if (top_p < 1.0f) { /* from the least likely up, cumulative probability; keep where it passes 1 - top_p */
        float cum = 0;
        for (kept = n; kept > 1; kept--) {
            cum += e[kept - 1] / sum;
            if (cum > 1.0f - top_p) break;
        }
    }
    sum = 0;
    for (int64_t j = 0; j < kept; j++) sum += e[j];
    for (int64_t j = 0; j < kept; j++) probs[j] = e[j] / sum;
    return kept;
}

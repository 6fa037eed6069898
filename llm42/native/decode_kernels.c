/* llm42's CPU kernels for one-token decode steps: matrix-vector products over bf16, int8 and int4 weights,
 * and attention for one query over a bf16 KV cache. Plain C that the compiler vectorizes for the machine it
 * runs on (-O3 -march=native), threads from OpenMP (the same runtime PyTorch uses, so one thread pool).
 *
 * Why: for one token, every weight is read once and used once, so speed is memory bandwidth. PyTorch's
 * kernels for these shapes run at half of it on a small CPU (bf16 rows converted slowly, int8/int4
 * compute-bound, batched attention matmuls on strided bf16 views); these stream the weights once with fp32
 * accumulation, and keep activations exact (weight-only quantization: the maths of llm42's int8/int4).
 *
 * Layouts are PyTorch's own: W[n][k] row-major (bf16 bits, int8); int4 as torch._convert_weight_to_int4pack
 * for CPU packs it (blocks of 64 rows; per input channel 32 bytes, low nibbles rows 0-31, high 32-63) with
 * scales_zeros[k/group][n][2] in bf16; KV cache [kv_heads][capacity][head_dim]. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

static inline float bf16(uint16_t v) {
    union { uint32_t u; float f; } c = { (uint32_t)v << 16 };
    return c.f;
}

static inline uint16_t to_bf16(float f) { /* round to nearest even, as PyTorch converts */
    union { float f; uint32_t u; } c = { f };
    if ((c.u & 0x7fffffff) > 0x7f800000) return (uint16_t)((c.u >> 16) | 64); /* NaN stays NaN */
    return (uint16_t)((c.u + 0x7fff + ((c.u >> 16) & 1)) >> 16);
}

static void widen(const uint16_t *x, float *out, int64_t k) {
    for (int64_t i = 0; i < k; i++) out[i] = bf16(x[i]);
}

int llm42_kernels_version(void) { return 1; }

/* y[n] = W[n][k] x[k], W bf16 */
#if defined(__AVX512BF16__)
void llm42_gemv_bf16(const uint16_t *restrict w, const uint16_t *restrict x, uint16_t *restrict y, int64_t n,
                     int64_t k) {
    /* AVX512-BF16: 32 products of bf16 pairs per instruction, accumulated in fp32; x is bf16 already */
    int64_t body = k - k % 32;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r += 4) {
        int64_t rows = n - r < 4 ? n - r : 4;
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        for (int64_t i = 0; i < body; i += 32) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i);
            for (int64_t j = 0; j < rows; j++)
                acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_loadu_si512(w + (r + j) * k + i), xv);
        }
        for (int64_t j = 0; j < rows; j++) {
            float a = _mm512_reduce_add_ps(acc[j]);
            for (int64_t i = body; i < k; i++) a += bf16(w[(r + j) * k + i]) * bf16(x[i]);
            y[r + j] = to_bf16(a);
        }
    }
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

/* y[n] = scale[n] * (W[n][k] x[k]), W int8, one scale per row (bf16) */
#if defined(__AVX512VNNI__)
/* With VNNI, 64 int8 products per instruction: x is rounded to int8 per block of 32 (its own scale, max|x|/127,
 * as llama.cpp's q8_0 does), so the weights are read at memory speed instead of being converted to floats.
 * VNNI multiplies unsigned by signed bytes: the weights go in as w + 128 (a sign flip of the bits), and
 * 128 * sum(x) per block, the same for every row, comes off at the end. */
void llm42_gemv_int8(const int8_t *restrict w, const uint16_t *restrict scale, const uint16_t *restrict x16,
                     uint16_t *restrict y, int64_t n, int64_t k) {
    if (k % 64) { /* the 42dot and SmolLM2 shapes never take this path */
        for (int64_t r = 0; r < n; r++) {
            float a = 0;
            for (int64_t i = 0; i < k; i++) a += (float)w[r * k + i] * bf16(x16[i]);
            y[r] = to_bf16(a * bf16(scale[r]));
        }
        return;
    }
    int64_t pairs = k / 64;
    int8_t *xq = aligned_alloc(64, k);
    __m512 *sx = aligned_alloc(64, sizeof(__m512) * pairs);
    float correction = 0;
    for (int64_t b = 0; b < k / 32; b++) {
        float m = 0, s, inv;
        for (int i = 0; i < 32; i++) m = fmaxf(m, fabsf(bf16(x16[b * 32 + i])));
        s = m / 127.0f, inv = m > 0 ? 127.0f / m : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += xq[b * 32 + i] = (int8_t)lrintf(bf16(x16[b * 32 + i]) * inv);
        correction += 128.0f * s * (float)sum;
        if (b % 2 == 0) sx[b / 2] = _mm512_set1_ps(s);
        else sx[b / 2] = _mm512_insertf32x8(sx[b / 2], _mm256_set1_ps(s), 1);
    }
    const __m512i flip = _mm512_set1_epi8((char)0x80);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        const int8_t *wr = w + r * k;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t b = 0; b < pairs; b++) {
            __m512i q = _mm512_xor_si512(_mm512_loadu_si512(wr + b * 64), flip);
            __m512i d = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q, _mm512_load_si512(xq + b * 64));
            acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(d), sx[b], acc);
        }
        y[r] = to_bf16((_mm512_reduce_add_ps(acc) - correction) * bf16(scale[r]));
    }
    free(sx);
    free(xq);
}
#else
void llm42_gemv_int8(const int8_t *restrict w, const uint16_t *restrict scale, const uint16_t *restrict x16,
                     uint16_t *restrict y, int64_t n, int64_t k) {
    float *x = malloc(sizeof(float) * k);
    widen(x16, x, k);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float a = 0;
        const int8_t *wr = w + r * k;
#pragma omp simd reduction(+ : a)
        for (int64_t i = 0; i < k; i++) a += (float)wr[i] * x[i];
        y[r] = to_bf16(a * bf16(scale[r]));
    }
    free(x);
}
#endif

/* y[n] = W x with W[r][i] = (q - 8) * scale[g][r] + zero[g][r], g = i / group, q in torch's CPU int4 packing.
 * Per group: y_r += scale (sum q x - 8 sum x) + zero sum x, so the 4-bit codes meet x in fp32 once. */
void llm42_gemv_int4(const uint8_t *restrict packed, const uint16_t *restrict scales_zeros, int64_t group,
                     const uint16_t *restrict x16, uint16_t *restrict y, int64_t n, int64_t k) {
    float *x = malloc(sizeof(float) * k);
    widen(x16, x, k);
    int64_t groups = k / group;
    float *xsum = malloc(sizeof(float) * groups);
    for (int64_t g = 0; g < groups; g++) {
        float s = 0;
        for (int64_t i = g * group; i < (g + 1) * group; i++) s += x[i];
        xsum[g] = s;
    }
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n / 64; b++) {
        const uint8_t *block = packed + b * 64 * (k / 2);
        float out[64] = {0};
        for (int64_t g = 0; g < groups; g++) {
            float acc[64] = {0};
            for (int64_t i = g * group; i < (g + 1) * group; i++) {
                const uint8_t *p = block + i * 32;
                float xi = x[i];
#pragma omp simd
                for (int j = 0; j < 32; j++) {
                    acc[j] += (float)(p[j] & 15) * xi;
                    acc[j + 32] += (float)(p[j] >> 4) * xi;
                }
            }
            const uint16_t *sz = scales_zeros + (g * n + b * 64) * 2;
            float xs = xsum[g];
#pragma omp simd
            for (int r = 0; r < 64; r++) out[r] += bf16(sz[2 * r]) * (acc[r] - 8.0f * xs) + bf16(sz[2 * r + 1]) * xs;
        }
        for (int r = 0; r < 64; r++) y[b * 64 + r] = to_bf16(out[r]);
    }
    free(xsum);
    free(x);
}

/* exp for x <= 0 (softmax after subtracting the max), vectorizable: 2^(x log2 e) split into 2^integer (the
 * exponent bits) and 2^fraction (a degree-6 polynomial, relative error below 2e-7). */
static inline float exp_neg(float x) {
    x = x < -87.0f ? -87.0f : x;
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
    union { uint32_t u; float f; } e = { (uint32_t)((int32_t)fi + 127) << 23 };
    return p * e.f;
}

/* One query per head against the first n positions of a KV cache: out[h] = softmax(q_h K^T * scale) V for
 * each query head h; heads share key/value heads in groups (GQA). K and V are read once. */
#if defined(__AVX512BF16__)
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
static void attend_head(const uint16_t *q16, const uint16_t *K, const uint16_t *V, uint16_t *out, int64_t n,
                        int64_t d, float scale, float *s) {
    int64_t chunks = d / 32;
    __m512bh q[8];
    for (int64_t c = 0; c < chunks; c++) q[c] = (__m512bh)_mm512_loadu_si512(q16 + c * 32);
    float m = -INFINITY;
    int64_t t = 0;
    for (; t + 16 <= n; t += 16) {
        __m512 acc[16];
        for (int j = 0; j < 16; j++) {
            acc[j] = _mm512_setzero_ps();
            for (int64_t c = 0; c < chunks; c++)
                acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_loadu_si512(K + (t + j) * d + c * 32), q[c]);
        }
        __m512 sc = _mm512_mul_ps(sum16(acc), _mm512_set1_ps(scale));
        _mm512_storeu_ps(s + t, sc);
        m = fmaxf(m, _mm512_reduce_max_ps(sc));
    }
    for (; t < n; t++) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < chunks; c++)
            acc = _mm512_dpbf16_ps(acc, (__m512bh)_mm512_loadu_si512(K + t * d + c * 32), q[c]);
        s[t] = _mm512_reduce_add_ps(acc) * scale;
        m = fmaxf(m, s[t]);
    }
    float sum = 0;
    for (t = 0; t < n; t++) sum += s[t] = exp_neg(s[t] - m);
    /* values: weighted by the fp32 probabilities (PyTorch's attention keeps them in fp32 too) */
    __m512 acc[16];
    for (int64_t c = 0; c < 2 * chunks; c++) acc[c] = _mm512_setzero_ps();
    for (t = 0; t < n; t++) {
        __m512 p = _mm512_set1_ps(s[t]);
        const uint16_t *vt = V + t * d;
        for (int64_t c = 0; c < 2 * chunks; c++) {
            __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(vt + c * 16)));
            acc[c] = _mm512_fmadd_ps(_mm512_castsi512_ps(_mm512_slli_epi32(v, 16)), p, acc[c]);
        }
    }
    float o[256];
    for (int64_t c = 0; c < 2 * chunks; c++) _mm512_storeu_ps(o + c * 16, acc[c]);
    for (int64_t i = 0; i < d; i++) out[i] = to_bf16(o[i] / sum);
}
#endif

void llm42_attend(const uint16_t *restrict q16, const uint16_t *restrict keys, const uint16_t *restrict values,
                  uint16_t *restrict out, int64_t heads, int64_t kv_heads, int64_t n, int64_t d, int64_t head_stride,
                  float scale) {
    int64_t per = heads / kv_heads;
#if defined(__AVX512BF16__)
    if (d % 32 == 0 && d <= 256) {
#pragma omp parallel for schedule(static)
        for (int64_t h = 0; h < heads; h++) {
            float *s = malloc(sizeof(float) * (n + 16));
            attend_head(q16 + h * d, keys + (h / per) * head_stride, values + (h / per) * head_stride, out + h * d,
                        n, d, scale, s);
            free(s);
        }
        return;
    }
#endif
#pragma omp parallel for schedule(static)
    for (int64_t h = 0; h < heads; h++) {
        const uint16_t *K = keys + (h / per) * head_stride, *V = values + (h / per) * head_stride;
        float q[256], o[256];
        float *s = malloc(sizeof(float) * n);
        for (int64_t i = 0; i < d; i++) q[i] = bf16(q16[h * d + i]) * scale, o[i] = 0;
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
            s[t] = exp_neg(s[t] - m);
            sum += s[t];
        }
        for (int64_t t = 0; t < n; t++) {
            const uint16_t *vt = V + t * d;
            float p = s[t];
#pragma omp simd
            for (int64_t i = 0; i < d; i++) o[i] += p * bf16(vt[i]);
        }
        for (int64_t i = 0; i < d; i++) out[h * d + i] = to_bf16(o[i] / sum);
        free(s);
    }
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

/* x += y (the residual stream), rounded to bf16 */
void llm42_add(uint16_t *restrict x, const uint16_t *restrict y, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = to_bf16(bf16(x[i]) + bf16(y[i]));
}

/* gate = silu(gate) * up, rounded to bf16 after each as PyTorch does */
void llm42_silu_mul(uint16_t *restrict gate, const uint16_t *restrict up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = bf16(gate[i]);
        gate[i] = to_bf16(bf16(to_bf16(g / (1.0f + expf(-g)))) * bf16(up[i]));
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

void llm42_dequant_int4(const uint8_t *restrict packed, const uint16_t *restrict scales_zeros, int64_t group,
                        uint16_t *restrict out, int64_t n, int64_t k) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < n / 64; b++) {
        const uint8_t *block = packed + b * 64 * (k / 2);
        float s[64], off[64];
        uint16_t tile[64][32]; /* 64 rows x 32 inputs, written column by column, copied out row by row */
        for (int64_t i0 = 0; i0 < k; i0 += 32) {
            if (i0 % group == 0) {
                const uint16_t *sz = scales_zeros + ((i0 / group) * n + b * 64) * 2;
                for (int j = 0; j < 64; j++) {
                    s[j] = bf16(sz[2 * j]);
                    off[j] = bf16(to_bf16(bf16(sz[2 * j + 1]) - bf16(to_bf16(8.0f * s[j]))));
                }
            }
            for (int c = 0; c < 32 && i0 + c < k; c++) {
                const uint8_t *p = block + (i0 + c) * 32;
                for (int j = 0; j < 32; j++) {
                    tile[j][c] = to_bf16(bf16(to_bf16((float)(p[j] & 15) * s[j])) + off[j]);
                    tile[j + 32][c] = to_bf16(bf16(to_bf16((float)(p[j] >> 4) * s[j + 32])) + off[j + 32]);
                }
            }
            int64_t width = k - i0 < 32 ? k - i0 : 32;
            for (int j = 0; j < 64; j++) memcpy(out + (b * 64 + j) * k + i0, tile[j], sizeof(uint16_t) * width);
        }
    }
}

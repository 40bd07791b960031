/* attention — causal multi-head softmax attention on the CPU.
 *
 * Layout: qkv is [B, T, 3, NH, HS] (token (b,t) holds q, k, v of every head
 * back to back, C = NH·HS each), out is [B, T, NH, HS]. For each (b, h):
 *   S = Q·Kᵀ/√HS,  P = softmax over j ≤ t of S[t, j] (P[t, j] = 0 for j > t),
 *   O = P·V.
 * The T×T probabilities are kept for the backward (`saved`, B·NH·T·T f32):
 * the reference backend trades memory for simplicity; the CUDA backend keeps
 * only each row's log-sum-exp (FlashAttention-2). Backward:
 *   dP = dO·Vᵀ,  dV = Pᵀ·dO,  dS = P ⊙ (dP − rowsum(dP ⊙ P)),
 *   dQ = dS·K/√HS,  dK = dSᵀ·Q/√HS
 * dqkv is OVERWRITTEN. The matrix products are strided sgemm calls straight
 * on the qkv layout (leading dimension 3C), so nothing is transposed or
 * copied, and they skip the masked upper triangle block by block; OpenBLAS
 * threads each product, OpenMP the row-wise softmax.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "fail.h"

size_t cpu_attention_saved_elems(int B, int T, int NH) { return (size_t)B * NH * T * T; }

/* Causal work is a triangle: products run on blocks of BLOCK rows (queries)
 * against only the keys they can see, or BLOCK columns (keys) against only
 * the queries that see them, which halves the FLOPs of the square. */
#define BLOCK 128

static inline int min_int(int a, int b) { return a < b ? a : b; }

void cpu_attention_forward(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C, int NH) {
  const int HS = C / NH, ld_qkv = 3 * C;
  const float scale = 1.0f / sqrtf((float)HS);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float *q = CF(qkv) + (size_t)b * T * ld_qkv + (size_t)h * HS;
      const float *k = q + C, *v = q + 2 * C;
      float *p = F(saved) + ((size_t)b * NH + h) * T * T;
      float *o = F(out) + (size_t)b * T * C + (size_t)h * HS;
      for (int r0 = 0; r0 < T; r0 += BLOCK) { /* S[r0:r1, 0:r1] = Q Kᵀ·scale */
        const int r1 = min_int(r0 + BLOCK, T);
        cpu_gemm(false, true, r1 - r0, r1, HS, scale, (const act_t *)(q + (size_t)r0 * ld_qkv),
                 ld_qkv, (const act_t *)k, ld_qkv, 0.0f, (act_t *)(p + (size_t)r0 * T), T);
      }
#pragma omp parallel for schedule(static)
      for (int t = 0; t < T; t++) {
        float *row = p + (size_t)t * T;
        float max_score = -INFINITY;
        for (int j = 0; j <= t; j++) max_score = fmaxf(max_score, row[j]);
        double sum = 0;
        for (int j = 0; j <= t; j++) {
          row[j] = expf(row[j] - max_score);
          sum += row[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int j = 0; j <= t; j++) row[j] *= inv;
        for (int j = t + 1; j < T; j++) row[j] = 0.0f; /* causal mask */
      }
      for (int r0 = 0; r0 < T; r0 += BLOCK) { /* O[r0:r1] = P[r0:r1, 0:r1] V[0:r1] */
        const int r1 = min_int(r0 + BLOCK, T);
        cpu_gemm(false, false, r1 - r0, HS, r1, 1.0f, (const act_t *)(p + (size_t)r0 * T), T,
                 (const act_t *)v, ld_qkv, 0.0f, (act_t *)(o + (size_t)r0 * C), C);
      }
    }
}

void cpu_attention_backward(act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,
                            const f32_t *saved, int B, int T, int C, int NH) {
  (void)out; /* the saved probabilities give everything */
  const int HS = C / NH, ld_qkv = 3 * C;
  const float scale = 1.0f / sqrtf((float)HS);
  float *dp = xmalloc((size_t)T * T * sizeof *dp, "attention backward scratch");
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const size_t head = (size_t)b * T * ld_qkv + (size_t)h * HS;
      const float *q = CF(qkv) + head, *k = q + C, *v = q + 2 * C;
      float *dq = F(dqkv) + head, *dk = dq + C, *dv = dq + 2 * C;
      const float *p = CF(saved) + ((size_t)b * NH + h) * T * T;
      const float *d_o = CF(dout) + (size_t)b * T * C + (size_t)h * HS;
      for (int r0 = 0; r0 < T; r0 += BLOCK) { /* dP[r0:r1, 0:r1] = dO Vᵀ */
        const int r1 = min_int(r0 + BLOCK, T);
        cpu_gemm(false, true, r1 - r0, r1, HS, 1.0f, (const act_t *)(d_o + (size_t)r0 * C), C,
                 (const act_t *)v, ld_qkv, 0.0f, (act_t *)(dp + (size_t)r0 * T), T);
      }
      for (int c0 = 0; c0 < T; c0 += BLOCK) { /* dV[c0:c1] = P[c0:T, c0:c1]ᵀ dO[c0:T] */
        const int c1 = min_int(c0 + BLOCK, T);
        cpu_gemm(true, false, c1 - c0, HS, T - c0, 1.0f, (const act_t *)(p + (size_t)c0 * T + c0), T,
                 (const act_t *)(d_o + (size_t)c0 * C), C, 0.0f,
                 (act_t *)(dv + (size_t)c0 * ld_qkv), ld_qkv);
      }
      /* dS = P ⊙ (dP − rowsum(dP ⊙ P)), in place in dp */
#pragma omp parallel for schedule(static)
      for (int t = 0; t < T; t++) {
        const float *prow = p + (size_t)t * T;
        float *drow = dp + (size_t)t * T;
        double dot = 0;
        for (int j = 0; j <= t; j++) dot += (double)drow[j] * prow[j];
        for (int j = 0; j <= t; j++) drow[j] = prow[j] * (drow[j] - (float)dot);
        for (int j = t + 1; j < T; j++) drow[j] = 0.0f;
      }
      for (int r0 = 0; r0 < T; r0 += BLOCK) { /* dQ[r0:r1] = dS[r0:r1, 0:r1] K[0:r1]·scale */
        const int r1 = min_int(r0 + BLOCK, T);
        cpu_gemm(false, false, r1 - r0, HS, r1, scale, (const act_t *)(dp + (size_t)r0 * T), T,
                 (const act_t *)k, ld_qkv, 0.0f, (act_t *)(dq + (size_t)r0 * ld_qkv), ld_qkv);
      }
      for (int c0 = 0; c0 < T; c0 += BLOCK) { /* dK[c0:c1] = dS[c0:T, c0:c1]ᵀ Q[c0:T]·scale */
        const int c1 = min_int(c0 + BLOCK, T);
        cpu_gemm(true, false, c1 - c0, HS, T - c0, scale, (const act_t *)(dp + (size_t)c0 * T + c0), T,
                 (const act_t *)(q + (size_t)c0 * ld_qkv), ld_qkv, 0.0f,
                 (act_t *)(dk + (size_t)c0 * ld_qkv), ld_qkv);
      }
    }
  free(dp);
}

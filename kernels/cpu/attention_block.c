/* attention_block — causal softmax attention one key block at a time, for
 * sequence parallelism (ring attention, all-gathered K/V): FlashAttention's
 * decomposition into block results merged by their log-sum-exp.
 *
 * A query block (Tq rows at global positions q_pos0 + i) meets a key block
 * (Tk rows at k_pos0 + j); key j is visible to query i iff
 * k_pos0 + j ≤ q_pos0 + i. Rows are addressed with leading dimensions, so q,
 * k, v point into a qkv buffer (ld 3C) or a packed K/V buffer (ld 2C). Per
 * (b, h), with S = Q Kᵀ/√HS over the visible keys:
 *   forward:  lse_i = log Σ_j exp(S_ij),  O = exp(S − lse) V  (both OVERWRITTEN;
 *             a row with no visible key: lse = −∞, O = 0)
 *   merge:    lse' = max + log1p(exp(−|lse − lse_b|)),
 *             O' = e^{lse−lse'} O + e^{lse_b−lse'} O_b           (in place)
 *   delta:    δ_i = Σ_e dO_ie O_ie                                (O the merged output)
 *   backward: P = exp(S − lse_global), dP = dO Vᵀ, dS = P ⊙ (dP − δ),
 *             dQ += dS K/√HS, dK += dSᵀ Q/√HS, dV += Pᵀ dO     (ACCUMULATED)
 * Since every block's P uses the global lse, the blocks' backward terms add
 * up to the whole sequence's (attention.c). Queries go in blocks of BLOCK
 * rows against only the keys the block's last row sees (so a fully masked
 * block costs nothing and scratch is BLOCK·Tk floats); the products are
 * strided sgemm calls on the callers' layouts, OpenMP runs the row loops.
 * lse, δ and the merge weights are computed in double, stored in f32.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "fail.h"

#define BLOCK 128

static inline int min_int(int a, int b) { return a < b ? a : b; }

/* Row r = (b·NH + h)·T + i of a [B, NH, T] row statistic (lse, δ): where
 * its head's HS values start in a [B, T, NH, HS] tensor (out, dout) */
static inline size_t head_row_at(long r, int T, int C, int NH) {
  const long b = r / ((long)NH * T), h = r / T % NH, i = r % T;
  return ((size_t)b * T + i) * C + (size_t)h * (C / NH);
}

/* how many keys (from j = 0) query i sees: those with k_pos0 + j ≤ q_pos0 + i */
static inline int visible_keys(int i, int Tk, int q_pos0, int k_pos0) {
  const long n = (long)q_pos0 + i - k_pos0 + 1;
  return n < 0 ? 0 : n > Tk ? Tk : (int)n;
}

void cpu_attention_block_forward(f32_t *out, f32_t *lse, const act_t *q, const act_t *k,
                                 const act_t *v, int ld_q, int ld_kv, int B, int Tq, int Tk, int C,
                                 int NH, int q_pos0, int k_pos0) {
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf((float)HS);
  float *s = xmalloc((size_t)BLOCK * (Tk > 0 ? Tk : 1) * sizeof *s, "block attention scratch");
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float *qh = CF(q) + (size_t)b * Tq * ld_q + (size_t)h * HS;
      const float *kh = CF(k) + (size_t)b * Tk * ld_kv + (size_t)h * HS;
      const float *vh = CF(v) + (size_t)b * Tk * ld_kv + (size_t)h * HS;
      float *oh = F(out) + (size_t)b * Tq * C + (size_t)h * HS;
      float *lh = F(lse) + ((size_t)b * NH + h) * Tq;
      for (int r0 = 0; r0 < Tq; r0 += BLOCK) {
        const int r1 = min_int(r0 + BLOCK, Tq), n_rows = r1 - r0;
        const int n_cols = visible_keys(r1 - 1, Tk, q_pos0, k_pos0); /* the block's widest row */
        if (n_cols == 0) { /* nothing visible to any row of the block */
          for (int r = r0; r < r1; r++) {
            lh[r] = -INFINITY;
            memset(oh + (size_t)r * C, 0, (size_t)HS * sizeof *oh);
          }
          continue;
        }
        cpu_gemm(false, true, n_rows, n_cols, HS, scale, (const act_t *)(qh + (size_t)r0 * ld_q),
                 ld_q, (const act_t *)kh, ld_kv, 0.0f, (act_t *)s, n_cols);
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n_rows; r++) {
          float *row = s + (size_t)r * n_cols;
          const int n_vis = visible_keys(r0 + r, Tk, q_pos0, k_pos0);
          if (n_vis == 0) {
            lh[r0 + r] = -INFINITY;
            memset(row, 0, (size_t)n_cols * sizeof *row);
            continue;
          }
          float max_score = -INFINITY;
          for (int j = 0; j < n_vis; j++) max_score = fmaxf(max_score, row[j]);
          double sum = 0;
          for (int j = 0; j < n_vis; j++) {
            row[j] = expf(row[j] - max_score);
            sum += row[j];
          }
          const float inv = (float)(1.0 / sum);
          for (int j = 0; j < n_vis; j++) row[j] *= inv;
          for (int j = n_vis; j < n_cols; j++) row[j] = 0.0f; /* causal mask */
          lh[r0 + r] = (float)(max_score + log(sum));
        }
        cpu_gemm(false, false, n_rows, HS, n_cols, 1.0f, (const act_t *)s, n_cols,
                 (const act_t *)vh, ld_kv, 0.0f, (act_t *)(oh + (size_t)r0 * C), C);
      }
    }
  free(s);
}

void cpu_attention_merge(f32_t *out, f32_t *lse, const f32_t *out_b, const f32_t *lse_b, int B,
                         int Tq, int C, int NH) {
  const int HS = C / NH;
  float *o = F(out), *l = F(lse);
  const float *ob = CF(out_b), *lb = CF(lse_b);
  const long n_rows = (long)B * NH * Tq;
#pragma omp parallel for schedule(static)
  for (long r = 0; r < n_rows; r++) {
    const size_t at = head_row_at(r, Tq, C, NH);
    const double la = l[r], lbr = lb[r];
    if (lbr == -INFINITY) continue; /* the block adds nothing */
    if (la == -INFINITY) {          /* nothing so far: take the block's row */
      memcpy(o + at, ob + at, (size_t)HS * sizeof *o);
      l[r] = (float)lbr;
      continue;
    }
    const double merged = fmax(la, lbr) + log1p(exp(-fabs(la - lbr)));
    const float wa = (float)exp(la - merged), wb = (float)exp(lbr - merged);
    for (int e = 0; e < HS; e++) o[at + e] = wa * o[at + e] + wb * ob[at + e];
    l[r] = (float)merged;
  }
}

void cpu_attention_delta(f32_t *delta, const act_t *dout, const act_t *out, int B, int T, int C,
                         int NH) {
  const int HS = C / NH;
  float *d = F(delta);
  const float *dy = CF(dout), *y = CF(out);
  const long n_rows = (long)B * NH * T;
#pragma omp parallel for schedule(static)
  for (long r = 0; r < n_rows; r++) {
    const size_t at = head_row_at(r, T, C, NH);
    double sum = 0;
    for (int e = 0; e < HS; e++) sum += (double)dy[at + e] * y[at + e];
    d[r] = (float)sum;
  }
}

void cpu_attention_block_backward(act_t *dq, act_t *dk, act_t *dv, int ld_dq, int ld_dkv,
                                  const act_t *dout, const f32_t *delta, const f32_t *lse,
                                  const act_t *q, const act_t *k, const act_t *v, int ld_q,
                                  int ld_kv, int B, int Tq, int Tk, int C, int NH, int q_pos0,
                                  int k_pos0) {
  const int HS = C / NH;
  const float scale = 1.0f / sqrtf((float)HS);
  const size_t scratch = (size_t)BLOCK * (Tk > 0 ? Tk : 1);
  float *p = xmalloc(2 * scratch * sizeof *p, "block attention backward scratch"), *dp = p + scratch;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const size_t q_head = (size_t)b * Tq * ld_q + (size_t)h * HS;
      const size_t kv_head = (size_t)b * Tk * ld_kv + (size_t)h * HS;
      const float *qh = CF(q) + q_head, *kh = CF(k) + kv_head, *vh = CF(v) + kv_head;
      float *dqh = F(dq) + (size_t)b * Tq * ld_dq + (size_t)h * HS;
      float *dkh = F(dk) + (size_t)b * Tk * ld_dkv + (size_t)h * HS;
      float *dvh = F(dv) + (size_t)b * Tk * ld_dkv + (size_t)h * HS;
      const float *doh = CF(dout) + (size_t)b * Tq * C + (size_t)h * HS;
      const float *lh = CF(lse) + ((size_t)b * NH + h) * Tq;
      const float *deltah = CF(delta) + ((size_t)b * NH + h) * Tq;
      for (int r0 = 0; r0 < Tq; r0 += BLOCK) {
        const int r1 = min_int(r0 + BLOCK, Tq), n_rows = r1 - r0;
        const int n_cols = visible_keys(r1 - 1, Tk, q_pos0, k_pos0);
        if (n_cols == 0) continue; /* fully masked: no contribution */
        /* S = Q Kᵀ·scale into p, dP = dO Vᵀ into dp */
        cpu_gemm(false, true, n_rows, n_cols, HS, scale, (const act_t *)(qh + (size_t)r0 * ld_q),
                 ld_q, (const act_t *)kh, ld_kv, 0.0f, (act_t *)p, n_cols);
        cpu_gemm(false, true, n_rows, n_cols, HS, 1.0f, (const act_t *)(doh + (size_t)r0 * C), C,
                 (const act_t *)vh, ld_kv, 0.0f, (act_t *)dp, n_cols);
        /* P = exp(S − lse), dS = P ⊙ (dP − δ), both in place */
#pragma omp parallel for schedule(static)
        for (int r = 0; r < n_rows; r++) {
          float *prow = p + (size_t)r * n_cols, *drow = dp + (size_t)r * n_cols;
          const int n_vis = lh[r0 + r] == -INFINITY ? 0 : visible_keys(r0 + r, Tk, q_pos0, k_pos0);
          const float row_lse = lh[r0 + r], row_delta = deltah[r0 + r];
          for (int j = 0; j < n_vis; j++) {
            const float pj = expf(prow[j] - row_lse);
            prow[j] = pj;
            drow[j] = pj * (drow[j] - row_delta);
          }
          for (int j = n_vis; j < n_cols; j++) prow[j] = drow[j] = 0.0f;
        }
        /* dV[0:n_cols] += Pᵀ dO,  dQ[r0:r1] += dS K·scale,  dK[0:n_cols] += dSᵀ Q·scale */
        cpu_gemm(true, false, n_cols, HS, n_rows, 1.0f, (const act_t *)p, n_cols,
                 (const act_t *)(doh + (size_t)r0 * C), C, 1.0f, (act_t *)dvh, ld_dkv);
        cpu_gemm(false, false, n_rows, HS, n_cols, scale, (const act_t *)dp, n_cols,
                 (const act_t *)kh, ld_kv, 1.0f, (act_t *)(dqh + (size_t)r0 * ld_dq), ld_dq);
        cpu_gemm(true, false, n_cols, HS, n_rows, scale, (const act_t *)dp, n_cols,
                 (const act_t *)(qh + (size_t)r0 * ld_q), ld_q, 1.0f, (act_t *)dkh, ld_dkv);
      }
    }
  free(p);
}

/* linear_attention — causal linear attention with per-head decay, chunkwise
 * (Lightning Attention / RetNet form), and the state ops that chain pieces of
 * a sequence for sequence parallelism (LASP-1 ring, LASP-2 all-gather).
 *
 * Per (b, h), λ = decay[h] (1 when decay is NULL), state S [d = HS, e = HS]
 * after each token: S_t = λ S_{t−1} + k_tᵀ v_t, o_t = q_t S_t, no feature map,
 * scale or normaliser. Chunks of L ≤ chunk rows, local i, j ∈ [0, L):
 *   D_ij = λ^{i−j}[i ≥ j], a_i = λ^{i+1}, b_j = λ^{L−1−j}, γ = λ^L
 *   O_c = ((Q_c K_cᵀ) ⊙ D) V_c + diag(a) Q_c S_{c−1}
 *   S_c = γ S_{c−1} + (diag(b) K_c)ᵀ V_c
 * (a_i = λ^{i+1} because S is the state AFTER a token: query i of a chunk
 * is i + 1 steps past the previous chunk's last token). Backward, two sweeps
 * that recompute the states instead of storing one per chunk:
 *   last → first, with dS_c = ∂L/∂S_c (starting from dstate, or 0):
 *     A = (dO_c V_cᵀ) ⊙ D,  dQ_c = A K_c,
 *     dK_c = Aᵀ Q_c + diag(b) V_c dS_cᵀ,  dV_c = ((Q_c K_cᵀ) ⊙ D)ᵀ dO_c + diag(b) K_c dS_c,
 *     dS_{c−1} = γ dS_c + Q_cᵀ diag(a) dO_c
 *   first → last, recomputing S_{c−1}:  dQ_c += diag(a) dO_c S_{c−1}ᵀ
 * dqkv is OVERWRITTEN by linear_attention_backward. The state ops take the
 * state entering a piece, S_in: out += diag(λ^{i+1}) Q S_in forward;
 * dQ += diag(λ^{i+1}) dO S_inᵀ (ACCUMULATED) and dS_in = Qᵀ diag(λ^{i+1}) dO
 * (OVERWRITTEN) backward; state_combine is the Horner step S = λ^n S + M of
 * both the forward and the backward scan (kernels/backend_ops.h).
 * Every product is an sgemm on the qkv layout (ld 3C); decay is applied by
 * scaling rows into a scratch copy (no division by powers of λ, so small λ
 * cannot overflow). Powers of λ come from pow() in double. Heads run one
 * after the other; OpenBLAS threads the products.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "fail.h"

#define STATE_BLOCK 256 /* rows per product in the state ops (bounds the scratch) */

static inline int min_int(int a, int b) { return a < b ? a : b; }

static double head_decay(const f32_t *decay, int h) {
  if (!decay) return 1.0;
  const double lambda = CF(decay)[h];
  ENSURE(lambda > 0.0 && lambda <= 1.0, "linear attention: decay of head %d is %g, not in (0, 1]",
         h, lambda);
  return lambda;
}

/* pw[n] = λ^n for n = 0..n_max */
static void decay_powers(float *pw, double lambda, int n_max) {
  for (int n = 0; n <= n_max; n++) pw[n] = (float)pow(lambda, n);
}

/* dst[r, :] = factor(r)·src[r, :] for r < n_rows, HS columns, dst dense (ld HS):
 * factor(r) = pw[first + r] (increasing powers) or pw[first − r] (decreasing) */
static void scale_rows(float *dst, const float *src, int ld_src, int n_rows, int HS, const float *pw,
                       int first, int step) {
  for (int r = 0; r < n_rows; r++) {
    const float f = pw[first + step * r];
    const float *s = src + (size_t)r * ld_src;
    float *d = dst + (size_t)r * HS;
    for (int e = 0; e < HS; e++) d[e] = f * s[e];
  }
}

/* The rows src[r, :] (ld_src) as a product reads them: when the head decays,
 * scaled by factor(r) as in scale_rows into the scratch x (ld HS); when it
 * does not (every factor 1), src itself. *ld gets the rows' stride. */
static const float *decayed_rows(float *x, const float *src, int ld_src, int n_rows, int HS, const float *pw,
                                 int first, int step, bool decays, int *ld) {
  if (!decays) {
    *ld = ld_src;
    return src;
  }
  scale_rows(x, src, ld_src, n_rows, HS, pw, first, step);
  *ld = HS;
  return x;
}

/* The state ops work on blocks of ≤ STATE_BLOCK rows; their scratch holds a
 * block's scaled rows (x) and its powers of λ (pw). */
typedef struct state_scratch {
  float *x, *pw;
} state_scratch;
static state_scratch state_scratch_create(int T, int HS) {
  const int L_max = min_int(STATE_BLOCK, T > 0 ? T : 1);
  return (state_scratch){xmalloc((size_t)L_max * HS * sizeof(float), "linear attention scratch"),
                         xmalloc((size_t)(L_max + 1) * sizeof(float), "linear attention powers")};
}
static void state_scratch_free(state_scratch s) {
  free(s.x);
  free(s.pw);
}

/* A state op's block: rows t0 + i (i < L) of src (ld_src) scaled by
 * λ^{t0+i+1} = λ^{t0}·λ^{i+1}, the decay from the state entering the piece
 * to the row. */
static const float *state_block_rows(state_scratch s, const float *src, int ld_src, int t0, int L, int HS,
                                     double lambda, int *ld) {
  const bool decays = lambda != 1.0;
  if (decays)
    for (int n = 0; n <= L; n++) s.pw[n] = (float)pow(lambda, (double)t0 + n);
  return decayed_rows(s.x, src + (size_t)t0 * ld_src, ld_src, L, HS, s.pw, 1, +1, decays, ld);
}

/* the causal decay mask on an L×L block: m_ij ← m_ij·λ^{i−j} for i ≥ j, 0 above */
static void mask_decay(float *m, int L, const float *pw, bool decays) {
  for (int i = 0; i < L; i++) {
    float *row = m + (size_t)i * L;
    if (decays)
      for (int j = 0; j <= i; j++) row[j] *= pw[i - j];
    for (int j = i + 1; j < L; j++) row[j] = 0.0f;
  }
}

/* S ← γ·S + (diag(b) K_c)ᵀ V_c: the state after a chunk of L rows.
 * s_zero: S holds zeros (its content is not read). x: L×HS scratch. */
static void state_step(float *S, bool s_zero, const float *k, const float *v, int ld, int L, int HS,
                       const float *pw, bool decays, float *x) {
  if (decays && !s_zero)
    for (int e = 0; e < HS * HS; e++) S[e] *= pw[L];
  int ld_kb;
  const float *kb = decayed_rows(x, k, ld, L, HS, pw, L - 1, -1, decays, &ld_kb);
  cpu_gemm(true, false, HS, HS, L, 1.0f, (const act_t *)kb, ld_kb, (const act_t *)v, ld,
           s_zero ? 0.0f : 1.0f, (act_t *)S, HS);
}

void cpu_linear_attention_forward(act_t *out, f32_t *state, const act_t *qkv, const f32_t *decay,
                                  int B, int T, int C, int NH, int chunk) {
  ENSURE(chunk >= 1, "linear attention: chunk %d < 1", chunk);
  const int HS = C / NH, ld = 3 * C, L_max = min_int(chunk, T > 0 ? T : 1);
  float *pw = xmalloc((size_t)(L_max + 1) * sizeof *pw, "linear attention powers");
  float *a = xmalloc((size_t)L_max * L_max * sizeof *a, "linear attention scratch");
  float *x = xmalloc((size_t)L_max * HS * sizeof *x, "linear attention scratch");
  float *s_scratch = state ? NULL : xmalloc((size_t)HS * HS * sizeof *s_scratch, "state scratch");
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const double lambda = head_decay(decay, h);
      const bool decays = lambda != 1.0;
      decay_powers(pw, lambda, L_max);
      const float *q = CF(qkv) + (size_t)b * T * ld + (size_t)h * HS, *k = q + C, *v = q + 2 * C;
      float *o = F(out) + (size_t)b * T * C + (size_t)h * HS;
      float *S = state ? F(state) + ((size_t)b * NH + h) * HS * HS : s_scratch;
      memset(S, 0, (size_t)HS * HS * sizeof *S);
      bool s_zero = true;
      for (int t0 = 0; t0 < T; t0 += chunk) {
        const int L = min_int(chunk, T - t0);
        const float *qc = q + (size_t)t0 * ld, *kc = k + (size_t)t0 * ld, *vc = v + (size_t)t0 * ld;
        float *oc = o + (size_t)t0 * C;
        /* intra-chunk: O_c = ((Q_c K_cᵀ) ⊙ D) V_c */
        cpu_gemm(false, true, L, L, HS, 1.0f, (const act_t *)qc, ld, (const act_t *)kc, ld, 0.0f,
                 (act_t *)a, L);
        mask_decay(a, L, pw, decays);
        cpu_gemm(false, false, L, HS, L, 1.0f, (const act_t *)a, L, (const act_t *)vc, ld, 0.0f,
                 (act_t *)oc, C);
        /* inter-chunk: O_c += diag(a) Q_c S_{c−1} */
        if (!s_zero) {
          int ld_qa;
          const float *qa = decayed_rows(x, qc, ld, L, HS, pw, 1, +1, decays, &ld_qa);
          cpu_gemm(false, false, L, HS, HS, 1.0f, (const act_t *)qa, ld_qa, (const act_t *)S, HS,
                   1.0f, (act_t *)oc, C);
        }
        if (t0 + L < T || state) {
          state_step(S, s_zero, kc, vc, ld, L, HS, pw, decays, x);
          s_zero = false;
        }
      }
    }
  free(pw);
  free(a);
  free(x);
  free(s_scratch);
}

void cpu_linear_attention_state_forward(act_t *out, const act_t *qkv, const f32_t *state_in,
                                        const f32_t *decay, int B, int T, int C, int NH) {
  const int HS = C / NH, ld = 3 * C;
  const state_scratch scratch = state_scratch_create(T, HS);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const double lambda = head_decay(decay, h);
      const float *q = CF(qkv) + (size_t)b * T * ld + (size_t)h * HS;
      const float *S = CF(state_in) + ((size_t)b * NH + h) * HS * HS;
      float *o = F(out) + (size_t)b * T * C + (size_t)h * HS;
      for (int t0 = 0; t0 < T; t0 += STATE_BLOCK) {
        const int L = min_int(STATE_BLOCK, T - t0);
        int ld_qa;
        const float *qa = state_block_rows(scratch, q, ld, t0, L, HS, lambda, &ld_qa);
        cpu_gemm(false, false, L, HS, HS, 1.0f, (const act_t *)qa, ld_qa, (const act_t *)S, HS,
                 1.0f, (act_t *)(o + (size_t)t0 * C), C);
      }
    }
  state_scratch_free(scratch);
}

/* ~80 lines, kept whole: its two sweeps (formulas: the opening comment) share
 * the head's pointers, the powers and the scratch. */
void cpu_linear_attention_backward(act_t *dqkv, const act_t *dout, const act_t *qkv,
                                   const f32_t *dstate, const f32_t *decay, int B, int T, int C,
                                   int NH, int chunk) {
  ENSURE(chunk >= 1, "linear attention: chunk %d < 1", chunk);
  const int HS = C / NH, ld = 3 * C, L_max = min_int(chunk, T > 0 ? T : 1);
  const int n_chunks = (T + chunk - 1) / chunk;
  float *pw = xmalloc((size_t)(L_max + 1) * sizeof *pw, "linear attention powers");
  float *pm = xmalloc((size_t)2 * L_max * L_max * sizeof *pm, "linear attention scratch");
  float *am = pm + (size_t)L_max * L_max;
  float *x = xmalloc((size_t)L_max * HS * sizeof *x, "linear attention scratch");
  float *S = xmalloc((size_t)HS * HS * sizeof *S, "state scratch");
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const double lambda = head_decay(decay, h);
      const bool decays = lambda != 1.0;
      decay_powers(pw, lambda, L_max);
      const size_t head = (size_t)b * T * ld + (size_t)h * HS;
      const float *q = CF(qkv) + head, *k = q + C, *v = q + 2 * C;
      float *dq = F(dqkv) + head, *dk = dq + C, *dv = dq + 2 * C;
      const float *d_o = CF(dout) + (size_t)b * T * C + (size_t)h * HS;
      /* sweep 1, last chunk to first: intra-chunk terms and the terms through dS_c */
      float *dS = S; /* the scratch holds dS in this sweep, S in the next */
      bool ds_zero = dstate == NULL;
      if (!ds_zero)
        memcpy(dS, CF(dstate) + ((size_t)b * NH + h) * HS * HS, (size_t)HS * HS * sizeof *dS);
      for (int c = n_chunks - 1; c >= 0; c--) {
        const int t0 = c * chunk, L = min_int(chunk, T - t0);
        const size_t row = (size_t)t0 * ld;
        const float *qc = q + row, *kc = k + row, *vc = v + row, *doc = d_o + (size_t)t0 * C;
        float *dqc = dq + row, *dkc = dk + row, *dvc = dv + row;
        /* P = (Q_c K_cᵀ) ⊙ D,  A = (dO_c V_cᵀ) ⊙ D */
        cpu_gemm(false, true, L, L, HS, 1.0f, (const act_t *)qc, ld, (const act_t *)kc, ld, 0.0f,
                 (act_t *)pm, L);
        mask_decay(pm, L, pw, decays);
        cpu_gemm(false, true, L, L, HS, 1.0f, (const act_t *)doc, C, (const act_t *)vc, ld, 0.0f,
                 (act_t *)am, L);
        mask_decay(am, L, pw, decays);
        /* dQ_c = A K_c,  dK_c = Aᵀ Q_c,  dV_c = Pᵀ dO_c  (overwrite) */
        cpu_gemm(false, false, L, HS, L, 1.0f, (const act_t *)am, L, (const act_t *)kc, ld, 0.0f,
                 (act_t *)dqc, ld);
        cpu_gemm(true, false, L, HS, L, 1.0f, (const act_t *)am, L, (const act_t *)qc, ld, 0.0f,
                 (act_t *)dkc, ld);
        cpu_gemm(true, false, L, HS, L, 1.0f, (const act_t *)pm, L, (const act_t *)doc, C, 0.0f,
                 (act_t *)dvc, ld);
        if (!ds_zero) { /* dK_c += diag(b) V_c dS_cᵀ,  dV_c += diag(b) K_c dS_c */
          int ld_b;
          const float *vb = decayed_rows(x, vc, ld, L, HS, pw, L - 1, -1, decays, &ld_b);
          cpu_gemm(false, true, L, HS, HS, 1.0f, (const act_t *)vb, ld_b, (const act_t *)dS, HS,
                   1.0f, (act_t *)dkc, ld);
          const float *kb = decayed_rows(x, kc, ld, L, HS, pw, L - 1, -1, decays, &ld_b);
          cpu_gemm(false, false, L, HS, HS, 1.0f, (const act_t *)kb, ld_b, (const act_t *)dS, HS,
                   1.0f, (act_t *)dvc, ld);
        }
        if (c > 0) { /* dS_{c−1} = γ dS_c + Q_cᵀ diag(a) dO_c */
          if (decays && !ds_zero)
            for (int e = 0; e < HS * HS; e++) dS[e] *= pw[L];
          int ld_doa;
          const float *doa = decayed_rows(x, doc, C, L, HS, pw, 1, +1, decays, &ld_doa);
          cpu_gemm(true, false, HS, HS, L, 1.0f, (const act_t *)qc, ld, (const act_t *)doa, ld_doa,
                   ds_zero ? 0.0f : 1.0f, (act_t *)dS, HS);
          ds_zero = false;
        }
      }
      /* sweep 2, first chunk to last: dQ_c += diag(a) dO_c S_{c−1}ᵀ, recomputing S */
      for (int c = 1; c < n_chunks; c++) {
        const int t0 = c * chunk, L = min_int(chunk, T - t0);
        const size_t prev = (size_t)(t0 - chunk) * ld;
        state_step(S, c == 1, k + prev, v + prev, ld, chunk, HS, pw, decays, x);
        int ld_doa;
        const float *doa = decayed_rows(x, d_o + (size_t)t0 * C, C, L, HS, pw, 1, +1, decays, &ld_doa);
        cpu_gemm(false, true, L, HS, HS, 1.0f, (const act_t *)doa, ld_doa, (const act_t *)S, HS,
                 1.0f, (act_t *)(dq + (size_t)t0 * ld), ld);
      }
    }
  free(pw);
  free(pm);
  free(x);
  free(S);
}

void cpu_linear_attention_state_backward(act_t *dqkv, f32_t *dstate_in, const act_t *dout,
                                         const act_t *qkv, const f32_t *state_in,
                                         const f32_t *decay, int B, int T, int C, int NH) {
  const int HS = C / NH, ld = 3 * C;
  const state_scratch scratch = state_scratch_create(T, HS);
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const double lambda = head_decay(decay, h);
      const size_t head = (size_t)b * T * ld + (size_t)h * HS;
      const float *q = CF(qkv) + head;
      float *dq = F(dqkv) + head;
      const float *d_o = CF(dout) + (size_t)b * T * C + (size_t)h * HS;
      const float *S = CF(state_in) + ((size_t)b * NH + h) * HS * HS;
      float *dS = dstate_in ? F(dstate_in) + ((size_t)b * NH + h) * HS * HS : NULL;
      if (dS && T == 0) memset(dS, 0, (size_t)HS * HS * sizeof *dS);
      for (int t0 = 0; t0 < T; t0 += STATE_BLOCK) {
        const int L = min_int(STATE_BLOCK, T - t0);
        /* X = diag(λ^{t0+i+1}) dO rows */
        int ld_xa;
        const float *xa = state_block_rows(scratch, d_o, C, t0, L, HS, lambda, &ld_xa);
        /* dQ += X S_inᵀ,  dS_in (=, then +=) Qᵀ X */
        cpu_gemm(false, true, L, HS, HS, 1.0f, (const act_t *)xa, ld_xa, (const act_t *)S, HS, 1.0f,
                 (act_t *)(dq + (size_t)t0 * ld), ld);
        if (dS)
          cpu_gemm(true, false, HS, HS, L, 1.0f, (const act_t *)(q + (size_t)t0 * ld), ld,
                   (const act_t *)xa, ld_xa, t0 == 0 ? 0.0f : 1.0f, (act_t *)dS, HS);
      }
    }
  state_scratch_free(scratch);
}

void cpu_linear_attention_state_combine(f32_t *state, const f32_t *piece_state,
                                        const f32_t *decay, int n_tokens, int B, int NH, int HS) {
  float *s = F(state);
  const float *m = CF(piece_state);
  const size_t per_head = (size_t)HS * HS;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const float f = (float)pow(head_decay(decay, h), n_tokens);
      float *sh = s + ((size_t)b * NH + h) * per_head;
      const float *mh = m + ((size_t)b * NH + h) * per_head;
#pragma omp parallel for schedule(static)
      for (size_t e = 0; e < per_head; e++) sh[e] = f * sh[e] + mh[e];
    }
}

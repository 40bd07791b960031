/* test_kernels_sp — the CPU ops for linear attention, Llama-style blocks and
 * sequence parallelism: RMSNorm, SwiGLU, RoPE, block softmax attention with
 * its merge, chunkwise linear attention and its state ops.
 *
 * Three kinds of check:
 *   - Backwards against central finite differences of their own forward,
 *     as in test_kernels_cpu.c: L = Σ out·R, ‖g_fd − g‖/‖g_fd‖ ≤ 1e-3 with
 *     h = 1e-3 (fp32 forward rounding over 2h leaves ~1e-4 of noise; a wrong
 *     formula gives errors of order 1).
 *   - Forwards against plain loops in double: max|got − want| ≤ 1e-5·max|want|
 *     over each output tensor.
 *   - Decompositions against the whole computation (linear attention in
 *     pieces chained by state_combine; softmax attention over key blocks
 *     merged by log-sum-exp; chunk sizes against the quadratic form). Both
 *     sides are fp32 with the same terms summed in another order (chunk by
 *     chunk, piece by piece, block by block, through exp(lse) rescalings),
 *     so they differ by rounding only: a few ulps of the largest partial sum,
 *     ~6e-8 relative per operation growing ~√(terms summed): observed
 *     ≤ 2.2e-7 of the tensor's max at T ≤ 33 and ≤ 6.1e-7 at T = 300.
 *     Tolerance 1e-5·max|reference|: mutating the kernels (λ^i for λ^{i+1},
 *     a missing γ, a mask off by one) gives errors of 1e-2 to 0.6, and even
 *     P scaled by 1.0001 in the block backward (1e-4) is caught.
 * Inputs are random (never zeros), sizes are not powers of two.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "finite_difference.h"
#include "random_inputs.h"
#include "sequence_rows.h"
#include "testing.h"

static const backend *be;

static float *filled(size_t n, float value) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = value;
  return x;
}
#define IDS(p) ((const ids_t *)(p))

/* max|got − want| / max|want| */
static double rel_max_error_d(const float *got, const double *want, size_t n) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs(got[i] - want[i]));
    scale = fmax(scale, fabs(want[i]));
    if (!isfinite(got[i])) return INFINITY;
  }
  return worst / scale;
}
static double rel_max_error(const float *got, const float *want, size_t n) {
  double worst = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    worst = fmax(worst, fabs((double)got[i] - want[i]));
    scale = fmax(scale, fabs((double)want[i]));
    if (!isfinite(got[i])) return INFINITY;
  }
  return worst / scale;
}
/* the largest error of each family, for the summary */
static double worst_naive = 0, worst_pieces = 0, worst_blocks = 0, worst_forward = 0;

#define CHECK_REL(err, tol, worst_var, ...)                                 \
  do {                                                                      \
    double e_ = (err);                                                      \
    worst_var = fmax(worst_var, e_);                                        \
    CHECK(e_ <= (tol), __VA_ARGS__);                                        \
    if (!(e_ <= (tol))) fprintf(stderr, "      (error %.3e > %.1e)\n", e_, (double)(tol)); \
  } while (0)

/* ------------------------------------------------------------- RMSNorm */

typedef struct rms_ctx { float *x, *w, *rstd; int N, C; double eps; } rms_ctx;
static void rms_fwd(void *p, float *out) {
  rms_ctx *c = p;
  be->rmsnorm_forward(A(out), F32(c->rstd), CA(c->x), c->w ? CA(c->w) : NULL, c->N, c->C, c->eps);
}
/* weighted with eps 1e-5, then without weight and a large eps (0.3: the
 * reference's rstd differs from eps 1e-5's by ~10% on these rows, so a
 * kernel ignoring its eps fails) */
static void test_rmsnorm(void) {
  for (int weighted = 1; weighted >= 0; weighted--) {
    rms_ctx c = {.N = 6, .C = 13, .eps = weighted ? 1e-5 : 0.3};
    const size_t n = (size_t)c.N * c.C;
    c.x = random_array(n, -2, 2);
    c.w = weighted ? random_array((size_t)c.C, 0.5f, 1.5f) : NULL;
    c.rstd = malloc((size_t)c.N * 4);
    float *out = malloc(n * 4);
    double *want = malloc(n * sizeof *want);
    rms_fwd(&c, out);
    double worst_rstd = 0;
    for (int r = 0; r < c.N; r++) {
      double ss = 0;
      for (int k = 0; k < c.C; k++) ss += (double)c.x[r * c.C + k] * c.x[r * c.C + k];
      double rs = 1.0 / sqrt(ss / c.C + c.eps);
      worst_rstd = fmax(worst_rstd, fabs(c.rstd[r] - rs) / rs);
      for (int k = 0; k < c.C; k++) want[r * c.C + k] = c.x[r * c.C + k] * rs * (c.w ? c.w[k] : 1.0);
    }
    double err = rel_max_error_d(out, want, n);
    printf("  rmsnorm forward (%s weight) vs double: %.2e, rstd %.2e\n", weighted ? "with" : "no", err,
           worst_rstd);
    CHECK_REL(err, 1e-5, worst_forward, "rmsnorm forward vs double");
    CHECK(worst_rstd < 1e-6, "rmsnorm rstd vs double: %g", worst_rstd);
    float *R = random_array(n, -1, 1);
    float *dx0 = random_array(n, -1, 1), *dx = copy_of(dx0, n); /* residual gradient already there */
    float *dw0 = weighted ? random_array((size_t)c.C, -1, 1) : NULL;
    float *dw = weighted ? copy_of(dw0, (size_t)c.C) : NULL;
    be->rmsnorm_backward(A(dx), dw ? A(dw) : NULL, CA(R), CA(c.x), c.w ? CA(c.w) : NULL,
                         CF32(c.rstd), c.N, c.C);
    for (size_t i = 0; i < n; i++) dx[i] -= dx0[i]; /* what was added */
    CHECK_GRAD(fd_relative_error(rms_fwd, &c, c.x, n, R, n, dx),
               weighted ? "rmsnorm dinp (accumulated)" : "rmsnorm dinp, no weight (accumulated)");
    if (weighted) {
      for (int k = 0; k < c.C; k++) dw[k] -= dw0[k];
      CHECK_GRAD(fd_relative_error(rms_fwd, &c, c.w, (size_t)c.C, R, n, dw), "rmsnorm dweight (accumulated)");
    }
    free(c.x); free(c.w); free(c.rstd); free(out); free(want); free(R); free(dx0); free(dx);
    free(dw0); free(dw);
  }
}

/* -------------------------------------------------------------- SwiGLU */

typedef struct swiglu_ctx { float *x; int N, H; } swiglu_ctx;
static void swiglu_fwd(void *p, float *out) {
  swiglu_ctx *c = p;
  be->swiglu_forward(A(out), CA(c->x), c->N, c->H);
}
static void test_swiglu(void) {
  swiglu_ctx c = {.N = 5, .H = 7};
  const size_t n_in = (size_t)c.N * 2 * c.H, n_out = (size_t)c.N * c.H;
  c.x = random_array(n_in, -4, 4);
  float *out = malloc(n_out * 4);
  double *want = malloc(n_out * sizeof *want);
  swiglu_fwd(&c, out);
  for (int r = 0; r < c.N; r++)
    for (int j = 0; j < c.H; j++) {
      double g = c.x[r * 2 * c.H + j], u = c.x[r * 2 * c.H + c.H + j];
      want[r * c.H + j] = g / (1 + exp(-g)) * u;
    }
  double err = rel_max_error_d(out, want, n_out);
  printf("  swiglu forward vs double: %.2e\n", err);
  CHECK_REL(err, 1e-5, worst_forward, "swiglu forward vs double");
  float *R = random_array(n_out, -1, 1), *dx = filled(n_in, 5.5f);
  be->swiglu_backward(A(dx), CA(c.x), CA(R), c.N, c.H); /* overwrites the 5.5 garbage */
  CHECK_GRAD(fd_relative_error(swiglu_fwd, &c, c.x, n_in, R, n_out, dx), "swiglu dinp (overwrites)");
  float *inplace = copy_of(c.x, n_in); /* dinp aliasing inp */
  be->swiglu_backward(A(inplace), CA(inplace), CA(R), c.N, c.H);
  CHECK(memcmp(inplace, dx, n_in * 4) == 0, "swiglu backward may alias dinp and inp");
  free(c.x); free(out); free(want); free(R); free(dx); free(inplace);
}

/* ---------------------------------------------------------------- RoPE */

typedef struct rope_ctx { float *x; int32_t *pos; int N, C, NH; float theta; } rope_ctx;
static void rope_fwd(void *p, float *out) {
  rope_ctx *c = p;
  memcpy(out, c->x, (size_t)c->N * 3 * c->C * sizeof *out);
  be->rope_forward(A(out), IDS(c->pos), c->N, c->C, c->NH, c->theta);
}
static void test_rope(void) {
  int32_t pos[7] = {0, 5, 17, 3, 1000, 2, 0}; /* rows 0 and 6 at position 0 */
  rope_ctx c = {.N = 7, .C = 18, .NH = 3, .theta = 10000.0f, .pos = pos};
  const int HS = 6, half = 3;
  const size_t n = (size_t)c.N * 3 * c.C;
  c.x = random_array(n, -1, 1);
  float *out = malloc(n * 4);
  double *want = malloc(n * sizeof *want);
  rope_fwd(&c, out);
  for (size_t i = 0; i < n; i++) want[i] = c.x[i];
  for (int r = 0; r < c.N; r++)
    for (int head = 0; head < 2 * c.NH; head++) /* q and k heads */
      for (int i = 0; i < half; i++) {
        const size_t lo = (size_t)r * 3 * c.C + (size_t)head * HS + i, hi = lo + half;
        const double angle = pos[r] * pow(10000.0, -2.0 * i / HS);
        want[lo] = c.x[lo] * cos(angle) - c.x[hi] * sin(angle);
        want[hi] = c.x[hi] * cos(angle) + c.x[lo] * sin(angle);
      }
  double err = rel_max_error_d(out, want, n);
  printf("  rope forward vs double: %.2e\n", err);
  CHECK_REL(err, 1e-5, worst_forward, "rope forward vs double");
  int v_moved = 0, zero_moved = 0;
  for (int r = 0; r < c.N; r++)
    for (int k = 0; k < 3 * c.C; k++) {
      const size_t i = (size_t)r * 3 * c.C + k;
      if (k >= 2 * c.C) v_moved += out[i] != c.x[i];
      if (pos[r] == 0) zero_moved += out[i] != c.x[i];
    }
  CHECK(v_moved == 0, "rope leaves v untouched (%d values moved)", v_moved);
  CHECK(zero_moved == 0, "rope at position 0 is the identity (%d values moved)", zero_moved);
  float *back = copy_of(out, n);
  be->rope_backward(A(back), IDS(pos), c.N, c.C, c.NH, c.theta);
  double round_trip = rel_max_error(back, c.x, n);
  printf("  rope_backward(rope_forward(x)) vs x: %.2e\n", round_trip);
  CHECK(round_trip < 1e-6, "rope_backward(rope_forward(x)) = x: %g", round_trip);
  float *R = random_array(n, -1, 1), *dx = copy_of(R, n);
  be->rope_backward(A(dx), IDS(pos), c.N, c.C, c.NH, c.theta);
  CHECK_GRAD(fd_relative_error(rope_fwd, &c, c.x, n, R, n, dx), "rope dqkv (in place)");
  free(c.x); free(out); free(want); free(back); free(R); free(dx);
}

/* ------------------------------------------------- attention_merge alone */

static void test_attention_merge(void) {
  /* B = 1, NH = 2, HS = 3, Tq = 4; each (row, head) has 9 scores s_j and
   * values v_j; block a holds keys [0, 4), block b keys [4, 9). Rows 0–1:
   * both blocks non-empty; row 2: block b empty (lse −∞); row 3: the
   * accumulator empty (lse −∞, out garbage), head 1 of row 3 both empty. */
  const int Tq = 4, NH = 2, HS = 3, C = 6, n_keys = 9, split = 4;
  float out_a[4 * 6], lse_a[2 * 4], out_b[4 * 6], lse_b[2 * 4];
  double out_w[4 * 6], lse_w[2 * 4];
  for (int h = 0; h < NH; h++)
    for (int i = 0; i < Tq; i++) {
      double s[9], v[9][3];
      for (int j = 0; j < n_keys; j++) {
        s[j] = 6 * uniform() - 3;
        for (int e = 0; e < HS; e++) v[j][e] = 2 * uniform() - 1;
      }
      const bool a_empty = i == 3, b_empty = i == 2 || (i == 3 && h == 1);
      double sum[3] = {0, 0, 0}, acc[3][3] = {{0}};
      for (int j = 0; j < n_keys; j++) {
        const int part = j < split ? 0 : 1;
        if ((part == 0 && a_empty) || (part == 1 && b_empty)) continue;
        sum[part] += exp(s[j]);
        sum[2] += exp(s[j]);
        for (int e = 0; e < HS; e++) acc[part][e] += exp(s[j]) * v[j][e], acc[2][e] += exp(s[j]) * v[j][e];
      }
      const int r = h * Tq + i, o = i * C + h * HS;
      lse_a[r] = a_empty ? -INFINITY : (float)log(sum[0]);
      lse_b[r] = b_empty ? -INFINITY : (float)log(sum[1]);
      lse_w[r] = sum[2] > 0 ? log(sum[2]) : -INFINITY;
      for (int e = 0; e < HS; e++) {
        out_a[o + e] = a_empty ? 1e30f : (float)(acc[0][e] / sum[0]); /* garbage where empty */
        out_b[o + e] = b_empty ? 0.0f : (float)(acc[1][e] / sum[1]);
        out_w[o + e] = sum[2] > 0 ? acc[2][e] / sum[2] : 1e30;
      }
    }
  float keep_row2[6];
  memcpy(keep_row2, out_a + 2 * C, sizeof keep_row2);
  be->attention_merge(F32(out_a), F32(lse_a), CF32(out_b), CF32(lse_b), 1, Tq, C, NH);
  double worst_out = 0, worst_lse = 0;
  for (int r = 0; r < NH * Tq; r++) {
    if (lse_w[r] == -INFINITY) continue;
    worst_lse = fmax(worst_lse, fabs(lse_a[r] - lse_w[r]));
  }
  for (int i = 0; i < 4 * 6; i++)
    if (out_w[i] != 1e30) worst_out = fmax(worst_out, fabs(out_a[i] - out_w[i]));
  printf("  attention_merge of two halves vs the whole softmax: out %.2e, lse %.2e\n", worst_out, worst_lse);
  CHECK(worst_out < 1e-6 && worst_lse < 1e-6, "merging two halves gives the whole softmax (%g, %g)",
        worst_out, worst_lse);
  CHECK(memcmp(keep_row2, out_a + 2 * C, sizeof keep_row2) == 0 && lse_a[2] == (float)lse_w[2] &&
            lse_a[Tq + 2] == (float)lse_w[Tq + 2],
        "merging an empty block (lse_b = -inf) leaves the row as it is");
  CHECK(lse_a[3] == lse_b[3] && memcmp(out_a + 3 * C, out_b + 3 * C, 3 * 4) == 0,
        "an empty accumulator (lse = -inf, garbage out) takes the block's row");
  CHECK(lse_a[Tq + 3] == -INFINITY, "both empty: lse stays -inf");
}

/* --------------------------------------------- block softmax attention */

typedef struct blk_ctx { float *q, *kv, *lse; int B, Tq, Tk, C, NH, ld_q, q_pos0, k_pos0; } blk_ctx;
static void blk_fwd(void *p, float *out) {
  blk_ctx *c = p;
  be->attention_block_forward(F32(out), F32(c->lse), CA(c->q), CA(c->kv), CA(c->kv + c->C), c->ld_q,
                              2 * c->C, c->B, c->Tq, c->Tk, c->C, c->NH, c->q_pos0, c->k_pos0);
}
/* one block on its own (its lse is the global one): finite differences */
static void test_attention_block_fd(void) {
  /* queries at positions 3..8, keys at 5..11: rows 0 and 1 see no key,
   * row 2 one key, row 5 four; q rows padded (ld C + 2) */
  blk_ctx c = {.B = 2, .Tq = 6, .Tk = 7, .C = 6, .NH = 2, .q_pos0 = 3, .k_pos0 = 5};
  c.ld_q = c.C + 2;
  const size_t n_q = (size_t)c.B * c.Tq * c.ld_q, n_kv = (size_t)c.B * c.Tk * 2 * c.C;
  const size_t n_out = (size_t)c.B * c.Tq * c.C;
  c.q = random_array(n_q, -1.5f, 1.5f);
  c.kv = random_array(n_kv, -1.5f, 1.5f);
  c.lse = malloc((size_t)c.B * c.NH * c.Tq * 4);
  float *out = malloc(n_out * 4), *R = random_array(n_out, -1, 1);
  blk_fwd(&c, out);
  int bad_masked = 0;
  for (int b = 0; b < c.B; b++)
    for (int h = 0; h < c.NH; h++)
      for (int i = 0; i < 2; i++) {
        bad_masked += c.lse[((size_t)b * c.NH + h) * c.Tq + i] != -INFINITY;
        for (int e = 0; e < 3; e++) bad_masked += out[((size_t)b * c.Tq + i) * c.C + h * 3 + e] != 0.0f;
      }
  CHECK(bad_masked == 0, "rows with no visible key: lse = -inf and out = 0 (%d wrong)", bad_masked);
  float *delta = malloc((size_t)c.B * c.NH * c.Tq * 4);
  be->attention_delta(F32(delta), CA(R), CA(out), c.B, c.Tq, c.C, c.NH);
  float *dq0 = random_array(n_q, -1, 1), *dq = copy_of(dq0, n_q);
  float *dkv0 = random_array(n_kv, -1, 1), *dkv = copy_of(dkv0, n_kv);
  be->attention_block_backward(A(dq), A(dkv), A(dkv + c.C), c.ld_q, 2 * c.C, CA(R), CF32(delta),
                               CF32(c.lse), CA(c.q), CA(c.kv), CA(c.kv + c.C), c.ld_q, 2 * c.C, c.B,
                               c.Tq, c.Tk, c.C, c.NH, c.q_pos0, c.k_pos0);
  for (size_t i = 0; i < n_q; i++) dq[i] -= dq0[i]; /* what was added (padding: 0) */
  for (size_t i = 0; i < n_kv; i++) dkv[i] -= dkv0[i];
  CHECK_GRAD(fd_relative_error(blk_fwd, &c, c.q, n_q, R, n_out, dq),
             "attention_block dq (accumulated, offsets, masked rows)");
  CHECK_GRAD(fd_relative_error(blk_fwd, &c, c.kv, n_kv, R, n_out, dkv),
             "attention_block dk, dv (accumulated, packed K/V)");
  free(c.q); free(c.kv); free(c.lse); free(out); free(R); free(delta); free(dq0); free(dq);
  free(dkv0); free(dkv);
}

/* The reference the block cases are measured against: attention_forward's
 * out and attention_backward's dqkv on the whole sequence, for random qkv
 * and dO (R). */
typedef struct whole_attention {
  int B, T, C, NH;
  float *qkv, *R, *out, *dqkv;
} whole_attention;
static whole_attention whole_attention_run(int B, int T, int C, int NH) {
  const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
  whole_attention w = {.B = B, .T = T, .C = C, .NH = NH};
  w.qkv = random_array(n_qkv, -1.5f, 1.5f);
  w.R = random_array(n_out, -1, 1);
  w.out = malloc(n_out * 4);
  w.dqkv = malloc(n_qkv * 4);
  float *saved = malloc(be->attention_saved_elems(B, T, NH) * 4);
  be->attention_forward(A(w.out), F32(saved), CA(w.qkv), B, T, C, NH);
  be->attention_backward(A(w.dqkv), CA(w.R), CA(w.out), CA(w.qkv), CF32(saved), B, T, C, NH);
  free(saved);
  return w;
}
static void whole_attention_free(whole_attention w) { free(w.qkv); free(w.R); free(w.out); free(w.dqkv); }

/* Whole-sequence attention (attention_forward/backward) against blocks: the
 * queries cut in pieces, the keys in blocks, every (piece, block) pair run
 * and merged. */
static void block_partition_case(const whole_attention *w, int n_pieces, const int *piece_len, int n_blocks,
                                 const int *block_len, bool reverse_merge, const char *what) {
  const int B = w->B, T = w->T, C = w->C, NH = w->NH;
  const float *qkv = w->qkv, *R = w->R;
  const size_t n_qkv = (size_t)B * T * 3 * C;
  float *out_all = malloc((size_t)B * T * C * 4), *dqkv = calloc(n_qkv, 4);
  /* K/V blocks packed [B, Tk, 2C], and their gradients */
  float *kv[4], *dkv[4];
  int k0[4];
  for (int u = 0, t = 0; u < n_blocks; t += block_len[u], u++) {
    k0[u] = t;
    kv[u] = malloc((size_t)B * block_len[u] * 2 * C * 4);
    dkv[u] = calloc((size_t)B * block_len[u] * 2 * C, 4);
    take_columns(kv[u], qkv, B, T, t, block_len[u], 3 * C, C, 2 * C);
  }
  int n_masked_blocks = 0;
  for (int p = 0, q0 = 0; p < n_pieces; q0 += piece_len[p], p++) {
    const int Tq = piece_len[p];
    const size_t n_rows = (size_t)B * Tq;
    /* the piece's queries packed [B, Tq, 3C] (ld 3C), its dO [B, Tq, C] */
    float *qp = malloc(n_rows * 3 * C * 4), *Rp = malloc(n_rows * C * 4);
    take_rows(qp, qkv, B, T, q0, Tq, 3 * C);
    take_rows(Rp, R, B, T, q0, Tq, C);
    float *acc = filled(n_rows * C, NAN), *lse = filled((size_t)B * NH * Tq, -INFINITY);
    float *ob = malloc(n_rows * C * 4), *lb = malloc((size_t)B * NH * Tq * 4);
    for (int s = 0; s < n_blocks; s++) {
      const int u = reverse_merge ? n_blocks - 1 - s : s;
      be->attention_block_forward(F32(ob), F32(lb), CA(qp), CA(kv[u]), CA(kv[u] + C), 3 * C, 2 * C, B,
                                  Tq, block_len[u], C, NH, q0, k0[u]);
      bool all_masked = true;
      for (size_t i = 0; i < (size_t)B * NH * Tq; i++) all_masked &= lb[i] == -INFINITY;
      n_masked_blocks += all_masked;
      be->attention_merge(F32(acc), F32(lse), CF32(ob), CF32(lb), B, Tq, C, NH);
    }
    put_rows(out_all, acc, B, T, q0, Tq, C);
    /* backward: delta from the merged output, then every block with the merged lse */
    float *delta = malloc((size_t)B * NH * Tq * 4), *dq = calloc(n_rows * C, 4);
    be->attention_delta(F32(delta), CA(Rp), CA(acc), B, Tq, C, NH);
    for (int u = 0; u < n_blocks; u++)
      be->attention_block_backward(A(dq), A(dkv[u]), A(dkv[u] + C), C, 2 * C, CA(Rp), CF32(delta),
                                   CF32(lse), CA(qp), CA(kv[u]), CA(kv[u] + C), 3 * C, 2 * C, B, Tq,
                                   block_len[u], C, NH, q0, k0[u]);
    put_columns(dqkv, dq, B, T, q0, Tq, 3 * C, 0, C);
    free(qp); free(Rp); free(acc); free(lse); free(ob); free(lb); free(delta); free(dq);
  }
  for (int u = 0; u < n_blocks; u++) {
    put_columns(dqkv, dkv[u], B, T, k0[u], block_len[u], 3 * C, C, 2 * C);
    free(kv[u]); free(dkv[u]);
  }
  const double e_out = rel_max_error(out_all, w->out, (size_t)B * T * C);
  const double e_grad = rel_max_error(dqkv, w->dqkv, n_qkv);
  printf("  %-52s out %.2e, dqkv %.2e%s\n", what, e_out, e_grad,
         n_masked_blocks ? " (with fully masked blocks)" : "");
  CHECK_REL(e_out, 1e-5, worst_blocks, "%s: merged block forward vs attention_forward", what);
  CHECK_REL(e_grad, 1e-5, worst_blocks, "%s: summed block backward vs attention_backward", what);
  free(out_all); free(dqkv);
}

static void test_attention_blocks(void) {
  const whole_attention w = whole_attention_run(2, 19, 15, 3); /* B, T, C, NH */
  const int whole[1] = {19}, two[2] = {8, 11}, three[3] = {5, 9, 5};
  block_partition_case(&w, 1, whole, 1, whole, false, "keys in 1 block");
  block_partition_case(&w, 1, whole, 2, two, false, "keys in 2 blocks (8, 11)");
  block_partition_case(&w, 1, whole, 3, three, true, "keys in 3 blocks (5, 9, 5), merged in reverse");
  /* ring-attention shape: queries in pieces too, every pair (piece 0 with
   * the last key block is fully masked; others partly) */
  const int pieces[3] = {6, 7, 6}, blocks[3] = {4, 9, 6};
  block_partition_case(&w, 3, pieces, 3, blocks, false, "queries in 3 pieces x keys in 3 blocks");
  const int zigzag[4] = {3, 2, 9, 5}; /* uneven, a 2-row piece */
  block_partition_case(&w, 4, zigzag, 2, two, true, "queries in 4 pieces x keys in 2 blocks");
  whole_attention_free(w);
  /* longer than the kernels' 128-row query tiles: tiles of one piece see
   * different numbers of keys, and a tile is fully masked against a block */
  const whole_attention w300 = whole_attention_run(1, 300, 10, 2);
  const int long_pieces[2] = {140, 160}, long_blocks[3] = {170, 1, 129};
  block_partition_case(&w300, 2, long_pieces, 3, long_blocks, false, "T=300: queries in 2 pieces x keys in 3 blocks");
  whole_attention_free(w300);
}

/* --------------------------------------------------- linear attention */

/* λ_h = exp(−2^(−8(h+1)/NH)): the ALiBi / Lightning slopes */
static void slopes(float *lambda, int NH) {
  for (int h = 0; h < NH; h++) lambda[h] = (float)exp(-pow(2.0, -8.0 * (h + 1) / NH));
}

/* O = ((Q Kᵀ) ⊙ M) V, M_ij = λ^{i−j}[i ≥ j], and S = Σ_j λ^{T−1−j} k_jᵀ v_j, in double */
static void naive_linear_attention(double *out, double *state, const float *qkv,
                                   const float *decay, int B, int T, int C, int NH) {
  const int HS = C / NH, ld = 3 * C;
  for (int b = 0; b < B; b++)
    for (int h = 0; h < NH; h++) {
      const double lambda = decay ? decay[h] : 1.0;
      const float *q = qkv + (size_t)b * T * ld + (size_t)h * HS, *k = q + C, *v = q + 2 * C;
      for (int i = 0; i < T; i++) {
        double *o = out + ((size_t)b * T + i) * C + (size_t)h * HS;
        for (int e = 0; e < HS; e++) o[e] = 0;
        for (int j = 0; j <= i; j++) {
          double s = 0;
          for (int d = 0; d < HS; d++) s += (double)q[(size_t)i * ld + d] * k[(size_t)j * ld + d];
          s *= pow(lambda, i - j);
          for (int e = 0; e < HS; e++) o[e] += s * v[(size_t)j * ld + e];
        }
      }
      double *S = state + ((size_t)b * NH + h) * HS * HS;
      for (int d = 0; d < HS; d++)
        for (int e = 0; e < HS; e++) {
          double s = 0;
          for (int j = 0; j < T; j++)
            s += pow(lambda, T - 1 - j) * k[(size_t)j * ld + d] * v[(size_t)j * ld + e];
          S[d * HS + e] = s;
        }
    }
}

static void test_linear_attention_naive(void) {
  const struct { int B, T, NH, HS, chunks[6]; } cases[] = {
      {2, 21, 3, 5, {1, 7, 3, 5, 8, 21}},   /* 7 and 3 divide 21; 5, 8 do not */
      {1, 30, 2, 6, {1, 6, 4, 7, 30, 64}},  /* 64 ≥ T: one chunk */
      {3, 13, 5, 3, {1, 13, 2, 6, 9, 100}},
      {1, 300, 2, 5, {1, 64, 50, 7, 299, 300}}, /* many chunks, a 1-row last chunk */
  };
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
    const int B = cases[ci].B, T = cases[ci].T, NH = cases[ci].NH, HS = cases[ci].HS, C = NH * HS;
    const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_state = (size_t)B * NH * HS * HS;
    float *qkv = random_array(n_qkv, -1, 1), *lambda = malloc((size_t)NH * 4);
    slopes(lambda, NH);
    double *want = malloc(n_out * sizeof *want), *want_state = malloc(n_state * sizeof *want_state);
    for (int with_decay = 0; with_decay < 2; with_decay++) {
      const float *decay = with_decay ? lambda : NULL;
      naive_linear_attention(want, want_state, qkv, decay, B, T, C, NH);
      double worst_out = 0, worst_state = 0;
      for (int s = 0; s < 6; s++) {
        const int chunk = cases[ci].chunks[s];
        float *out = filled(n_out, NAN), *state = filled(n_state, NAN);
        be->linear_attention_forward(A(out), F32(state), CA(qkv), decay ? CF32(decay) : NULL, B, T, C,
                                     NH, chunk);
        const double e_out = rel_max_error_d(out, want, n_out);
        const double e_state = rel_max_error_d(state, want_state, n_state);
        worst_out = fmax(worst_out, e_out);
        worst_state = fmax(worst_state, e_state);
        CHECK_REL(e_out, 1e-5, worst_naive, "linear attention B=%d T=%d NH=%d HS=%d %s chunk %d: out vs naive",
                  B, T, NH, HS, decay ? "slopes" : "no decay", chunk);
        CHECK_REL(e_state, 1e-5, worst_naive, "linear attention B=%d T=%d NH=%d HS=%d %s chunk %d: state vs naive",
                  B, T, NH, HS, decay ? "slopes" : "no decay", chunk);
        if (s == 0) { /* state may be NULL */
          float *out2 = filled(n_out, NAN);
          be->linear_attention_forward(A(out2), NULL, CA(qkv), decay ? CF32(decay) : NULL, B, T, C, NH,
                                       chunk + 3);
          CHECK_REL(rel_max_error_d(out2, want, n_out), 1e-5, worst_naive, "linear attention without state");
          free(out2);
        }
        free(out); free(state);
      }
      printf("  linear attention B=%d T=%d NH=%d HS=%d %-9s chunks %d,%d,%d,%d,%d,%d vs naive: "
             "out %.2e, state %.2e\n", B, T, NH, HS, decay ? "slopes" : "no decay",
             cases[ci].chunks[0], cases[ci].chunks[1], cases[ci].chunks[2], cases[ci].chunks[3],
             cases[ci].chunks[4], cases[ci].chunks[5], worst_out, worst_state);
    }
    free(qkv); free(lambda); free(want); free(want_state);
  }
}

/* forward with the final state: outputs [out | state] */
typedef struct la_ctx { float *qkv, *decay, *state_in; int B, T, C, NH, chunk; bool with_state; } la_ctx;
static void la_fwd(void *p, float *out) {
  la_ctx *c = p;
  const size_t n_out = (size_t)c->B * c->T * c->C;
  be->linear_attention_forward(A(out), c->with_state ? F32(out + n_out) : NULL, CA(c->qkv),
                               c->decay ? CF32(c->decay) : NULL, c->B, c->T, c->C, c->NH, c->chunk);
}
static void la_state_fwd(void *p, float *out) { /* out = 0 + diag(λ^{i+1}) Q S_in */
  la_ctx *c = p;
  memset(out, 0, (size_t)c->B * c->T * c->C * sizeof *out);
  be->linear_attention_state_forward(A(out), CA(c->qkv), CF32(c->state_in),
                                     c->decay ? CF32(c->decay) : NULL, c->B, c->T, c->C, c->NH);
}

static void test_linear_attention_fd(void) {
  /* zero-start piece: gradient through out and through the final state */
  {
    la_ctx c = {.B = 2, .T = 11, .C = 6, .NH = 2, .chunk = 4, .with_state = true};
    const int HS = 3;
    const size_t n_qkv = (size_t)c.B * c.T * 3 * c.C, n_out = (size_t)c.B * c.T * c.C;
    const size_t n_state = (size_t)c.B * c.NH * HS * HS;
    c.qkv = random_array(n_qkv, -1, 1);
    c.decay = malloc((size_t)c.NH * 4);
    slopes(c.decay, c.NH);
    float *R = random_array(n_out + n_state, -1, 1), *dqkv = filled(n_qkv, 7.5f);
    be->linear_attention_backward(A(dqkv), CA(R), CA(c.qkv), CF32(R + n_out), CF32(c.decay), c.B, c.T,
                                  c.C, c.NH, c.chunk);
    CHECK_GRAD(fd_relative_error(la_fwd, &c, c.qkv, n_qkv, R, n_out + n_state, dqkv),
               "linear_attention dqkv, slopes, chunk 4 of T 11, with dstate");
    /* without dstate, without decay, chunk 3 */
    c.with_state = false;
    c.chunk = 3;
    float *decay = c.decay;
    c.decay = NULL;
    be->linear_attention_backward(A(dqkv), CA(R), CA(c.qkv), NULL, NULL, c.B, c.T, c.C, c.NH, c.chunk);
    CHECK_GRAD(fd_relative_error(la_fwd, &c, c.qkv, n_qkv, R, n_out, dqkv),
               "linear_attention dqkv, no decay, chunk 3, no dstate");
    c.decay = decay;
    c.chunk = 20; /* one chunk longer than T */
    be->linear_attention_backward(A(dqkv), CA(R), CA(c.qkv), NULL, CF32(c.decay), c.B, c.T, c.C, c.NH, c.chunk);
    CHECK_GRAD(fd_relative_error(la_fwd, &c, c.qkv, n_qkv, R, n_out, dqkv),
               "linear_attention dqkv, slopes, chunk 20 > T, no dstate");
    free(c.qkv); free(c.decay); free(R); free(dqkv);
  }
  /* the state entering a piece: T > 256 so the row blocks of the state ops
   * (and their λ^{t0+i+1}) are used; mild decays so late rows still count */
  {
    la_ctx c = {.B = 2, .T = 263, .C = 6, .NH = 2};
    const int HS = 3;
    const size_t n_qkv = (size_t)c.B * c.T * 3 * c.C, n_out = (size_t)c.B * c.T * c.C;
    const size_t n_state = (size_t)c.B * c.NH * HS * HS;
    c.qkv = random_array(n_qkv, -1, 1);
    c.state_in = random_array(n_state, -1, 1);
    float lambda[2] = {0.999f, 0.993f};
    c.decay = lambda;
    /* forward vs double */
    float *out = malloc(n_out * 4);
    double *want = malloc(n_out * sizeof *want);
    la_state_fwd(&c, out);
    for (int b = 0; b < c.B; b++)
      for (int h = 0; h < c.NH; h++)
        for (int i = 0; i < c.T; i++)
          for (int e = 0; e < HS; e++) {
            double s = 0;
            for (int d = 0; d < HS; d++)
              s += (double)c.qkv[((size_t)b * c.T + i) * 3 * c.C + h * HS + d] *
                   c.state_in[(((size_t)b * c.NH + h) * HS + d) * HS + e];
            want[((size_t)b * c.T + i) * c.C + h * HS + e] = pow(lambda[h], i + 1) * s;
          }
    const double e_fwd = rel_max_error_d(out, want, n_out);
    printf("  linear_attention_state_forward T=263 vs double: %.2e\n", e_fwd);
    CHECK_REL(e_fwd, 1e-5, worst_forward, "linear_attention_state_forward vs double");
    float *R = random_array(n_out, -1, 1);
    float *dqkv0 = random_array(n_qkv, -1, 1), *dqkv = copy_of(dqkv0, n_qkv);
    float *dstate = filled(n_state, 9.5f);
    be->linear_attention_state_backward(A(dqkv), F32(dstate), CA(R), CA(c.qkv), CF32(c.state_in),
                                        CF32(c.decay), c.B, c.T, c.C, c.NH);
    int kv_touched = 0;
    for (size_t r = 0; r < (size_t)c.B * c.T; r++)
      for (int k = c.C; k < 3 * c.C; k++) kv_touched += dqkv[r * 3 * c.C + k] != dqkv0[r * 3 * c.C + k];
    CHECK(kv_touched == 0, "state_backward leaves the k and v parts of dqkv alone (%d moved)", kv_touched);
    for (size_t i = 0; i < n_qkv; i++) dqkv[i] -= dqkv0[i]; /* what was added: dQ only */
    CHECK_GRAD(fd_relative_error(la_state_fwd, &c, c.qkv, n_qkv, R, n_out, dqkv),
               "linear_attention_state_backward dQ (accumulated), T 263");
    CHECK_GRAD(fd_relative_error(la_state_fwd, &c, c.state_in, n_state, R, n_out, dstate),
               "linear_attention_state_backward dstate_in (overwrites)");
    free(c.qkv); free(c.state_in); free(out); free(want); free(R); free(dqkv0); free(dqkv); free(dstate);
  }
}

static void test_state_combine(void) {
  const int B = 2, NH = 3, HS = 5, n_tokens = 37;
  const size_t n = (size_t)B * NH * HS * HS;
  float *lambda = malloc(NH * 4), *s = random_array(n, -1, 1), *m = random_array(n, -1, 1);
  slopes(lambda, NH);
  float *s1 = copy_of(s, n), *s2 = copy_of(s, n);
  be->linear_attention_state_combine(F32(s1), CF32(m), CF32(lambda), n_tokens, B, NH, HS);
  be->linear_attention_state_combine(F32(s2), CF32(m), NULL, n_tokens, B, NH, HS);
  double worst = 0;
  for (size_t i = 0; i < n; i++) {
    const int h = (int)(i / (HS * HS) % NH);
    worst = fmax(worst, fabs(s1[i] - (pow(lambda[h], n_tokens) * s[i] + m[i])));
    worst = fmax(worst, fabs(s2[i] - ((double)s[i] + m[i])));
  }
  printf("  linear_attention_state_combine vs formula: %.2e\n", worst);
  CHECK(worst < 1e-6, "state_combine: state = lambda^n state + piece_state (%g)", worst);
  free(lambda); free(s); free(m); free(s1); free(s2);
}

/* A sequence cut in pieces (sequence parallelism): forward on each piece,
 * states chained with state_combine, state_forward added; backward from the
 * last piece down, dstate chained with the same combine. Equals the whole. */
static void linear_pieces_case(int B, int T, int NH, int HS, int chunk, const float *decay,
                               int n_pieces, const int *piece_len) {
  const int C = NH * HS;
  const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_state = (size_t)B * NH * HS * HS;
  float *qkv = random_array(n_qkv, -1, 1), *R = random_array(n_out, -1, 1), *G = random_array(n_state, -1, 1);
  const f32_t *dec = decay ? CF32(decay) : NULL;
  /* whole sequence */
  float *out_w = malloc(n_out * 4), *state_w = malloc(n_state * 4), *dqkv_w = malloc(n_qkv * 4);
  be->linear_attention_forward(A(out_w), F32(state_w), CA(qkv), dec, B, T, C, NH, chunk);
  be->linear_attention_backward(A(dqkv_w), CA(R), CA(qkv), CF32(G), dec, B, T, C, NH, chunk);
  /* pieces */
  float *out = malloc(n_out * 4), *dqkv = malloc(n_qkv * 4);
  float *s_in[4], *qp[4], *Rp[4];
  float *S = calloc(n_state, 4), *M = malloc(n_state * 4);
  int t0[4];
  for (int p = 0, t = 0; p < n_pieces; t += piece_len[p], p++) {
    const int n = piece_len[p];
    t0[p] = t;
    qp[p] = malloc((size_t)B * n * 3 * C * 4);
    Rp[p] = malloc((size_t)B * n * C * 4);
    take_rows(qp[p], qkv, B, T, t, n, 3 * C);
    take_rows(Rp[p], R, B, T, t, n, C);
    float *op = malloc((size_t)B * n * C * 4);
    be->linear_attention_forward(A(op), F32(M), CA(qp[p]), dec, B, n, C, NH, chunk);
    s_in[p] = copy_of(S, n_state); /* the state entering piece p */
    if (p > 0) be->linear_attention_state_forward(A(op), CA(qp[p]), CF32(s_in[p]), dec, B, n, C, NH);
    be->linear_attention_state_combine(F32(S), CF32(M), dec, n, B, NH, HS);
    put_rows(out, op, B, T, t, n, C);
    free(op);
  }
  float *dS = copy_of(G, n_state), *Dl = malloc(n_state * 4);
  for (int p = n_pieces - 1; p >= 0; p--) {
    const int n = piece_len[p];
    float *dp = malloc((size_t)B * n * 3 * C * 4);
    be->linear_attention_backward(A(dp), CA(Rp[p]), CA(qp[p]), CF32(dS), dec, B, n, C, NH, chunk);
    if (p > 0) {
      be->linear_attention_state_backward(A(dp), F32(Dl), CA(Rp[p]), CA(qp[p]), CF32(s_in[p]), dec, B, n, C, NH);
      be->linear_attention_state_combine(F32(dS), CF32(Dl), dec, n, B, NH, HS); /* G_{p−1} */
    }
    put_rows(dqkv, dp, B, T, t0[p], n, 3 * C);
    free(dp);
  }
  const double e_out = rel_max_error(out, out_w, n_out), e_state = rel_max_error(S, state_w, n_state);
  const double e_grad = rel_max_error(dqkv, dqkv_w, n_qkv);
  char what[160];
  int len = snprintf(what, sizeof what, "B=%d T=%d NH=%d HS=%d chunk %d %s, pieces", B, T, NH, HS, chunk,
                     decay ? "slopes" : "no decay");
  for (int p = 0; p < n_pieces; p++) len += snprintf(what + len, sizeof what - len, " %d", piece_len[p]);
  printf("  linear attention %-48s out %.2e, state %.2e, dqkv %.2e\n", what, e_out, e_state, e_grad);
  CHECK_REL(e_out, 1e-5, worst_pieces, "%s: piece-wise forward vs whole", what);
  CHECK_REL(e_state, 1e-5, worst_pieces, "%s: chained final state vs whole", what);
  CHECK_REL(e_grad, 1e-5, worst_pieces, "%s: piece-wise backward vs whole", what);
  for (int p = 0; p < n_pieces; p++) free(s_in[p]), free(qp[p]), free(Rp[p]);
  free(qkv); free(R); free(G); free(out_w); free(state_w); free(dqkv_w); free(out); free(dqkv);
  free(S); free(M); free(dS); free(Dl);
}

static void test_linear_attention_pieces(void) {
  float lambda[4];
  slopes(lambda, 3);
  const int two[2] = {13, 16}, three[3] = {7, 12, 10}, three_b[3] = {11, 5, 17};
  for (int with_decay = 0; with_decay < 2; with_decay++) {
    const float *decay = with_decay ? lambda : NULL;
    linear_pieces_case(2, 29, 3, 5, 4, decay, 2, two);
    linear_pieces_case(2, 29, 3, 5, 4, decay, 3, three);
    linear_pieces_case(1, 33, 3, 6, 5, decay, 3, three_b);
  }
}

int main(void) {
  random_seed(0x5EED5EED12345678ULL);
  be = backend_cpu();
  test_rmsnorm();
  test_swiglu();
  test_rope();
  test_attention_merge();
  test_attention_block_fd();
  test_attention_blocks();
  test_linear_attention_naive();
  test_linear_attention_fd();
  test_state_combine();
  test_linear_attention_pieces();
  printf("  largest errors: forwards vs double %.2e, chunkwise vs naive %.2e, pieces vs whole %.2e, "
         "blocks vs whole %.2e\n", worst_forward, worst_naive, worst_pieces, worst_blocks);
  return test_summary("test_kernels_sp");
}

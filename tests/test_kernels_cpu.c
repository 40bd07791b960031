/* test_kernels_cpu — every CPU op against an independent reference.
 *
 * Backwards are checked against central finite differences of their own
 * forward: with a fixed random R, the objective L = Σ out·R (summed in
 * double) has dL/dout = R, so the backward fed R must give dL/dinput.
 * Inputs are random (never zeros) with sizes that are not powers of two.
 *
 * Tolerance: ‖g_fd − g‖/‖g‖ ≤ 1e-3 over each whole gradient, h = 1e-3.
 * fp32 forward rounding (~6e-8 relative per value, summed over the outputs)
 * divided by 2h leaves ~1e-4 of relative noise, and the h² truncation term
 * is smaller (observed: 1.5e-5 to 1.7e-4); 1e-3 keeps a margin while any wrong formula (missing term,
 * transposed product, wrong scale) gives errors of order 1.
 * Forwards are checked against plain loops in double (1e-5 relative).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend.h"
#include "cpu/cpu_ops.h"
#include "finite_difference.h"
#include "random_inputs.h"
#include "testing.h"

static const backend *be;

/* ---------------------------------------------------------------- gemm */

static void test_gemm(void) {
  const int M = 7, N = 5, K = 6, pad = 3;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      const int a_rows = ta ? K : M, a_cols = ta ? M : K, lda = a_cols + pad;
      const int b_rows = tb ? N : K, b_cols = tb ? K : N, ldb = b_cols + pad, ldc = N + pad;
      float *a = random_array((size_t)a_rows * lda, -1, 1), *b = random_array((size_t)b_rows * ldb, -1, 1);
      float *c = random_array((size_t)M * ldc, -1, 1), *c0 = copy_of(c, (size_t)M * ldc);
      be->gemm(ta, tb, M, N, K, 0.5f, CA(a), lda, CA(b), ldb, 2.0f, A(c), ldc);
      double worst = 0;
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
          double s = 0;
          for (int k = 0; k < K; k++)
            s += (double)(ta ? a[k * lda + i] : a[i * lda + k]) * (tb ? b[j * ldb + k] : b[k * ldb + j]);
          double want = 0.5 * s + 2.0 * c0[i * ldc + j];
          worst = fmax(worst, fabs(c[i * ldc + j] - want));
        }
      CHECK(worst < 1e-5, "gemm trans_a=%d trans_b=%d: max error %g", ta, tb, worst);
      free(a); free(b); free(c); free(c0);
    }
}

/* The GEMM of builds without OpenBLAS, whatever this build uses: shapes
 * that cross its column blocks (512) and its 8-wide partial sums, every
 * transposition, beta 0 over a C full of NaN (BLAS ignores C then) and
 * beta ≠ 0. Each element against a double sum; the bound is fp32 rounding
 * of a K-term sum, K·2⁻²⁴·Σ|a·b| (with K ≤ 700: ≤ 4.2e-5 of Σ|a·b|), so
 * 1e-4 of Σ|a·b| leaves a margin while a missed term or a wrong index
 * gives errors of order |a·b| itself. Twice, to see the same bits. */
static void test_gemm_builtin(void) {
  const int shapes[][3] = {{7, 5, 6}, {37, 53, 70}, {130, 600, 9}, {3, 1030, 700}, {1, 1, 1}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    for (int ta = 0; ta < 2; ta++)
      for (int tb = 0; tb < 2; tb++)
        for (int with_beta = 0; with_beta < 2; with_beta++) {
          const int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2], pad = 5;
          const int a_rows = ta ? K : M, a_cols = ta ? M : K, lda = a_cols + pad;
          const int b_rows = tb ? N : K, b_cols = tb ? K : N, ldb = b_cols + pad, ldc = N + pad;
          float *a = random_array((size_t)a_rows * lda, -1, 1), *b = random_array((size_t)b_rows * ldb, -1, 1);
          float *c = random_array((size_t)M * ldc, -1, 1), *c0 = copy_of(c, (size_t)M * ldc);
          if (!with_beta)
            for (int i = 0; i < M; i++)
              for (int j = 0; j < N; j++) c[(size_t)i * ldc + j] = NAN;
          float *again = copy_of(c, (size_t)M * ldc);
          const float alpha = 0.75f, beta = with_beta ? -1.5f : 0.0f;
          cpu_builtin_sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, c, ldc);
          cpu_builtin_sgemm(ta, tb, M, N, K, alpha, a, lda, b, ldb, beta, again, ldc);
          double worst = 0;
          for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
              double sum = 0, size = 0;
              for (int k = 0; k < K; k++) {
                const double p = (double)(ta ? a[(size_t)k * lda + i] : a[(size_t)i * lda + k]) *
                                 (tb ? b[(size_t)j * ldb + k] : b[(size_t)k * ldb + j]);
                sum += p, size += fabs(p);
              }
              const double want = alpha * sum + (with_beta ? beta * c0[(size_t)i * ldc + j] : 0.0);
              const double err = fabs(c[(size_t)i * ldc + j] - want) / (fabs(alpha) * size + 1e-30);
              worst = isfinite(c[(size_t)i * ldc + j]) ? fmax(worst, err) : INFINITY;
            }
          CHECK(worst <= 1e-4, "builtin gemm %dx%dx%d trans_a=%d trans_b=%d beta=%g: worst error %g of sum|a*b|", M, N,
                K, ta, tb, beta, worst);
          CHECK(memcmp(c, again, (size_t)M * ldc * sizeof *c) == 0, "builtin gemm %dx%dx%d: two runs differ", M, N, K);
          free(a); free(b); free(c); free(c0); free(again);
        }
}

/* ------------------------------------------------------ linear: x·Wᵀ + b */

typedef struct linear_ctx { float *x, *w, *b; int N, IC, OC; } linear_ctx;
static void linear_fwd(void *p, float *out) {
  linear_ctx *c = p;
  be->gemm(false, true, c->N, c->OC, c->IC, 1.0f, CA(c->x), c->IC, CA(c->w), c->IC, 0.0f, A(out), c->OC);
  be->bias_add(A(out), CA(c->b), c->N, c->OC);
}
static void test_linear(void) {
  linear_ctx c = {.N = 6, .IC = 5, .OC = 7};
  c.x = random_array(30, -1, 1);
  c.w = random_array(35, -1, 1);
  c.b = random_array(7, -1, 1);
  float *R = random_array(42, -1, 1);
  float *dx = calloc(30, 4), *dw = calloc(35, 4), *db = calloc(7, 4);
  be->gemm(false, false, c.N, c.IC, c.OC, 1.0f, CA(R), c.OC, CA(c.w), c.IC, 0.0f, A(dx), c.IC);
  be->gemm(true, false, c.OC, c.IC, c.N, 1.0f, CA(R), c.OC, CA(c.x), c.IC, 1.0f, A(dw), c.IC);
  be->bias_backward(A(db), CA(R), c.N, c.OC);
  CHECK_GRAD(fd_relative_error(linear_fwd, &c, c.x, 30, R, 42, dx), "linear dinput");
  CHECK_GRAD(fd_relative_error(linear_fwd, &c, c.w, 35, R, 42, dw), "linear dweight");
  CHECK_GRAD(fd_relative_error(linear_fwd, &c, c.b, 7, R, 42, db), "bias_backward");
  /* bias_backward accumulates */
  float *db2 = copy_of(db, 7);
  be->bias_backward(A(db2), CA(R), c.N, c.OC);
  double dev = 0;
  for (int i = 0; i < 7; i++) dev = fmax(dev, fabs(db2[i] - 2 * db[i]));
  CHECK(dev < 1e-5, "bias_backward accumulates (%g)", dev);
  free(c.x); free(c.w); free(c.b); free(R); free(dx); free(dw); free(db); free(db2);
}

/* ---------------------------------------------------------------- gelu */

typedef struct gelu_ctx { float *x; size_t n; } gelu_ctx;
static void gelu_fwd(void *p, float *out) {
  gelu_ctx *c = p;
  be->gelu_forward(A(out), CA(c->x), c->n);
}
static void test_gelu(void) {
  gelu_ctx c = {.n = 37};
  c.x = random_array(c.n, -3, 3);
  float *out = malloc(c.n * 4);
  gelu_fwd(&c, out);
  double worst = 0;
  for (size_t i = 0; i < c.n; i++) {
    double x = c.x[i];
    double want = 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    worst = fmax(worst, fabs(out[i] - want));
  }
  CHECK(worst < 1e-6, "gelu forward vs double formula: %g", worst);
  float *R = random_array(c.n, -1, 1), *dx = random_array(c.n, 5, 6);
  be->gelu_backward(A(dx), CA(c.x), CA(R), c.n); /* overwrites the 5..6 garbage */
  CHECK_GRAD(fd_relative_error(gelu_fwd, &c, c.x, c.n, R, c.n, dx), "gelu (overwrites dinp)");
  /* in place: dinp aliasing dout */
  float *inplace = copy_of(R, c.n);
  be->gelu_backward(A(inplace), CA(c.x), CA(inplace), c.n);
  CHECK(memcmp(inplace, dx, c.n * 4) == 0, "gelu backward may alias dinp and dout");
  free(c.x); free(out); free(R); free(dx); free(inplace);
}

/* ----------------------------------------------------------- embedding */

typedef struct emb_ctx { float *wte, *wpe; int32_t *ids, *pos; int N, C; } emb_ctx;
static void emb_fwd(void *p, float *out) {
  emb_ctx *c = p;
  be->embedding_forward(A(out), (const ids_t *)c->ids, (const ids_t *)c->pos, CA(c->wte), CA(c->wpe),
                        c->N, c->C, 0, 4);
}
static void test_embedding(void) {
  emb_ctx c = {.N = 6, .C = 5};
  const int V = 4, n_pos = 5, n_out = 30;
  c.wte = random_array((size_t)V * c.C, -1, 1);
  c.wpe = random_array((size_t)n_pos * c.C, -1, 1);
  int32_t ids[6] = {3, 1, 3, 0, 3, 2}; /* repeated ids: the scatter must add */
  int32_t pos[6] = {2, 3, 4, 2, 3, 4}; /* two rows of positions 2..4 (a piece starting at 2) */
  c.ids = ids;
  c.pos = pos;
  float *R = random_array(n_out, -1, 1);
  float *dwte = calloc((size_t)V * c.C, 4), *dwpe = calloc((size_t)n_pos * c.C, 4);
  be->embedding_backward(A(dwte), A(dwpe), CA(R), (const ids_t *)ids, (const ids_t *)pos, c.N, c.C, 0, V);
  CHECK_GRAD(fd_relative_error(emb_fwd, &c, c.wte, (size_t)V * c.C, R, n_out, dwte), "embedding dwte");
  CHECK_GRAD(fd_relative_error(emb_fwd, &c, c.wpe, (size_t)n_pos * c.C, R, n_out, dwpe), "embedding dwpe");
  /* explicit positions: row n adds wpe[pos[n]] exactly; rows of unused positions get no gradient */
  float *full = malloc(n_out * 4), *part0 = malloc(n_out * 4), *part1 = malloc(n_out * 4);
  emb_fwd(&c, full);
  double worst = 0;
  for (int n = 0; n < c.N; n++)
    for (int k = 0; k < c.C; k++)
      worst = fmax(worst, fabs(full[n * c.C + k] - (c.wte[ids[n] * c.C + k] + c.wpe[pos[n] * c.C + k])));
  for (int i = 0; i < 2 * c.C; i++) worst = fmax(worst, fabs(dwpe[i]));
  CHECK(worst == 0, "row n adds wpe[positions[n]]; unused position rows stay 0 (%g)", worst);
  /* vocabulary shards: rows [0,3) and [3,4) (plus a padding row) sum to the full lookup,
   * and each shard's backward fills exactly its rows of the full gradient */
  be->embedding_forward(A(part0), (const ids_t *)ids, (const ids_t *)pos, CA(c.wte), CA(c.wpe), c.N, c.C, 0, 3);
  be->embedding_forward(A(part1), (const ids_t *)ids, NULL, CA(c.wte + 3 * c.C), NULL, c.N, c.C, 3, 2);
  worst = 0;
  for (int i = 0; i < n_out; i++) worst = fmax(worst, fabs(part0[i] + part1[i] - full[i]));
  CHECK(worst < 1e-6, "vocabulary shards sum to the full embedding (%g)", worst);
  float *dshard = calloc(2 * (size_t)c.C, 4);
  be->embedding_backward(A(dshard), NULL, CA(R), (const ids_t *)ids, NULL, c.N, c.C, 3, 2);
  worst = 0;
  for (int i = 0; i < c.C; i++) worst = fmax(worst, fabs(dshard[i] - dwte[3 * c.C + i]));
  for (int i = c.C; i < 2 * c.C; i++) worst = fmax(worst, fabs(dshard[i]));
  CHECK(worst < 1e-6, "a shard's backward fills its own rows only (%g)", worst);
  free(full); free(part0); free(part1); free(dshard);
  free(c.wte); free(c.wpe); free(R); free(dwte); free(dwpe);
}

/* ----------------------------------------------------------- layernorm */

typedef struct ln_ctx { float *x, *w, *b, *mean, *rstd; int N, C; double eps; } ln_ctx;
static void ln_fwd(void *p, float *out) {
  ln_ctx *c = p;
  be->layernorm_forward(A(out), F32(c->mean), F32(c->rstd), CA(c->x), CA(c->w), CA(c->b), c->N, c->C, c->eps);
}
/* eps 1e-5 (GPT-2's) and a large one, which a kernel ignoring its eps
 * would miss by far more than the tolerance */
static void test_layernorm(double eps) {
  ln_ctx c = {.N = 5, .C = 11, .eps = eps};
  const size_t n = 55;
  c.x = random_array(n, -2, 2);
  c.w = random_array(11, 0.5f, 1.5f);
  c.b = random_array(11, -0.5f, 0.5f);
  c.mean = malloc(5 * 4);
  c.rstd = malloc(5 * 4);
  float *out = malloc(n * 4);
  ln_fwd(&c, out);
  double worst = 0;
  for (int r = 0; r < c.N; r++) {
    double m = 0, v = 0;
    for (int k = 0; k < c.C; k++) m += c.x[r * c.C + k];
    m /= c.C;
    for (int k = 0; k < c.C; k++) v += (c.x[r * c.C + k] - m) * (c.x[r * c.C + k] - m);
    v /= c.C;
    for (int k = 0; k < c.C; k++) {
      double want = (c.x[r * c.C + k] - m) / sqrt(v + eps) * c.w[k] + c.b[k];
      worst = fmax(worst, fabs(out[r * c.C + k] - want));
    }
  }
  CHECK(worst < 1e-5, "layernorm forward (eps %g) vs double: %g", eps, worst);
  float *R = random_array(n, -1, 1);
  float *dx0 = random_array(n, -1, 1), *dx = copy_of(dx0, n); /* residual gradient already there */
  float *dw = calloc(11, 4), *db = calloc(11, 4);
  be->layernorm_backward(A(dx), A(dw), A(db), CA(R), CA(c.x), CA(c.w), F32(c.mean), F32(c.rstd), c.N, c.C);
  for (size_t i = 0; i < n; i++) dx[i] -= dx0[i]; /* what was added */
  CHECK_GRAD(fd_relative_error(ln_fwd, &c, c.x, n, R, n, dx), "layernorm dinput (accumulated)");
  CHECK_GRAD(fd_relative_error(ln_fwd, &c, c.w, 11, R, n, dw), "layernorm dweight");
  CHECK_GRAD(fd_relative_error(ln_fwd, &c, c.b, 11, R, n, db), "layernorm dbias");
  free(c.x); free(c.w); free(c.b); free(c.mean); free(c.rstd); free(out); free(R);
  free(dx0); free(dx); free(dw); free(db);
}

/* ----------------------------------------------------------- attention */

typedef struct att_ctx { float *qkv, *saved; int B, T, C, NH; } att_ctx;
static void att_fwd(void *p, float *out) {
  att_ctx *c = p;
  be->attention_forward(A(out), F32(c->saved), CA(c->qkv), c->B, c->T, c->C, c->NH);
}
static void test_attention(void) {
  att_ctx c = {.B = 2, .T = 5, .C = 12, .NH = 3};
  const int HS = 4, n_qkv = 2 * 5 * 36, n_out = 2 * 5 * 12;
  c.qkv = random_array(n_qkv, -1.5f, 1.5f);
  c.saved = malloc(be->attention_saved_elems(c.B, c.T, c.NH) * 4);
  float *out = malloc(n_out * 4);
  att_fwd(&c, out);
  /* naive reference in double */
  double worst = 0, worst_mask = 0, worst_rowsum = 0;
  for (int b = 0; b < c.B; b++)
    for (int h = 0; h < c.NH; h++)
      for (int t = 0; t < c.T; t++) {
        double scores[5], max_s = -1e300, sum = 0;
        const float *q = c.qkv + (b * c.T + t) * 36 + h * HS;
        for (int j = 0; j <= t; j++) {
          const float *k = c.qkv + (b * c.T + j) * 36 + 12 + h * HS;
          double s = 0;
          for (int d = 0; d < HS; d++) s += (double)q[d] * k[d];
          scores[j] = s / 2.0; /* 1/sqrt(4) */
          max_s = fmax(max_s, scores[j]);
        }
        for (int j = 0; j <= t; j++) sum += exp(scores[j] - max_s);
        for (int d = 0; d < HS; d++) {
          double o = 0;
          for (int j = 0; j <= t; j++)
            o += exp(scores[j] - max_s) / sum * c.qkv[(b * c.T + j) * 36 + 24 + h * HS + d];
          worst = fmax(worst, fabs(out[(b * c.T + t) * 12 + h * HS + d] - o) / (fabs(o) + 1e-3));
        }
        const float *prow = c.saved + (((size_t)b * c.NH + h) * c.T + t) * c.T;
        double rowsum = 0;
        for (int j = 0; j < c.T; j++) rowsum += prow[j];
        for (int j = t + 1; j < c.T; j++) worst_mask = fmax(worst_mask, fabs(prow[j]));
        worst_rowsum = fmax(worst_rowsum, fabs(rowsum - 1));
      }
  CHECK(worst < 1e-5, "attention forward vs naive double: %g", worst);
  CHECK(worst_mask == 0, "probabilities above the diagonal are exactly 0 (%g)", worst_mask);
  CHECK(worst_rowsum < 1e-6, "probability rows sum to 1 (%g)", worst_rowsum);
  float *R = random_array(n_out, -1, 1), *dqkv = random_array(n_qkv, 7, 8);
  att_fwd(&c, out);
  be->attention_backward(A(dqkv), CA(R), CA(out), CA(c.qkv), F32(c.saved), c.B, c.T, c.C, c.NH);
  CHECK_GRAD(fd_relative_error(att_fwd, &c, c.qkv, n_qkv, R, n_out, dqkv), "attention dqkv (overwrites)");
  free(c.qkv); free(c.saved); free(out); free(R); free(dqkv);
}

/* ------------------------------------------------- softmax cross-entropy */

typedef struct ce_ctx { float *logits, *losses; int32_t *targets; int N, V, stride; } ce_ctx;
/* the three phases on one shard holding the whole vocabulary */
static void ce_run(float *losses, float *logits, const int32_t *targets, int N, int V, int stride,
                   float scale) {
  float *row_max = malloc((size_t)N * 4), *stats = malloc((size_t)N * 8);
  be->crossentropy_max(F32(row_max), CA(logits), N, V, stride);
  be->crossentropy_sumexp(F32(stats), CA(logits), F32(row_max), (const ids_t *)targets, N, V, stride, 0);
  be->crossentropy_finish(F32(losses), A(logits), F32(row_max), F32(stats), (const ids_t *)targets,
                          N, V, stride, 0, scale);
  free(row_max);
  free(stats);
}
static void ce_fwd(void *p, float *out) {
  ce_ctx *c = p;
  float *tmp = copy_of(c->logits, (size_t)c->N * c->stride);
  ce_run(out, tmp, c->targets, c->N, c->V, c->stride, 0.0f);
  free(tmp);
}
static void test_crossentropy(void) {
  ce_ctx c = {.N = 4, .V = 7, .stride = 9};
  int32_t targets[4] = {3, 0, -1, 6}; /* row 2 is ignored */
  c.targets = targets;
  c.logits = random_array(36, -3, 3);
  float *losses = malloc(16);
  ce_fwd(&c, losses);
  for (int n = 0; n < 4; n++) {
    double want = 0;
    if (targets[n] >= 0) {
      double sum = 0;
      for (int v = 0; v < c.V; v++) sum += exp((double)c.logits[n * 9 + v]);
      want = log(sum) - c.logits[n * 9 + targets[n]];
    }
    CHECK_CLOSE(losses[n], want, 1e-6, 1e-7, "cross-entropy loss vs double");
  }
  CHECK(losses[2] == 0.0f, "ignored row has zero loss");
  float *R = random_array(4, 0.5f, 1.5f); /* weights on each row's loss */
  /* gradient of Σ R[n]·loss[n]: run per row with dlogits_scale = R[n] */
  float *grad = copy_of(c.logits, 36);
  for (int n = 0; n < 4; n++) ce_run(losses, grad + n * 9, targets + n, 1, c.V, c.stride, R[n]);
  float *analytic = calloc(36, 4);
  for (int i = 0; i < 36; i++) analytic[i] = grad[i];
  CHECK_GRAD(fd_relative_error(ce_fwd, &c, c.logits, 36, R, 4, analytic), "softmax cross-entropy (in place)");
  int bad_pad = 0, bad_ignored = 0;
  for (int n = 0; n < 4; n++)
    for (int v = c.V; v < c.stride; v++) bad_pad += grad[n * 9 + v] != 0.0f;
  for (int v = 0; v < c.stride; v++) bad_ignored += grad[2 * 9 + v] != 0.0f;
  CHECK(bad_pad == 0, "padding columns get zero gradient");
  CHECK(bad_ignored == 0, "ignored row gets zero gradient");
  /* two vocabulary shards, columns [0,4) and [4,7) (the second padded to a
   * stride of 5), combined by the reductions a tp group would do: same
   * losses and the same gradient, column for column */
  float shard0[4 * 4], shard1[4 * 5];
  for (int n = 0; n < 4; n++) {
    for (int v = 0; v < 4; v++) shard0[n * 4 + v] = c.logits[n * 9 + v];
    for (int v = 0; v < 5; v++) shard1[n * 5 + v] = v < 3 ? c.logits[n * 9 + 4 + v] : 99.0f;
  }
  float max0[4], max1[4], st0[8], st1[8], stats[8], row_max[4], loss0[4], loss1[4];
  be->crossentropy_max(F32(max0), CA(shard0), 4, 4, 4);
  be->crossentropy_max(F32(max1), CA(shard1), 4, 3, 5);
  for (int n = 0; n < 4; n++) row_max[n] = fmaxf(max0[n], max1[n]); /* the MAX reduction */
  be->crossentropy_sumexp(F32(st0), CA(shard0), F32(row_max), (const ids_t *)targets, 4, 4, 4, 0);
  be->crossentropy_sumexp(F32(st1), CA(shard1), F32(row_max), (const ids_t *)targets, 4, 3, 5, 4);
  for (int i = 0; i < 8; i++) stats[i] = st0[i] + st1[i]; /* the SUM reduction */
  be->crossentropy_finish(F32(loss0), A(shard0), F32(row_max), F32(stats), (const ids_t *)targets, 4, 4, 4, 0, 1.0f);
  be->crossentropy_finish(F32(loss1), A(shard1), F32(row_max), F32(stats), (const ids_t *)targets, 4, 3, 5, 4, 1.0f);
  float whole[36], whole_loss[4];
  memcpy(whole, c.logits, sizeof whole);
  ce_run(whole_loss, whole, targets, 4, c.V, c.stride, 1.0f);
  double worst = 0;
  for (int n = 0; n < 4; n++) {
    worst = fmax(worst, fabs(loss0[n] - whole_loss[n]) + fabs(loss1[n] - whole_loss[n]));
    for (int v = 0; v < 4; v++) worst = fmax(worst, fabs(shard0[n * 4 + v] - whole[n * 9 + v]));
    for (int v = 0; v < 3; v++) worst = fmax(worst, fabs(shard1[n * 5 + v] - whole[n * 9 + 4 + v]));
    for (int v = 3; v < 5; v++) worst = fmax(worst, fabs(shard1[n * 5 + v]));
  }
  CHECK(worst < 1e-6, "two vocabulary shards give the whole-vocabulary loss and gradient (%g)", worst);
  free(c.logits); free(losses); free(R); free(grad); free(analytic);
}

/* --------------------------------------------------------------- adamw */

static void test_adamw(void) {
  float w[3] = {1.0f, -0.5f, 0.25f}, g[3] = {0.1f, -0.2f, 0.3f}, m[3] = {0}, v[3] = {0};
  const float lr = 0.01f, b1 = 0.9f, b2 = 0.99f, eps = 1e-8f, wd = 0.1f, scale = 0.5f;
  double dw[3], dm[3] = {0}, dv[3] = {0};
  for (int i = 0; i < 3; i++) dw[i] = w[i];
  for (int t = 1; t <= 2; t++) {
    be->adamw(F32(w), CA(g), F32(m), F32(v), 3, lr, b1, b2, eps, wd, scale, t);
    for (int i = 0; i < 3; i++) { /* the formula in double */
      double gi = (double)g[i] * scale;
      dm[i] = b1 * dm[i] + (1 - b1) * gi;
      dv[i] = b2 * dv[i] + (1 - b2) * gi * gi;
      double mh = dm[i] / (1 - pow(b1, t)), vh = dv[i] / (1 - pow(b2, t));
      dw[i] -= lr * (mh / (sqrt(vh) + eps) + wd * dw[i]);
    }
    for (int i = 0; i < 3; i++) {
      CHECK_CLOSE(w[i], dw[i], 1e-6, 1e-8, "adamw weight");
      CHECK_CLOSE(m[i], dm[i], 1e-5, 1e-9, "adamw first moment");
      CHECK_CLOSE(v[i], dv[i], 1e-5, 1e-11, "adamw second moment");
    }
  }
  /* worked by hand, step 1, element 0: g = 0.05, m̂ = 0.05, v̂ = 0.0025, so
   * m̂/√v̂ = 1 and w = 1 − 0.01·(1 + 0.1·1) = 0.989 */
  float w1[1] = {1.0f}, g1[1] = {0.1f}, m1[1] = {0}, v1[1] = {0};
  be->adamw(F32(w1), CA(g1), F32(m1), F32(v1), 1, lr, b1, b2, eps, wd, scale, 1);
  CHECK_CLOSE(w1[0], 0.989, 1e-6, 0, "adamw worked example");
}

/* ---------------------------------------------- multi-tensor optimizer ops */

/* Segments out of order, with gaps before, between and after them, one of a
 * single element, an empty one, and lengths that split unevenly over
 * threads: adamw_multi must equal adamw per segment and sum_squares_multi
 * the per-segment sum_squares added per group in table order, BIT FOR BIT
 * (the same per-element arithmetic; the same summation order), and the
 * gaps must keep their values. */
static const tensor_segment multi_segments[] = {
    {.offset = 1500, .n_elems = 2053, .weight_decay = 0.0f, .group = 1},
    {.offset = 3, .n_elems = 1237, .weight_decay = 0.1f, .group = 0},
    {.offset = 1300, .n_elems = 1, .weight_decay = 0.0f, .group = 1},
    {.offset = 1301, .n_elems = 0, .weight_decay = 0.1f, .group = 3},
    {.offset = 4000, .n_elems = 997, .weight_decay = 0.05f, .group = 2},
    {.offset = 1241, .n_elems = 50, .weight_decay = 0.1f, .group = 0},
};
#define MULTI_N_SEGMENTS ((int)(sizeof multi_segments / sizeof multi_segments[0]))
#define MULTI_N_ELEMS 5000 /* the last segment ends at 4997 */

static int multi_in_segment(size_t i) {
  for (int s = 0; s < MULTI_N_SEGMENTS; s++)
    if (i >= multi_segments[s].offset && i < multi_segments[s].offset + multi_segments[s].n_elems) return 1;
  return 0;
}

static void multi_tensor_case(int n_threads) {
#ifdef _OPENMP
  omp_set_num_threads(n_threads);
#endif
  const size_t n = MULTI_N_ELEMS;
  float *w0 = random_array(n, -1, 1), *g = random_array(n, -0.1f, 0.1f), *m0 = random_array(n, -0.01f, 0.01f);
  float *v0 = random_array(n, 0, 1e-4f);
  float *w_multi = copy_of(w0, n), *m_multi = copy_of(m0, n), *v_multi = copy_of(v0, n);
  float *w_ref = copy_of(w0, n), *m_ref = copy_of(m0, n), *v_ref = copy_of(v0, n);
  segment_table *table = be->segments_create(multi_segments, MULTI_N_SEGMENTS);
  for (int t = 1; t <= 3; t++) {
    be->adamw_multi(F32(w_multi), CA(g), F32(m_multi), F32(v_multi), table, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.8f, t);
    for (int s = 0; s < MULTI_N_SEGMENTS; s++) {
      const size_t o = multi_segments[s].offset;
      be->adamw(F32(w_ref + o), CA(g + o), F32(m_ref + o), F32(v_ref + o), multi_segments[s].n_elems, 1e-3f, 0.9f,
                0.95f, 1e-8f, multi_segments[s].weight_decay, 0.8f, t);
    }
  }
  size_t differ = 0, gaps_moved = 0, updated = 0;
  for (size_t i = 0; i < n; i++) {
    differ += memcmp(&w_multi[i], &w_ref[i], 4) || memcmp(&m_multi[i], &m_ref[i], 4) ||
              memcmp(&v_multi[i], &v_ref[i], 4);
    if (multi_in_segment(i)) updated += w_multi[i] != w0[i];
    else gaps_moved += w_multi[i] != w0[i] || m_multi[i] != m0[i] || v_multi[i] != v0[i];
  }
  printf("  adamw_multi, %d thread(s): %zu of %zu elements differ from per-segment adamw, %zu gap elements moved\n",
         n_threads, differ, n, gaps_moved);
  CHECK(differ == 0, "adamw_multi equals adamw per segment bit for bit (%zu elements differ)", differ);
  CHECK(gaps_moved == 0, "adamw_multi leaves elements outside every segment alone (%zu moved)", gaps_moved);
  CHECK(updated == 1237 + 1 + 50 + 2053 + 997, "adamw_multi updates every segment element (%zu)", updated);

  double sums[5] = {-1, -1, -1, -1, -1}, want[4] = {0, 0, 0, 0}, exact[4] = {0, 0, 0, 0};
  be->sum_squares_multi(CA(g), table, sums, 4);
  for (int s = 0; s < MULTI_N_SEGMENTS; s++) {
    const tensor_segment *seg = &multi_segments[s];
    want[seg->group] += be->sum_squares(CA(g + seg->offset), seg->n_elems);
    for (size_t i = seg->offset; i < seg->offset + seg->n_elems; i++) exact[seg->group] += (double)g[i] * g[i];
  }
  for (int k = 0; k < 4; k++) {
    CHECK(sums[k] == want[k], "sum_squares_multi group %d: %.17g, per-segment sum_squares %.17g", k, sums[k], want[k]);
    CHECK_CLOSE(sums[k], exact[k], 1e-14, 0, "sum_squares_multi against a serial double sum");
  }
  CHECK(sums[3] == 0 && sums[4] == -1, "an empty group sums to 0; entries past n_groups untouched");
  /* the same call again: the sums do not depend on timing */
  double again[4];
  be->sum_squares_multi(CA(g), table, again, 4);
  CHECK(memcmp(again, sums, sizeof again) == 0, "sum_squares_multi is deterministic (%d threads)", n_threads);
  be->segments_free(table);
  /* an empty table: nothing to do, zero sums */
  segment_table *empty = be->segments_create(NULL, 0);
  be->adamw_multi(F32(w_multi), CA(g), F32(m_multi), F32(v_multi), empty, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.8f, 4);
  double none[2] = {-1, -1};
  be->sum_squares_multi(CA(g), empty, none, 2);
  CHECK(none[0] == 0 && none[1] == 0 && memcmp(w_multi, w_ref, n * sizeof *w_ref) == 0, "an empty segment table");
  be->segments_free(empty);
  free(w0), free(g), free(m0), free(v0), free(w_multi), free(m_multi), free(v_multi), free(w_ref), free(m_ref),
      free(v_ref);
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
}

/* a bad list is refused (exit status 3, internal error) by segments_create */
static int refused(const tensor_segment *segments, int n_segments) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    if (!freopen("/dev/null", "w", stderr)) _exit(99);
    segment_table *t = be->segments_create(segments, n_segments);
    (void)t;
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) && WEXITSTATUS(status) == 3;
}

static void test_multi_tensor(void) {
  multi_tensor_case(1);
  multi_tensor_case(3); /* threads split the segments unevenly; results as with one */
  const tensor_segment overlap[] = {{.offset = 0, .n_elems = 10}, {.offset = 20, .n_elems = 0}, {.offset = 9, .n_elems = 3}};
  const tensor_segment bad_group[] = {{.offset = 0, .n_elems = 10, .group = SEGMENT_MAX_GROUPS}};
  const tensor_segment touching[] = {{.offset = 10, .n_elems = 5}, {.offset = 0, .n_elems = 10}, {.offset = 12, .n_elems = 0}};
  CHECK(refused(overlap, 3), "overlapping segments are refused");
  CHECK(refused(bad_group, 1), "a group >= SEGMENT_MAX_GROUPS is refused");
  CHECK(!refused(touching, 3), "adjacent segments (and an empty one inside another) are accepted");
}

static void test_elementwise(void) {
  float a[5] = {1, 2, 3, 4, 5}, b[5] = {0.5f, -1, 2, 0, 1}, out[5];
  be->add(A(out), CA(a), CA(b), 5);
  CHECK(out[2] == 5.0f && out[1] == 1.0f, "add");
  be->accumulate(A(a), CA(b), 5);
  CHECK(a[0] == 1.5f && a[4] == 6.0f, "accumulate");
  be->scale(A(a), 2.0f, 5);
  CHECK(a[0] == 3.0f, "scale");
  CHECK_CLOSE(be->sum_squares(CA(b), 5), 0.25 + 1 + 4 + 0 + 1, 1e-12, 0, "sum of squares");
  /* copy_rows: columns [1, 3) of 3 rows of width 4 into columns [2, 4) of rows of width 5 */
  float src[12], dst[15];
  for (int i = 0; i < 12; i++) src[i] = (float)i;
  for (int i = 0; i < 15; i++) dst[i] = -1;
  be->copy_rows(A(dst + 2), 5, CA(src + 1), 4, 3, 2);
  int wrong = 0;
  for (int r = 0; r < 3; r++)
    for (int c = 0; c < 5; c++) wrong += dst[r * 5 + c] != (c >= 2 && c < 4 ? src[r * 4 + 1 + c - 2] : -1.0f);
  CHECK(wrong == 0, "copy_rows moves exactly the column range: %d wrong", wrong);
}

int main(void) {
  random_seed(0x1234567887654321ULL);
  be = backend_cpu();
  test_gemm();
  test_gemm_builtin();
  test_linear();
  test_gelu();
  test_embedding();
  test_layernorm(1e-5);
  test_attention();
  test_crossentropy();
  test_adamw();
  test_multi_tensor();
  test_elementwise();
  /* last: its random inputs would shift every later test's */
  test_layernorm(0.25);
  return test_summary("test_kernels_cpu");
}

/* gemm — matrix products through OpenBLAS (or, built without it, through
 * gemm_builtin.c), the bias add that follows a
 * linear layer, and the two together (gemm_bias, gemm_bias_gelu: the CUDA
 * backend fuses them; here they are the separate calls).
 *
 * tessera's GEMM is row-major: C[M,N] = alpha·op(A)·op(B) + beta·C with the
 * stored leading dimensions lda/ldb/ldc, passed straight to cblas_sgemm with
 * CblasRowMajor (no copies). bias_backward ACCUMULATES into dbias, like every
 * parameter gradient.
 */
#include "build_config.h"

#include <stdlib.h>
#ifdef TESSERA_HAVE_OPENBLAS
#include <cblas.h>
#endif

#include "cpu_ops.h"
#include "fail.h"

void cpu_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const act_t *A, int lda,
              const act_t *B, int ldb, float beta, act_t *C, int ldc) {
#ifdef TESSERA_HAVE_OPENBLAS
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              M, N, K, alpha, CF(A), lda, CF(B), ldb, beta, F(C), ldc);
#else
  cpu_builtin_sgemm(trans_a, trans_b, M, N, K, alpha, CF(A), lda, CF(B), ldb, beta, F(C), ldc);
#endif
}

void cpu_bias_add(act_t *out, const act_t *bias, int N, int C) {
  float *o = F(out);
  const float *b = CF(bias);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++)
    for (int c = 0; c < C; c++) o[(size_t)n * C + c] += b[c];
}

/* The linear layer's forward: unfused here, the calls the model made before
 * the op existed, so CPU results are bit for bit what they were. */
void cpu_gemm_bias(act_t *out, const act_t *inp, const act_t *weight, const act_t *bias, int N, int IC, int OC) {
  cpu_gemm(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC);
  cpu_bias_add(out, bias, N, OC);
}

void cpu_gemm_bias_gelu(act_t *out, act_t *pre, const act_t *inp, const act_t *weight, const act_t *bias, int N,
                        int IC, int OC) {
  cpu_gemm_bias(pre, inp, weight, bias, N, IC, OC);
  cpu_gelu_forward(out, pre, (size_t)N * OC);
}

void cpu_bias_backward(act_t *dbias, const act_t *dout, int N, int C) {
  float *db = F(dbias);
  const float *d = CF(dout);
  /* row-order pass with per-thread double sums, merged once in thread order */
  int n_rows;
  double *partials = thread_partials_create((size_t)C, &n_rows);
#pragma omp parallel
  {
    double *local = thread_partials_row(partials, (size_t)C);
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++)
      for (int c = 0; c < C; c++) local[c] += d[(size_t)n * C + c];
  }
  thread_partials_finish(db, partials, n_rows, (size_t)C);
}

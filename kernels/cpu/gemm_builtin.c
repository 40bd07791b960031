/* gemm_builtin — the CPU backend's GEMM where no OpenBLAS exists (configure
 * --with-blas=builtin, or auto on a machine without it): row-major
 * C = alpha·op(A)·op(B) + beta·C with cblas_sgemm's meaning of every
 * argument. Correct on any shape and deterministic (each element's sum runs
 * over k in order, whatever the thread count), about 11 times slower than
 * OpenBLAS (GPT-2 124M, T = 128, one thread: 26.9 s a step against 2.5 s):
 * it serves machines that train on a GPU and need the CPU backend only as
 * the tests' reference (the GPU machine's image is not known to have OpenBLAS).
 *
 * Rows of C are split over OpenMP threads. For each row, op(A)'s row is
 * read in place (or, transposed, its column gathered into a buffer); then with op(B) = B (rows of B
 * contiguous) the row accumulates a·B[k,:] over k in blocks of columns, and
 * with op(B) = Bᵀ each element is a dot product of two contiguous vectors,
 * in eight interleaved partial sums (fixed order) that the compiler can
 * keep in vector registers.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "fail.h"

enum { COLUMN_BLOCK = 512 };

static float dot_contiguous(const float *x, const float *y, int n) {
  float part[8] = {0};
  int k = 0;
  for (; k + 8 <= n; k += 8)
    for (int u = 0; u < 8; u++) part[u] += x[k + u] * y[k + u];
  float s = ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
  for (; k < n; k++) s += x[k] * y[k];
  return s;
}

void cpu_builtin_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
  if (M <= 0 || N <= 0) return;
#pragma omp parallel
  {
    float *column = trans_a ? xmalloc((size_t)(K > 0 ? K : 1) * sizeof *column, "gemm row") : NULL;
    float *acc = xmalloc((size_t)N * sizeof *acc, "gemm row");
#pragma omp for schedule(static)
    for (int i = 0; i < M; i++) {
      const float *a_row = A + (size_t)i * lda; /* op(A)'s row i: stored as is, or column i gathered */
      if (trans_a) {
        for (int k = 0; k < K; k++) column[k] = A[(size_t)k * lda + i];
        a_row = column;
      }
      if (trans_b) {
        for (int j = 0; j < N; j++) acc[j] = dot_contiguous(a_row, B + (size_t)j * ldb, K);
      } else {
        memset(acc, 0, (size_t)N * sizeof *acc);
        for (int j0 = 0; j0 < N; j0 += COLUMN_BLOCK) {
          const int j1 = j0 + COLUMN_BLOCK < N ? j0 + COLUMN_BLOCK : N;
          for (int k = 0; k < K; k++) {
            const float a = a_row[k];
            const float *b = B + (size_t)k * ldb;
            for (int j = j0; j < j1; j++) acc[j] += a * b[j];
          }
        }
      }
      float *c = C + (size_t)i * ldc;
      /* beta = 0 ignores C, as BLAS does (C may hold anything, even NaN) */
      if (beta == 0.0f)
        for (int j = 0; j < N; j++) c[j] = alpha * acc[j];
      else
        for (int j = 0; j < N; j++) c[j] = alpha * acc[j] + beta * c[j];
    }
    free(column);
    free(acc);
  }
}

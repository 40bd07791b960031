/* thread_partials — reductions over OpenMP threads whose result does not
 * depend on which thread finishes first: each thread sums into its own row
 * of a zeroed [threads, n] table of doubles, and after the parallel region
 * the rows are added in thread order. (Adding per-thread partials inside
 * `omp critical` adds them in arrival order, so two runs could differ in
 * the last bit.) With one thread this is exactly the plain sum. */
#include <stdlib.h>

#include "cpu_ops.h"
#include "fail.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int max_threads(void) {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

double *thread_partials_create(size_t n, int *n_rows) {
  *n_rows = max_threads();
  return xcalloc((size_t)*n_rows * (n ? n : 1), sizeof(double), "per-thread partial sums");
}

double *thread_partials_row(double *table, size_t n) {
#ifdef _OPENMP
  return table + (size_t)omp_get_thread_num() * n;
#else
  return table + 0 * n;
#endif
}

void thread_partials_finish(float *dst, double *table, int n_rows, size_t n) {
  for (size_t c = 0; c < n; c++) {
    double sum = 0;
    for (int t = 0; t < n_rows; t++) sum += table[(size_t)t * n + c];
    dst[c] += (float)sum;
  }
  free(table);
}

/* bench_sgemm — the machine's large-sgemm rate, the yardstick of the CPU
 * benchmark: N×N×N products on random data, one warm-up, then repeats for at
 * least two seconds. Prints `sgemm N=... threads=... gflops=...`. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
  const int n = argc > 1 ? atoi(argv[1]) : 2048;
  if (n <= 0) return 1;
  const size_t elems = (size_t)n * n;
  float *a = malloc(elems * sizeof *a), *b = malloc(elems * sizeof *b), *c = malloc(elems * sizeof *c);
  if (!a || !b || !c) return 1;
  for (size_t i = 0; i < elems; i++) {
    a[i] = (float)((i * 2654435761u) % 2001) * 1e-3f - 1.0f;
    b[i] = (float)((i * 40503u) % 1999) * 1e-3f - 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
  int calls = 0;
  double start = now(), elapsed = 0;
  while (elapsed < 2.0 || calls < 3) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    calls++;
    elapsed = now() - start;
  }
  printf("sgemm N=%d threads=%d gflops=%.1f\n", n, openblas_get_num_threads(),
         2.0 * n * (double)n * n * calls / elapsed / 1e9);
  free(a);
  free(b);
  free(c);
  return 0;
}

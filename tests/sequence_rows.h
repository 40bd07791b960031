/* sequence_rows.h — moving a range of positions of every sequence between
 * a whole [B, T, W] array and a compact [B, n, W] one: how the tests cut a
 * sequence into the pieces a sequence-parallel rank holds, and put the
 * pieces' results back. */
#ifndef TESSERA_TESTS_SEQUENCE_ROWS_H
#define TESSERA_TESTS_SEQUENCE_ROWS_H

#include <stddef.h>
#include <string.h>

/* rows [t0, t0 + n) of each of B sequences of T rows of W values */
static inline void take_rows(float *dst, const float *src, int B, int T, int t0, int n, int W) {
  for (int b = 0; b < B; b++)
    memcpy(dst + (size_t)b * n * W, src + ((size_t)b * T + t0) * W, (size_t)n * W * sizeof *dst);
}
static inline void put_rows(float *dst, const float *src, int B, int T, int t0, int n, int W) {
  for (int b = 0; b < B; b++)
    memcpy(dst + ((size_t)b * T + t0) * W, src + (size_t)b * n * W, (size_t)n * W * sizeof *dst);
}

#endif

/* sequence_rows.h — moving a range of positions of every sequence between
 * a whole [B, T, W] array and a compact [B, n, W] one: how the tests cut a
 * sequence into the pieces a sequence-parallel rank holds, and put the
 * pieces' results back; and the same for a range of columns of the rows
 * (the K|V part of qkv rows, the dq part of dqkv rows). */
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

/* columns [col0, col0 + W) of rows [t0, t0 + n) of each of B sequences of T
 * rows of ld values, from (take) or into (put) a compact [B, n, W] array */
static inline void take_columns(float *dst, const float *src, int B, int T, int t0, int n, int ld, int col0, int W) {
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++)
      memcpy(dst + ((size_t)b * n + i) * W, src + ((size_t)b * T + t0 + i) * ld + col0, (size_t)W * sizeof *dst);
}
static inline void put_columns(float *dst, const float *src, int B, int T, int t0, int n, int ld, int col0, int W) {
  for (int b = 0; b < B; b++)
    for (int i = 0; i < n; i++)
      memcpy(dst + ((size_t)b * T + t0 + i) * ld + col0, src + ((size_t)b * n + i) * W, (size_t)W * sizeof *dst);
}

#endif

/* random_inputs — the kernel tests' inputs: a seeded xorshift64* generator
 * (the same numbers on every machine and every run) and arrays drawn from
 * it. Each test program calls random_seed once, first, with its own seed. */
#ifndef TESSERA_TESTS_RANDOM_INPUTS_H
#define TESSERA_TESTS_RANDOM_INPUTS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t random_state = 1;

static inline void random_seed(uint64_t seed) { random_state = seed; }

/* xorshift64*, in [0, 1) */
static inline double uniform(void) {
  random_state ^= random_state >> 12;
  random_state ^= random_state << 25;
  random_state ^= random_state >> 27;
  return (double)((random_state * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
}

/* n values uniform in [lo, hi) (malloc'ed; n may be 0) */
static inline float *random_array(size_t n, float lo, float hi) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)uniform();
  return x;
}

static inline float *copy_of(const float *x, size_t n) {
  float *y = malloc((n ? n : 1) * sizeof *y);
  memcpy(y, x, n * sizeof *y);
  return y;
}

#endif

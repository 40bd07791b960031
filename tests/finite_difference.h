/* finite_difference — checking a CPU backward against its own forward.
 *
 * With a fixed random R, the objective L = Σ out·R (summed in double) has
 * dL/dout = R, so the backward fed R must give dL/dinput; each gradient is
 * compared with central differences of the forward, ‖g_fd − g‖/‖g_fd‖ ≤
 * 1e-3 with h = 1e-3 (the tests' headers say why those numbers). The CPU
 * backend's buffers are host arrays, so a test hands float arrays to the
 * ops through the casts below. */
#ifndef TESSERA_TESTS_FINITE_DIFFERENCE_H
#define TESSERA_TESTS_FINITE_DIFFERENCE_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "testing.h"

/* a float array as the CPU backend's handles */
#define A(p) ((act_t *)(p))
#define CA(p) ((const act_t *)(p))
#define F32(p) ((f32_t *)(p))
#define CF32(p) ((const f32_t *)(p))

static inline double dot(const float *a, const float *b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
  return s;
}

/* An op under test: forward writes out (n_out) from the current inputs. */
typedef void (*forward_fn)(void *ctx, float *out);

/* ‖fd − analytic‖/‖fd‖ for the gradient of Σ out·R with respect to x[0..n). */
static inline double fd_relative_error(forward_fn forward, void *ctx, float *x, size_t n, const float *R,
                                       size_t n_out, const float *analytic) {
  const float h = 1e-3f;
  float *out = malloc(n_out * sizeof *out);
  double err = 0, ref = 0;
  for (size_t i = 0; i < n; i++) {
    float saved = x[i];
    x[i] = saved + h;
    forward(ctx, out);
    double up = dot(out, R, n_out);
    x[i] = saved - h;
    forward(ctx, out);
    double down = dot(out, R, n_out);
    x[i] = saved;
    double fd = (up - down) / (2.0 * h);
    err += (fd - analytic[i]) * (fd - analytic[i]);
    ref += fd * fd;
  }
  free(out);
  return sqrt(err / ref);
}

#define CHECK_GRAD(rel, what)                                                \
  do {                                                                       \
    double r_ = (rel);                                                       \
    printf("  %-58s fd rel. error %.2e\n", what, r_);                        \
    CHECK(r_ < 1e-3, "%s: finite-difference relative error %g", what, r_);  \
  } while (0)

#endif

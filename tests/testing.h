/* testing.h — the smallest harness that reads well.
 *
 * CHECK(cond, fmt, ...) records a failure with file and line and carries on, so
 * one run shows every broken assertion; CHECK_CLOSE compares two numbers with
 * a relative-or-absolute tolerance the caller states. A test program ends with
 * `return test_summary("name");`, which prints a one-line count and exits 1 if
 * anything failed (Automake's test driver reads the exit status; 77 = skip).
 */
#ifndef TESSERA_TESTING_H
#define TESSERA_TESTING_H

#include <math.h>
#include <stdio.h>

static int testing_n_checks, testing_n_failures;

#define CHECK(cond, ...)                                                  \
  do {                                                                    \
    testing_n_checks++;                                                   \
    if (!(cond)) {                                                        \
      testing_n_failures++;                                               \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                \
      fprintf(stderr, __VA_ARGS__);                                       \
      fputc('\n', stderr);                                                \
    }                                                                     \
  } while (0)

/* |got - want| <= atol + rtol·|want| */
#define CHECK_CLOSE(got, want, rtol, atol, what)                                           \
  do {                                                                                     \
    double testing_g = (double)(got), testing_w = (double)(want);                          \
    CHECK(isfinite(testing_g) && fabs(testing_g - testing_w) <= (atol) + (rtol) * fabs(testing_w), \
          "%s: got %.9g, want %.9g (rtol %g, atol %g)", (what), testing_g, testing_w,     \
          (double)(rtol), (double)(atol));                                                 \
  } while (0)

static inline int test_summary(const char *name) {
  printf("%s: %d checks, %d failed\n", name, testing_n_checks, testing_n_failures);
  return testing_n_failures ? 1 : 0;
}

#endif

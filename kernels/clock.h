/* clock — seconds on a monotonic clock, for timing anything from a kernel
 * to a checkpoint save. With fail.h one of the two base utilities every
 * layer may use (kernels/ is the bottom layer). */
#ifndef TESSERA_CLOCK_H
#define TESSERA_CLOCK_H

#include <time.h>

static inline double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif

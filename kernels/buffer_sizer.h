/* buffer_sizer — one code path that either allocates a component's backend
 * buffers or only counts their bytes.
 *
 * Every component that owns backend buffers lays them out through a sizer:
 * the run's sizer allocates (and claims each buffer's kind in the memory
 * tally), the planner's (src/plan) only adds up bytes per kind. Both walk
 * the same code, so a layout's predicted memory equals what the run
 * allocates and reports, to the byte (doc/design.md, "The planner"), for a
 * model of any size: counting allocates nothing.
 */
#ifndef TESSERA_BUFFER_SIZER_H
#define TESSERA_BUFFER_SIZER_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "memory_tally.h"

typedef struct buffer_sizer {
  const backend *be;      /* element sizes; allocates when `allocate` */
  bool allocate;          /* false: count only, hand out NULL */
  uint64_t bytes[MEMORY_N_KINDS];
} buffer_sizer;

/* A sizer that allocates from be / that only counts, with be's element sizes. */
buffer_sizer buffer_sizer_allocating(const backend *be);
buffer_sizer buffer_sizer_counting(const backend *be);

/* n elements of `kind` (claimed in the memory tally when allocated). */
act_t *sizer_act(buffer_sizer *s, size_t n, memory_kind kind, const char *what);
f32_t *sizer_f32(buffer_sizer *s, size_t n, memory_kind kind, const char *what);
ids_t *sizer_ids(buffer_sizer *s, size_t n, memory_kind kind, const char *what);

/* Host memory (the optimizer offload's): n floats from be->alloc_host
 * (pinned on CUDA) / `bytes` aligned to `align` from the C library (the
 * nvme chunk buffers, O_DIRECT's alignment; zeroed, so the RAM is held from
 * the start); both claimed as `kind` (MEMORY_OFFLOADED). NULL when only
 * counting; sizer_host_bytes also NULL when allocating fails (the caller
 * says what to lower), and then counts nothing. */
float *sizer_host(buffer_sizer *s, size_t n, memory_kind kind, const char *what);
void *sizer_host_bytes(buffer_sizer *s, size_t bytes, size_t align, memory_kind kind);

uint64_t buffer_sizer_total(const buffer_sizer *s);

#endif

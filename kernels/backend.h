/* backend — the one table of compute ops that the model calls.
 *
 * tessera computes through a `backend`: a struct of function pointers filled in
 * by kernels/cpu (fp32, OpenBLAS: the reference every test trusts) or
 * kernels/cuda (bf16 storage, fp32 accumulation). The model never touches the
 * numbers: buffers are opaque handles that may live on a device.
 *
 *   act_t  — compute precision (fp32 on the CPU, bf16 on CUDA): activations,
 *            compute weights, gradients.
 *   f32_t  — always fp32: master weights, Adam moments, norm statistics, losses.
 *   ids_t  — int32 token ids.
 *
 * Conventions (as in llm.c):
 *   - All tensors are row-major and contiguous unless a leading dimension says
 *     otherwise.
 *   - Forward ops overwrite their outputs.
 *   - Backward ops ACCUMULATE (+=) into parameter gradients and into the input
 *     gradient on the residual stream (`dinp` of layernorm and of a residual
 *     add); other input gradients are overwritten (=). Each op's comment says
 *     which.
 * Arithmetic on handles goes through act_at()/f32_at(), never through casts.
 * The ops and their contracts are listed once, in kernels/backend_ops.h; the
 * struct's fields and both backends' tables are generated from that list, so
 * every backend has every op (none is NULL).
 */
#ifndef TESSERA_BACKEND_H
#define TESSERA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend_ops.h"
#include "device_probe.h"

typedef struct act_t act_t;
typedef struct f32_t f32_t;
typedef struct ids_t ids_t;

typedef enum backend_kind { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_kind;

/* A segment list for the multi-tensor optimizer ops (adamw_multi,
 * sum_squares_multi): segment s covers elements [offset, offset + n_elems)
 * of every buffer the op is given, offsets counted from the pointers passed
 * (the optimizer passes the base of its ZeRO range). Segments must not
 * overlap; they need not be sorted or adjacent, and elements in no segment
 * are neither read nor written. weight_decay is AdamW's decoupled λ for the
 * segment (0: none); group (0 ≤ group < SEGMENT_MAX_GROUPS) picks the sum
 * sum_squares_multi adds the segment to (the optimizer's: 0 replicated over
 * tp, 1 split over tp). The backend keeps its own copy, a segment_table
 * (on CUDA in device memory), made once by segments_create: a run's
 * segments never change, so no step copies them. */
#define SEGMENT_MAX_GROUPS 4
typedef struct tensor_segment {
  size_t offset, n_elems;
  float weight_decay;
  int group;
} tensor_segment;
typedef struct segment_table segment_table;

#define BACKEND_FIELD(ret, op, params) ret(*op) params;
typedef struct backend {
  const char *name;
  backend_kind kind;
  size_t act_elem_bytes; /* bytes of one act_t element: 4 (fp32) or 2 (bf16) */

  /* the ops, each with its contract: kernels/backend_ops.h */
  BACKEND_RUNTIME_OPS(BACKEND_FIELD)
  BACKEND_COMPUTE_OPS(BACKEND_FIELD)
} backend;

static inline act_t *act_at(const backend *be, const act_t *base, size_t n_elems) {
  return (act_t *)((char *)base + n_elems * be->act_elem_bytes);
}
static inline f32_t *f32_at(const f32_t *base, size_t n_elems) {
  return (f32_t *)((char *)base + n_elems * sizeof(float));
}
static inline ids_t *ids_at(const ids_t *base, size_t n_elems) {
  return (ids_t *)((char *)base + n_elems * sizeof(int32_t));
}

/* What segments_create checks first (kernels/segments.c): groups in range,
 * no shared elements, no overflow; gives the elements the segments hold
 * (total_elems) and 1 + the largest group (n_groups, 0 for no segments).
 * Fails (internal error) on a bad list. */
void segments_check(const tensor_segment *segments, int n_segments, size_t *total_elems, int *n_groups);
/* What sum_squares_multi does first (kernels/segments.c): fails (internal
 * error) unless the table's groups (table_groups: 1 + its largest) fit in
 * the n_groups sums asked for, then zeroes those sums. */
void segments_sums_start(int table_groups, double *sums_by_group, int n_groups);

/* The CPU backend; always present. */
const backend *backend_cpu(void);
/* The CUDA backend, or NULL in a build without CUDA or on a machine without a
 * GPU; a GPU the runtime cannot use (DEVICE_BROKEN) fails the process (exit
 * 1) with the runtime's message instead of reading as no GPU. */
const backend *backend_cuda(void);
/* What this machine's GPUs are to the CUDA backend (kernels/device_probe.h);
 * probed once. A build without CUDA: DEVICE_NONE. */
void backend_cuda_probe(device_probe *out);
/* Whether this build has the CUDA backend (whatever the machine has). */
bool backend_cuda_built(void);

#endif

/* profile — where a training step's time goes, by region of the model
 * (`--profile true`). The model and the trainer place a mark where each
 * region begins; all work issued until the next mark belongs to that
 * region. Marks are the backend's (kernels/backend.h): the clock on the CPU,
 * events on the CUDA stream, so on a GPU a region's time is stream time,
 * kernels and the gaps between them, without synchronising anything until
 * the step ends. This replaces a system profiler where none can run (the
 * device machine of doc/performance.md has no Nsight Systems).
 *
 * A NULL profile is off: every call is then a no-op, so the model calls
 * them unconditionally.
 */
#ifndef TESSERA_PROFILE_H
#define TESSERA_PROFILE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

typedef enum profile_region {
  PROFILE_DATA,        /* loading the batch, and whatever precedes the model */
  PROFILE_EMBEDDING,
  PROFILE_NORM,        /* the blocks' norms, with tp's gathers and reductions around them */
  PROFILE_QKV,         /* the QKV product (and RoPE) */
  PROFILE_ATTENTION,   /* the attention core, softmax or linear, with sp's communication */
  PROFILE_ATTN_OUT,    /* the output projection, its tp reduction and the residual */
  PROFILE_MLP_IN,      /* the MLP's first product (with its fused activation) */
  PROFILE_MLP_ACT,     /* GELU or SwiGLU when not fused */
  PROFILE_MLP_OUT,     /* the second product, its tp reduction and the residual */
  PROFILE_HEAD,        /* final norm, logits, loss, and the head's own backward */
  PROFILE_PIPELINE,    /* waiting for and sending activations between stages */
  PROFILE_GRAD_SYNC,   /* finishing the gradient reduction over dp×sp */
  PROFILE_OPTIMIZER,   /* gradient norm and AdamW */
  PROFILE_N_REGIONS
} profile_region;

typedef struct profile profile;

profile *profile_create(const backend *be);
void profile_free(profile *p);

/* Work issued from now on belongs to `region`, forward or backward. */
void profile_mark(profile *p, profile_region region, bool backward);

/* Ends a step that took step_seconds of wall time: waits for its last mark
 * and adds each region's time to the totals (the first step, which warms
 * up, is left out). */
void profile_end_step(profile *p, double step_seconds);

/* Milliseconds per step (steps after the first) of region r, forward
 * (backward = false) or backward; and the step time the marks cover. */
double profile_ms_per_step(const profile *p, profile_region r, bool backward);
double profile_covered_ms_per_step(const profile *p);
double profile_wall_ms_per_step(const profile *p);
int64_t profile_steps(const profile *p);
/* lower case, underscores: the table's row and the metrics key */
const char *profile_region_name(profile_region r);

#endif

/* optimizer — AdamW over the parameter registry, with global-norm clipping.
 *
 * The optimizer owns the fp32 master weights and the two Adam moments, laid
 * out like the flat parameter buffer. A step: the global gradient norm
 * ‖g‖ = sqrt(Σ g²) over every parameter; clipping scales g by
 * min(1, clip / (‖g‖ + 1e-6)); then AdamW per parameter tensor with
 * decoupled weight decay on the tensors the registry marks (matrices: wte,
 * attention and MLP weights; never biases, norm gains or position
 * embeddings); then the compute weights are refreshed from the master copy.
 * Every data-parallel rank holds the same reduced gradient, so every rank
 * computes the same update.
 *
 * ZeRO stage 1 (Rajbhandari et al.): with a `shard_group` of D ranks (dp×sp)
 * the flat buffer is cut into D contiguous ranges (sizes differing by at
 * most one element); each rank keeps the fp32 master weights and Adam
 * moments of its range only, updates that range, and an all-gather over the
 * group hands every rank the updated compute weights. Without a shard group
 * (stage 0) one rank's range is the whole buffer.
 *
 * ZeRO stage 2 adds the gradient: the optimizer owns `shard_grads`, the
 * reduced gradient of its range (filled by parallel/shard_sync), and reads
 * the update and the gradient norm from it instead of the model's buffer.
 * ZeRO stage 3 adds the compute weights: the optimizer writes its range into
 * `compute_shard`, from which parallel/param_gather fetches blocks on demand;
 * no rank holds the whole model after a step.
 *
 * Multi-tensor ops (kernels/backend.h): optimizer_create lists, once, the
 * part of each tensor inside this rank's range (offset, length, weight
 * decay) and the tensors the gradient norm sums (group 0 replicated over
 * tp, 1 split over tp; the last stage's tied wte left out). A step is then
 * one sum_squares_multi (on CUDA one launch and one copy to the host,
 * instead of a copy and a synchronisation per tensor) and one adamw_multi
 * (one launch instead of one per tensor), with the per-tensor ops'
 * arithmetic: on the CPU every result is what the per-tensor loop gave,
 * bit for bit.
 */
#ifndef TESSERA_OPTIMIZER_H
#define TESSERA_OPTIMIZER_H

#include <stdint.h>

#include "backend.h"
#include "model.h"

typedef struct adamw_settings {
  double beta1, beta2, eps, weight_decay, grad_clip;
} adamw_settings;

typedef struct optimizer {
  const backend *be;
  adamw_settings settings;
  f32_t *master, *m, *v; /* this rank's range only */
  size_t n_elems;          /* the whole flat buffer */
  comm *shard_group;       /* NULL: stage 0 */
  int *shard_counts, *shard_displs; /* per rank of the group, elements */
  size_t shard_start, shard_elems;  /* this rank's range */
  act_t *shard_grads;      /* stage 2: this range's reduced gradient, else NULL */
  act_t *compute_shard;    /* stage 3: this range's compute weights, else NULL */
  segment_table *update_segments; /* each tensor's part of the range, offsets from shard_start */
  segment_table *norm_segments;   /* what the gradient norm sums: offsets in shard_grads (stage 2, 3)
                                     or in the model's gradient buffer */
  int64_t step;            /* optimizer steps taken */
} optimizer;

/* The master copy starts from host_init (the initialised parameters, whole
 * buffer). shard_group is the ZeRO-1 group (dp×sp), or NULL for stage 0. */
void optimizer_create(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                      adamw_settings settings, comm *shard_group, int zero_stage);

/* Gathers the whole fp32 master copy into host (n_elems floats) on every
 * rank of the shard group (collective over it). */
void optimizer_gather_master(const optimizer *opt, float *host);
/* The same for the Adam moments (checkpoints). */
void optimizer_gather_moments(const optimizer *opt, float *host_m, float *host_v);
/* Restores the state from whole host buffers (each rank keeps its range);
 * step is the number of optimizer steps already taken. */
void optimizer_load(optimizer *opt, const float *host_master, const float *host_m,
                    const float *host_v, int64_t step);
/* The same from host copies of this rank's range only (shard_elems floats
 * each). A copy that is the optimizer's own buffer (its host_pointer: a
 * checkpoint read straight into it) is not copied again. */
void optimizer_load_range(optimizer *opt, const float *master_range, const float *m_range,
                          const float *v_range, int64_t step);
void optimizer_free(optimizer *opt);

/* ‖g‖₂ of the model's (already reduced) gradient. Tensor-parallel shards
 * are summed over the model's tp group; replicated tensors (identical on
 * every tp rank) count once; pipeline stages add theirs over the pp group,
 * the tied embedding counted once. */
double optimizer_grad_norm(const optimizer *opt, const model *mdl);

/* One AdamW step at learning rate lr given the gradient norm; refreshes
 * mdl->params. Returns the clip factor applied. */
double optimizer_step(optimizer *opt, model *mdl, double lr, double grad_norm);

#endif

/* optimizer — AdamW over the parameter registry, with global-norm clipping.
 *
 * The optimizer owns the fp32 master weights and the two Adam moments, laid
 * out like the flat parameter buffer. A step: the global gradient norm
 * ‖g‖ = sqrt(Σ g²) over every parameter; clipping scales g by
 * min(1, clip / (‖g‖ + 1e-6)); then AdamW per parameter tensor with
 * decoupled weight decay on the tensors the registry marks (matrices: wte, lm_head,
 * attention and MLP weights; never biases, norm gains or position
 * embeddings); then the compute weights are refreshed from the master copy.
 * Every data-parallel rank holds the same reduced gradient, so every rank
 * computes the same update.
 *
 * ZeRO (parallel/zero): the optimizer works on this rank's range of the
 * flat buffer (zero_partition; the whole buffer without ZeRO or without a
 * zero object): the fp32 master weights and Adam moments of that range
 * only, its gradient read where zero_range_grads says (the model's buffer,
 * or from stage 2 on the reduced shard), its compute weights written where
 * zero_range_params says, and zero_share_params makes every rank's weights
 * current. Every rank computes the same update of the same range it holds.
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
 *
 * Offload (--offload-optimizer, optimizer_offload.h): master, m and v of
 * the range live in host memory or a file instead of backend buffers
 * (master, m, v are then NULL); the step runs the CPU's AdamW on them
 * chunk by chunk and writes the compute weights; gather and load go
 * through the offloaded copy, so checkpoints do not see the difference.
 */
#ifndef TESSERA_OPTIMIZER_H
#define TESSERA_OPTIMIZER_H

#include <stdint.h>

#include "backend.h"
#include "model.h"
#include "optimizer_offload.h"
#include "zero.h"

typedef struct adamw_settings {
  double beta1, beta2, eps, weight_decay, grad_clip;
} adamw_settings;

typedef struct optimizer {
  const backend *be;
  adamw_settings settings;
  f32_t *master, *m, *v;   /* this rank's range only; NULL when offloaded */
  offload_state *offload;  /* --offload-optimizer: where the range's state lives instead, or NULL */
  size_t n_elems;          /* the whole flat buffer */
  zero *zero;              /* the run's ZeRO, or NULL (one rank's whole buffer) */
  comm *shard_group;       /* the group the ranges are cut over, or NULL */
  const zero_partition *part; /* this rank's range: [part->start, part->start + part->n_own) */
  zero_partition whole;    /* the range without a zero object */
  segment_table *update_segments; /* each tensor's part of the range, offsets from its start */
  segment_table *norm_segments;   /* what the gradient norm sums: offsets in the range's gradient
                                     (stage 2, 3) or in the model's gradient buffer */
  int64_t step;            /* optimizer steps taken */
} optimizer;

/* The state of the optimizer's range, by kind (checkpoints name them). */
typedef enum optimizer_state { OPT_MASTER, OPT_ADAM_M, OPT_ADAM_V, OPT_N_STATES } optimizer_state;

/* The master copy starts from host_init (the initialised parameters, whole
 * buffer). z: the run's ZeRO (parallel/zero), or NULL. */
/* The buffers of an optimizer owning n_own elements (its ZeRO range):
 * allocated, or only counted by a counting sizer (the planner). */
void optimizer_buffers(buffer_sizer *sizer, size_t n_own, f32_t **master, f32_t **m, f32_t **v);
void optimizer_create(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                      adamw_settings settings, zero *z);
/* The same with the range's state offloaded as `offload` asks
 * (optimizer_offload.h; NULL or OFFLOAD_NONE: on the backend). */
void optimizer_create_offloaded(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                                adamw_settings settings, zero *z, const offload_request *offload);
/* The host array of m (which 1) or v (2) when the state is host memory a
 * checkpoint load can read into; else NULL. */
float *optimizer_moment_host(const optimizer *opt, int which);

/* The whole buffer of one state in host (n_elems floats) on every rank of
 * the shard group, each range from its holder (collective over the group). */
void optimizer_gather(const optimizer *opt, optimizer_state which, float *host);
/* The same for every state host[i] that is not NULL (an offloaded state
 * is read from its file once for all three). */
void optimizer_gather_all(const optimizer *opt, float *const host[OPT_N_STATES]);
/* Restores the state from host copies of this rank's range only
 * (part->n_own floats each); step is the number of optimizer steps
 * already taken. A copy that is the optimizer's own buffer (its host_pointer: a
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
 * the compute weights (zero_share_params). Returns the clip factor applied. */
double optimizer_step(optimizer *opt, model *mdl, double lr, double grad_norm);

#endif

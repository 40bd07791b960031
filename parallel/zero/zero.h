/* zero — data parallelism's gradients and weights, ZeRO stages 0 to 3, in
 * one place (DESIGN.md principle 5).
 *
 * Every rank of the dp×sp group holds the same pipeline stage and computes
 * gradients on its own tokens; this module sums them over the group and,
 * from stage 1 on, shards what no rank needs whole (Rajbhandari et al.):
 *   stage 0  each rank all-reduces the whole flat gradient in buckets that
 *            start while the backward goes on (grad_sync) and updates every
 *            weight itself;
 *   stage 1  the optimizer keeps the fp32 master weights and Adam moments
 *            of its range only (zero_partition) and updates that range; the
 *            ranges are then all-gathered into every rank's compute weights;
 *   stage 2  also the gradient: a block's gradients exist in one of two
 *            windows only during its backward and are reduce-scattered into
 *            the ranges right after it (shard_sync); the embeddings' and final
 *            norm's, accumulated over the micro-batches, at the end;
 *   stage 3  also the compute weights: a block's weights are all-gathered
 *            into a window just before it runs, the next block's gather
 *            started meanwhile (param_gather); embeddings and final norm are
 *            kept whole and refetched after each update.
 * Who calls what, in a step: the trainer zero_begin_step; the model, as it
 * runs, zero_need_block before a block (stage 3) and, after a block's
 * backward, zero_window_reuse and zero_block_backward_done; the trainer,
 * once the schedule's backward passes are done, zero_finish_gradients —
 * one step as Megatron's finalize: the tied embedding summed between the
 * pipeline's ends, then the last buckets or ranges of the reduction; the
 * optimizer reads zero_range_grads, writes zero_range_params and calls
 * zero_share_params. The model's buffers are the model's; this module only
 * reads and fills them, and knows the model only as numbers (flat_layout).
 */
#ifndef TESSERA_ZERO_H
#define TESSERA_ZERO_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "buffer_sizer.h"
#include "comm.h"
#include "device_comm.h"
#include "grad_sync.h"
#include "param_gather.h"
#include "shard_sync.h"
#include "zero_partition.h"

/* The stage's flat parameter buffer as this module needs to know it: the
 * embeddings first, then n_blocks blocks of block_elems each, then the
 * final norm (and an untied output head). Under stage 2 and 3 the
 * embeddings and what follows the blocks ("outer" tensors) are kept whole,
 * back to back, in the model's buffers. */
typedef struct flat_layout {
  size_t n_elems;
  size_t blocks_start, block_elems;
  int n_blocks;
  /* the tied embedding, whose gradient the first and last pipeline stages
   * sum: its range in the flat buffer and the other end's pp rank (−1: this
   * stage does not share it, as with an untied head) */
  size_t tied_offset, tied_elems;
  int tied_peer;
} flat_layout;

/* [0, embeddings end) and [final norm start, n_elems). */
size_t flat_layout_embeddings_end(const flat_layout *l);
size_t flat_layout_final_norm_start(const flat_layout *l);
size_t flat_layout_block_start(const flat_layout *l, int block);

typedef struct zero_setup {
  int stage;              /* 0 to 3 */
  comm *group;            /* dp×sp: sums and shards */
  comm *pp;               /* the pipeline group (tied embedding), or NULL */
  const backend *be;
  flat_layout layout;
  act_t *grads;           /* the model's gradients: whole, or (stage 2, 3) outer tensors only */
  act_t *params;          /* the model's weights: whole, or (stage 3) outer tensors only */
  act_t *grad_windows[2]; /* stage 2, 3 */
  act_t *param_windows[2];/* stage 3 */
  const float *host_init; /* stage 3: the initial weights (whole buffer), for this rank's range */
  size_t bucket_elems;    /* stage 0, 1: all-reduce bucket size */
  buffer_sizer *sizer;    /* NULL: allocate; a counting sizer: count only (buffer_sizer.h) */
} zero_setup;

typedef struct zero {
  int stage;
  comm *group;
  comm *shard_group;      /* group when stage >= 1 and it has several ranks; else NULL */
  comm *pp;
  const backend *be;
  flat_layout layout;
  zero_partition part;    /* this rank's range; the whole buffer without sharding */
  act_t *grads, *params, *grad_windows[2], *param_windows[2];
  act_t *shard_grads;     /* stage 2, 3: the reduced gradient of this rank's range */
  act_t *compute_shard;   /* stage 3: the compute weights of this rank's range */
  act_t *tied_peer_grad;  /* the other end's tied-embedding gradient, or NULL */
  grad_sync buckets;      /* stage 0, 1 */
  shard_sync scatter;     /* stage 2, 3 */
  param_gather gather;    /* stage 3 */
} zero;

void zero_create(zero *z, const zero_setup *setup);
void zero_free(zero *z);

/* Where the optimizer reads this rank's range of the reduced gradient and
 * writes its range of the compute weights. */
const act_t *zero_range_grads(const zero *z);
act_t *zero_range_params(const zero *z);
/* Whether each rank holds only its range of the reduced gradient (stage 2, 3). */
bool zero_sharded_grads(const zero *z);

/* ---- a step ---- */
/* Before the first micro-batch: the range's gradient starts from zero. */
void zero_begin_step(zero *z);
/* Stage 3: block `block` (local index) must be in its window, block `next`
 * (−1: none) is fetched meanwhile. Nothing at other stages. */
void zero_need_block(zero *z, int block, int next);
/* Stage 2, 3: before the backward writes window w again, the reduction
 * reading it must be done. */
void zero_window_reuse(zero *z, int window);
/* A block's backward is done for this micro-batch: stage 2, 3 start
 * reducing its window into the ranges; stage 0, 1, when `final` (the
 * step's last backward through this block), start the buckets it completes. */
void zero_block_backward_done(zero *z, int block, bool final);
/* After the step's last backward: the tied embedding's sum over the
 * pipeline's ends, then the rest of the reduction, waited for. */
void zero_finish_gradients(zero *z);
/* After the optimizer wrote its range of the weights: every rank's compute
 * weights are made current (stage 1, 2: all-gather; stage 3: the outer
 * tensors refetched, the windows forgotten). */
void zero_share_params(zero *z);
/* Stage 3: the outer tensors refetched from the ranges (after a load). */
void zero_refetch_outer_params(zero *z);

#endif

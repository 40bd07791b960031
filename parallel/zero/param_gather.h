/* param_gather — ZeRO-3's just-in-time weights.
 *
 * In stage 3 each rank of the dp×sp group keeps the compute weights of its
 * own contiguous range of the flat parameter buffer only (the optimizer's
 * partition). Before a block runs, its flat range is all-gathered from the
 * ranges of every rank into a block-sized window; while that block computes,
 * the next block's gather runs non-blocking into the other window (the
 * prefetch DeepSpeed and FSDP use). The cache remembers which block each
 * window holds, so the backward's first block, still in its window from the
 * forward, is not fetched again; an optimizer step invalidates everything.
 * Shard and windows are the backend's buffers (act_t); parallel/comm/device_comm
 * moves them (host view, host copies or NCCL).
 */
#ifndef TESSERA_PARAM_GATHER_H
#define TESSERA_PARAM_GATHER_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "device_comm.h"
#include "zero_partition.h"

typedef struct param_window_state {
  int holds;        /* block in the window (or being fetched into it), −1: none */
  bool pending;     /* a non-blocking gather is in flight */
  dcomm_request request;
  int *counts, *displs;
} param_window_state;

typedef struct param_gather {
  comm *group;
  const backend *be;
  const int *shard_counts, *shard_displs;
  const act_t *shard; /* this rank's compute weights */
  param_window_state windows[2];
  int *range_counts, *range_displs; /* for blocking range gathers */
} param_gather;

void param_gather_create(param_gather *pg, comm *group, const backend *be, const zero_partition *ranges,
                         const act_t *shard);
void param_gather_free(param_gather *pg);
/* Block `layer` (flat range [start, start + n)) must be in `window` (dst). */
void param_gather_need(param_gather *pg, int window, int layer, act_t *dst, size_t start, size_t n);
/* Starts fetching block `layer` into `window` unless it is there already. */
void param_gather_prefetch(param_gather *pg, int window, int layer, act_t *dst, size_t start,
                           size_t n);
/* Blocking gather of a flat range into dst (the embeddings, the final norm). */
void param_gather_range(param_gather *pg, act_t *dst, size_t start, size_t n);
/* The weights changed: forget what the windows hold (waiting for fetches in flight). */
void param_gather_invalidate(param_gather *pg);

#endif

/* shard_sync — gradient reduce-scatter into ZeRO-2 shards.
 *
 * ZeRO stage 2 keeps no full gradient: each rank of the dp×sp group owns a
 * contiguous range of the flat parameter buffer (the optimizer's shards) and
 * accumulates the reduced gradient of that range only. A block's gradients
 * exist for one backward in a window; shard_sync_start reduce-scatters the
 * window's flat range [start, start + n) without blocking — each rank
 * receives the sum of the part that falls in its own shard — while the
 * backward goes on with the other window. shard_sync_finish waits for a
 * slot and adds what arrived into the shard gradient (the backend's
 * accumulate), after which the window may be reused. Two slots serve the
 * two windows; a third serves the blocking reductions of the embeddings and
 * the final norm. Buffers are the backend's (act_t); parallel/comm/device_comm
 * moves them (host view, host copies or NCCL).
 */
#ifndef TESSERA_SHARD_SYNC_H
#define TESSERA_SHARD_SYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "buffer_sizer.h"
#include "comm.h"
#include "device_comm.h"
#include "zero_partition.h"

#define SHARD_SYNC_SLOTS 3

typedef struct shard_slot {
  bool busy;
  dcomm_request request;
  int *counts;    /* elements each rank receives */
  act_t *recv;    /* what this rank receives */
  size_t recv_at; /* where it goes in the shard */
  size_t n_recv;
} shard_slot;

typedef struct shard_sync {
  comm *group;
  const backend *be;
  const int *shard_counts, *shard_displs; /* the optimizer's partition */
  act_t *shard_grads;                     /* this rank's accumulated gradient */
  shard_slot slots[SHARD_SYNC_SLOTS];
} shard_sync;

void shard_sync_create(shard_sync *ss, comm *group, buffer_sizer *sizer, const zero_partition *ranges,
                       act_t *shard_grads, size_t max_range_elems);
void shard_sync_free(shard_sync *ss);
/* Starts reducing data (the flat range [start, start + n)) on `slot`. */
void shard_sync_start(shard_sync *ss, int slot, const act_t *data, size_t start, size_t n_elems);
/* Waits for `slot` (if busy) and adds what arrived into the shard gradient. */
void shard_sync_finish(shard_sync *ss, int slot);
/* Blocking: start and finish on the last slot. */
void shard_sync_range(shard_sync *ss, const act_t *data, size_t start, size_t n_elems);

#endif

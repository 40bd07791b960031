/* shard_sync — see shard_sync.h. */
#include "shard_sync.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

void shard_sync_create(shard_sync *ss, comm *group, buffer_sizer *sizer, const zero_partition *ranges,
                       act_t *shard_grads, size_t max_range_elems) {
  memset(ss, 0, sizeof *ss);
  ss->group = group;
  ss->be = sizer->be;
  ss->shard_counts = ranges->counts;
  ss->shard_displs = ranges->displs;
  ss->shard_grads = shard_grads;
  const size_t own = (size_t)ranges->counts[group->rank];
  for (int s = 0; s < SHARD_SYNC_SLOTS; s++) {
    ss->slots[s].counts = xcalloc((size_t)group->size, sizeof(int), "reduce-scatter counts");
    ss->slots[s].recv =
        sizer_act(sizer, (own < max_range_elems ? own : max_range_elems) + 1, MEMORY_OTHER, "reduce-scatter buffer");
  }
}

void shard_sync_free(shard_sync *ss) {
  for (int s = 0; s < SHARD_SYNC_SLOTS; s++) {
    free(ss->slots[s].counts);
    if (ss->slots[s].recv) ss->be->free_buffer(ss->slots[s].recv);
  }
  memset(ss, 0, sizeof *ss);
}

void shard_sync_start(shard_sync *ss, int slot, const act_t *data, size_t start, size_t n_elems) {
  shard_slot *sl = &ss->slots[slot];
  ENSURE(!sl->busy, "shard_sync slot %d reused before it finished", slot);
  const size_t end = start + n_elems;
  /* rank r receives the part of [start, end) inside its shard; the parts lie
   * in rank order because the shards do */
  for (int r = 0; r < ss->group->size; r++) {
    size_t lo = (size_t)ss->shard_displs[r], hi = lo + (size_t)ss->shard_counts[r];
    if (lo < start) lo = start;
    if (hi > end) hi = end;
    sl->counts[r] = hi > lo ? (int)(hi - lo) : 0;
  }
  const size_t own_lo = (size_t)ss->shard_displs[ss->group->rank];
  sl->recv_at = start > own_lo ? start - own_lo : 0;
  sl->n_recv = (size_t)sl->counts[ss->group->rank];
  dcomm_reduce_scatter_sum_act_start(ss->group, ss->be, data, sl->recv, sl->counts, &sl->request);
  sl->busy = true;
}

void shard_sync_finish(shard_sync *ss, int slot) {
  shard_slot *sl = &ss->slots[slot];
  if (!sl->busy) return;
  dcomm_wait(&sl->request);
  if (sl->n_recv) ss->be->accumulate(act_at(ss->be, ss->shard_grads, sl->recv_at), sl->recv, sl->n_recv);
  sl->busy = false;
}

void shard_sync_range(shard_sync *ss, const act_t *data, size_t start, size_t n_elems) {
  shard_sync_start(ss, SHARD_SYNC_SLOTS - 1, data, start, n_elems);
  shard_sync_finish(ss, SHARD_SYNC_SLOTS - 1);
}

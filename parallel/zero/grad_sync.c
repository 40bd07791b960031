/* grad_sync — see grad_sync.h. */
#include "grad_sync.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

void grad_sync_create(grad_sync *gs, comm *group, const backend *be, act_t *grads, size_t n_elems,
                      size_t bucket_elems) {
  memset(gs, 0, sizeof *gs);
  gs->group = group;
  gs->be = be;
  gs->grads = grads;
  gs->n_elems = n_elems;
  if (bucket_elems == 0) bucket_elems = n_elems;
  gs->n_buckets = (int)((n_elems + bucket_elems - 1) / bucket_elems);
  if (gs->n_buckets == 0) gs->n_buckets = 1;
  /* bucket b covers [lo_b, hi_b) with hi_0 = n_elems: stored as start[b] = hi_b,
   * start[b+1] = lo_b, counting down. */
  gs->bucket_start = xmalloc(((size_t)gs->n_buckets + 1) * sizeof(size_t), "gradient buckets");
  for (int b = 0; b <= gs->n_buckets; b++) {
    size_t from_end = (size_t)b * bucket_elems;
    gs->bucket_start[b] = from_end >= n_elems ? 0 : n_elems - from_end;
  }
  gs->requests = xcalloc((size_t)gs->n_buckets, sizeof *gs->requests, "gradient requests");
}

void grad_sync_free(grad_sync *gs) {
  free(gs->bucket_start);
  free(gs->requests);
  memset(gs, 0, sizeof *gs);
}

static void start_bucket(grad_sync *gs, int b) {
  size_t lo = gs->bucket_start[b + 1], hi = gs->bucket_start[b];
  dcomm_allreduce_sum_act_start(gs->group, gs->be, act_at(gs->be, gs->grads, lo), hi - lo, &gs->requests[b]);
}

void grad_sync_ready_from(grad_sync *gs, size_t offset) {
  if (gs->group->size == 1) return;
  while (gs->n_started < gs->n_buckets && gs->bucket_start[gs->n_started + 1] >= offset)
    start_bucket(gs, gs->n_started++);
  dcomm_poke(gs->requests, gs->n_started);
}

void grad_sync_finish(grad_sync *gs) {
  if (gs->group->size == 1) return;
  while (gs->n_started < gs->n_buckets) start_bucket(gs, gs->n_started++);
  for (int b = 0; b < gs->n_buckets; b++) dcomm_wait(&gs->requests[b]);
  gs->n_started = 0;
}

/* param_gather — see param_gather.h. */
#include "param_gather.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

void param_gather_create(param_gather *pg, comm *group, const backend *be, const zero_partition *ranges,
                         const act_t *shard) {
  memset(pg, 0, sizeof *pg);
  pg->group = group;
  pg->be = be;
  pg->shard_counts = ranges->counts;
  pg->shard_displs = ranges->displs;
  pg->shard = shard;
  const size_t n = (size_t)group->size;
  for (int w = 0; w < 2; w++) {
    pg->windows[w].holds = -1;
    pg->windows[w].counts = xcalloc(n, sizeof(int), "gather counts");
    pg->windows[w].displs = xcalloc(n, sizeof(int), "gather counts");
  }
  pg->range_counts = xcalloc(n, sizeof(int), "gather counts");
  pg->range_displs = xcalloc(n, sizeof(int), "gather counts");
}

void param_gather_free(param_gather *pg) {
  param_gather_invalidate(pg);
  for (int w = 0; w < 2; w++) {
    free(pg->windows[w].counts);
    free(pg->windows[w].displs);
  }
  free(pg->range_counts);
  free(pg->range_displs);
  memset(pg, 0, sizeof *pg);
}

/* Starts gathering [start, start + n) into dst: rank r contributes the part
 * of its range inside it, at its place relative to start. */
static void start_gather(param_gather *pg, act_t *dst, size_t start, size_t n, int *counts,
                         int *displs, dcomm_request *req) {
  const size_t end = start + n;
  for (int r = 0; r < pg->group->size; r++) {
    size_t lo = (size_t)pg->shard_displs[r], hi = lo + (size_t)pg->shard_counts[r];
    if (lo < start) lo = start;
    if (hi > end) hi = end;
    counts[r] = hi > lo ? (int)(hi - lo) : 0;
    displs[r] = hi > lo ? (int)(lo - start) : 0;
  }
  const int me = pg->group->rank;
  const size_t own_lo = (size_t)pg->shard_displs[me];
  const act_t *send = act_at(pg->be, pg->shard, start > own_lo ? start - own_lo : 0);
  dcomm_allgatherv_act_start(pg->group, pg->be, send, counts[me], dst, counts, displs, req);
}

void param_gather_prefetch(param_gather *pg, int window, int layer, act_t *dst, size_t start,
                           size_t n) {
  param_window_state *w = &pg->windows[window];
  if (w->holds == layer) return;
  ENSURE(!w->pending, "parameter window %d refilled while a fetch is in flight", window);
  start_gather(pg, dst, start, n, w->counts, w->displs, &w->request);
  w->holds = layer;
  w->pending = true;
}

void param_gather_need(param_gather *pg, int window, int layer, act_t *dst, size_t start, size_t n) {
  param_window_state *w = &pg->windows[window];
  if (w->holds != layer) {
    if (w->pending) dcomm_wait(&w->request); /* a fetch of another block: let it land first */
    w->pending = false;
    param_gather_prefetch(pg, window, layer, dst, start, n);
  }
  if (w->pending) {
    dcomm_wait(&w->request);
    w->pending = false;
  }
}

void param_gather_range(param_gather *pg, act_t *dst, size_t start, size_t n) {
  dcomm_request req;
  start_gather(pg, dst, start, n, pg->range_counts, pg->range_displs, &req);
  dcomm_wait(&req);
}

void param_gather_invalidate(param_gather *pg) {
  for (int w = 0; w < 2; w++) {
    if (pg->windows[w].pending) dcomm_wait(&pg->windows[w].request);
    pg->windows[w].pending = false;
    pg->windows[w].holds = -1;
  }
}

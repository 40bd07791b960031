/* weights_load — see weights_load.h. */
#include "weights_load.h"

#include "comm.h"
#include "fail.h"

void weights_fail_if_any_rank_failed(grid *g, int status, char *err, size_t err_bytes, const char *fallback) {
  int64_t failing[2] = {status ? g->world_size - g->world_rank : 0, status};
  comm_allreduce_max_i64(&g->world, failing, 2);
  if (!failing[0]) return;
  comm_broadcast(&g->world, err, err_bytes, g->world_size - (int)failing[0]);
  fail_collective((int)failing[1], "%s", err[0] ? err : fallback);
}

float *weights_load(grid *g, const registry *reg, const zero_partition *ranges, weights_range_reader read, void *ctx,
                    const char *fallback) {
  const size_t n = reg->n_local_total;
  comm *replicas = &g->dp_sp;
  zero_partition split;
  if (!ranges) zero_partition_make(&split, n, replicas->size, replicas->rank);
  const zero_partition *share = ranges ? ranges : &split;
  float *weights = xcalloc(n ? n : 1, sizeof *weights, "weights");
  char err[MESSAGE_BYTES] = "";
  const int status = read(ctx, reg, share->start, share->start + share->n_own, weights, err, sizeof err);
  weights_fail_if_any_rank_failed(g, status, err, sizeof err, fallback);
  if (replicas->size > 1) comm_allgatherv_inplace_f32(replicas, weights, share->counts, share->displs);
  if (!ranges) zero_partition_free(&split);
  return weights;
}

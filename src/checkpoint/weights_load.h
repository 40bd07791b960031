/* weights_load — weights only into a model in any layout, whatever they
 * are read from: the one loader of `tessera eval` (checkpoint_load_weights,
 * a tessera checkpoint's tiles) and `train --init-from` (model_init_from,
 * any model_io source).
 *
 * The dp×sp replicas of a tp shard need the same weights: each fills a
 * disjoint range of the shard's flat buffer (their ZeRO range, or the split
 * ZeRO would make), so each byte is read once per replica group, and an
 * all-gather over the replicas completes the weights.
 */
#ifndef TESSERA_WEIGHTS_LOAD_H
#define TESSERA_WEIGHTS_LOAD_H

#include <stddef.h>

#include "grid.h"
#include "registry.h"
#include "zero_partition.h"

/* Fills elements [lo, hi) of `weights` (the whole flat buffer of this
 * rank's tp shard, laid out by reg). 0, or the exit status with err. */
typedef int (*weights_range_reader)(void *ctx, const registry *reg, size_t lo, size_t hi, float *weights, char *err,
                                    size_t err_bytes);

/* Collective over the world. `ranges`: the replicas' ranges (NULL: the
 * even split over g->dp_sp). Returns the completed flat buffer
 * (reg->n_local_total floats; the caller frees it). A rank whose read
 * fails ends the job as weights_fail_if_any_rank_failed says. */
float *weights_load(grid *g, const registry *reg, const zero_partition *ranges, weights_range_reader read, void *ctx,
                    const char *fallback);

/* Collective over the world: when any rank's status is non-zero, the job
 * ends with the lowest failing rank's message (a damaged tile may lie in
 * one rank's range only) and the largest status; `fallback` is the message
 * when that rank's err is empty. */
void weights_fail_if_any_rank_failed(grid *g, int status, char *err, size_t err_bytes, const char *fallback);

#endif

/* state_gather — bringing the state of every pipeline stage's tp shards to
 * one writer, world rank 0. The single-writer save (serial HDF5, or
 * --async-save) stages its weights and moments this way; the parameter
 * dump (`--dump_params`, which the layout tests compare) too.
 */
#ifndef TESSERA_STATE_GATHER_H
#define TESSERA_STATE_GATHER_H

#include "grid.h"
#include "model.h"
#include "optimizer.h"
#include "registry.h"

/* Collective over the first replica's (dp and sp rank 0) tp and pp groups;
 * other ranks return at once. For each tensor k of `whole` (the whole
 * model's registry, in flat order, with this rank's tp sharding) and each
 * of n_states buffers: the stage that owns it (owner[k], model_owner_stages)
 * gathers its tp shards from local[st] (this rank's flat buffer of its
 * stage, model registry order) and world rank 0 receives them into
 * into[st] at tp·offset_k, shard r of a split tensor at tp·offset_k +
 * r·n_local (into: tp × whole->n_local_total floats, rank 0 only). scratch:
 * tp × the largest tensor's n_local floats on the other ranks of the first
 * replica when tp > 1 (the tp gather's destination there), else NULL. */
void ckpt_gather_shards(grid *g, const model *m, const registry *whole, const int *owner, int n_states,
                        float *const *local, float *const *into, float *scratch);

/* Largest n_local of the registry's tensors. */
size_t ckpt_largest_tensor(const registry *reg);

/* Writes the logical model — every parameter in the whole model's registry
 * order, each in its logical row-major layout, fp32 master weights, without
 * tp padding — to one raw file at path (world rank 0 writes). Collective
 * over the world. */
void checkpoint_dump_parameters(const char *path, grid *g, const model *m, const optimizer *opt);

#endif

/* layout_rules — whether a layout can run a model: the checks `train` (and
 * `eval`, and `plan` for every layout it considers) apply before any rank
 * builds anything. Pure (no MPI): each returns 0, or EXIT_USER_ERROR with
 * one line in err naming the option to change; the commands report it
 * through fail_collective, the planner drops the layout.
 */
#ifndef TESSERA_LAYOUT_RULES_H
#define TESSERA_LAYOUT_RULES_H

#include <stddef.h>

#include "config.h"
#include "grid.h"

/* The layout (--tp, --pp, --sp, --tp-seq-shard, --sp-kind) against the world
 * size and the model: whole heads and MLP columns per tp rank, sequences in
 * whole sp chunks. Sets *shape (dp = world / (tp·pp·sp)). */
int layout_rules_grid(const config *cfg, const model_shape *arch, int world_size, grid_shape *shape, char *err,
                      size_t err_bytes);

/* The global batch in whole micro-batches on each of dp ranks. */
int layout_rules_batch(const config *cfg, int dp, char *err, size_t err_bytes);

/* The pipeline: its schedule and the split of the layers over the stages
 * (pipeline_plan_make), and ZeRO's pairing with it. */
int layout_rules_pipeline(const config *cfg, const model_shape *arch, int dp, char *err, size_t err_bytes);

#endif

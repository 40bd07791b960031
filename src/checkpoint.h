/* checkpoint — saving and resuming the logical model (DESIGN.md principle 6).
 *
 * A save writes DIR/step_NNNNNNNN.h5 under a temporary name, closes it,
 * renames it into place and only then points DIR/latest at it, so a crash at
 * any moment leaves the previous checkpoint usable. The file holds every
 * parameter's fp32 master weights and Adam moments in their logical shapes
 * (io/checkpoint_file.h, doc/checkpoint-format.md), written once: by the
 * first data-parallel replica's tp ranks, each its own hyperslab, with
 * parallel HDF5 (collective I/O); with serial HDF5, world rank 0 writes every
 * tp rank's hyperslab. A resume reads in any layout: each rank reads its own
 * tp shard's hyperslabs and keeps its ZeRO range. Training continues exactly
 * (the data order and learning rate are pure functions of the step).
 * Test hook: TESSERA_FAULT_SAVE="RANK:STEP" kills a rank halfway through a
 * save, to show that the previous checkpoint survives.
 */
#ifndef TESSERA_CHECKPOINT_H
#define TESSERA_CHECKPOINT_H

#include <stdint.h>

#include "config.h"
#include "grid.h"
#include "model.h"
#include "optimizer.h"

typedef struct checkpoint_stats {
  double bytes, seconds;
} checkpoint_stats;

/* Collective over the world: saves the state after `step` into cfg->save_dir. */
checkpoint_stats checkpoint_save(const config *cfg, grid *g, model *m, optimizer *opt, int64_t step);

/* Collective: resolves cfg->resume ("auto": DIR/latest, else the newest
 * complete file; a damaged newest one is reported and skipped), checks the
 * model shape, loads weights and optimizer state. Returns the step saved, or
 * 0 when "auto" finds no checkpoint (a fresh start). Errors: one message,
 * exit 1 (missing path, other model shape) or 2 (damaged file). */
int64_t checkpoint_resume(const config *cfg, grid *g, model *m, optimizer *opt);

#endif

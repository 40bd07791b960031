/* pipeline_plan — from the configuration to a pipeline: which layers each
 * chunk holds (explicit --pp-layers or balanced by compute) and the schedule
 * of the step's micro-batches. Pure (no MPI), so every rank reaches the same
 * plan and the same verdict on a request that cannot run.
 */
#ifndef TESSERA_PIPELINE_PLAN_H
#define TESSERA_PIPELINE_PLAN_H

#include <stddef.h>

#include "config.h"
#include "model.h"
#include "pipeline_schedule.h"

typedef struct pipeline_plan {
  int stages, chunks_per_stage, micro_batches;
  int layers_per_chunk[MODEL_MAX_CHUNKS * 16]; /* global chunk order */
  pipe_schedule schedule;
} pipeline_plan;

/* The pipeline keys of cfg for the model `shape`; dp gives the
 * micro-batches per step: batch_size / (dp · micro_batch_size).
 * 0, or EXIT_USER_ERROR with one line in err naming the option to change. */
int pipeline_plan_make(pipeline_plan *plan, const config *cfg, const model_shape *shape, int dp, char *err,
                       size_t err_bytes);
void pipeline_plan_free(pipeline_plan *plan);

/* The layers stage s holds: its chunks g = c·p + s. */
model_stage pipeline_plan_stage(const pipeline_plan *plan, int stage);

#endif

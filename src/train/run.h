/* run — everything one `tessera train` job holds, built and freed in one
 * place.
 *
 * run_create puts the parts together in the order they depend on each
 * other: the grid of process groups (parallel/comm), the backend and its
 * communication path, the data, the pipeline plan, this stage of the model,
 * its initial weights, the data-parallel sync (parallel/zero), the
 * optimizer, the pipeline runtime, a resumed checkpoint if asked, the
 * metrics file, the peak FLOP/s for MFU. Every step of that is collective
 * and every refusal is one message from rank 0 (fail_collective). The loop
 * (train_loop.h) and the reports (report.h) read the parts; trainer.c runs
 * them.
 */
#ifndef TESSERA_RUN_H
#define TESSERA_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "backend_select.h"
#include "batch_loader.h"
#include "config.h"
#include "data_tokenizer.h"
#include "grid.h"
#include "metrics.h"
#include "model.h"
#include "optimizer.h"
#include "pipeline.h"
#include "pipeline_plan.h"
#include "profile.h"
#include "progress.h"
#include "runtime.h"
#include "token_dataset.h"
#include "zero.h"

typedef struct run {
  const config *cfg;
  model_shape shape;          /* derived once from cfg (config_model_shape) */
  const runtime *rt;
  const backend *be;
  backend_selection devices;  /* the backend, its device and the comm path */
  grid grid;
  pipeline_plan plan;         /* the layers of each pipeline chunk and the step's schedule */
  model mdl;                  /* this rank's stage */
  zero zero;                  /* gradient sums and ZeRO shards over dp×sp */
  optimizer opt;
  pipeline pipe;              /* runs the schedule on this stage (one stage: plain accumulation) */
  profile *profile;           /* --profile, or NULL */
  token_dataset train_ds, val_ds;
  bool separate_val;          /* val_ds is open (--val-data) */
  data_tokenizer data_tok;    /* what the data was made with: checkpoints carry it, samples use it */
  batch_loader loader;
  int accum_steps;            /* micro-batches per step on this rank */
  int32_t *inputs, *targets;  /* the step's micro-batches: this rank's tokens of each */
  int32_t *loaded_inputs, *loaded_targets; /* one micro-batch of whole sequences, M × T */
  int64_t resumed_step;       /* the checkpoint's step, or 0 for a fresh start */
  double peak_flops_total;    /* over all ranks, for MFU */
  metrics mx;                 /* rank 0's metrics file */
  progress pg;                /* rank 0's terminal */
} run;

/* Collective over the world. */
run *run_create(const config *cfg, const model_shape *shape, const runtime *rt);
/* Collective over the world: the parts an evaluation needs (grid, backend,
 * plan, this stage of the model, the pipeline), the weights of checkpoint
 * `ckpt` (checkpoint_load_weights) and, when cfg->val_data is set, that
 * dataset whole as the validation split. No optimizer, no ZeRO (cfg->zero
 * must be 0), no metrics file; resumed_step is the checkpoint's step. */
run *run_create_for_eval(const config *cfg, const model_shape *shape, const runtime *rt, const char *ckpt);
void run_free(run *r);

/* The last step this invocation trains (--steps, or --stop-at-step earlier). */
int64_t run_last_step(const run *r);

#endif

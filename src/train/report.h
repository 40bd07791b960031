/* report — what a run tells its user, on the terminal (rank 0's lines and
 * progress bar) and in the metrics file (one JSON object per line, keys in
 * doc/user-guide.md):
 *   report_start       the build, model, layout, batch, data, memory per rank
 *                      and stage, the MFU peak; the "start" record
 *   report_step        a step's loss, lr, grad norm, tokens/s, MFU, time and
 *                      the bytes each group carried
 *   report_validation  a validation loss
 *   report_checkpoint  a finished save: bytes, seconds, GB/s and where the time went
 *   report_end         the summary line, the pipeline bubble, the
 *                      communication and profile tables; the "end" record
 * report_step and report_checkpoint also add to the totals report_end prints.
 */
#ifndef TESSERA_REPORT_H
#define TESSERA_REPORT_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "grid.h"
#include "run.h"
#include "train_loop.h"

/* Bytes per rank by kind, counted as the backends allocated them
 * (kernels/memory_tally.h; DESIGN.md principle 5: doc/design.md has the
 * formulas per ZeRO stage, which the tests hold these counts to). "other":
 * communication buffers, token ids, scratch and workspaces. */
typedef struct memory_report {
  size_t weight_bytes, grad_bytes, optimizer_bytes, activation_bytes, other_bytes;
  size_t offloaded_bytes; /* host RAM of the offloaded optimizer state (memory_tally.h), not in the others */
} memory_report;

/* Bytes and seconds of every group's collectives so far. */
typedef struct comm_totals {
  uint64_t bytes[GRID_N_GROUPS];
  double seconds[GRID_N_GROUPS];
} comm_totals;

/* What the end of the run summarises. */
typedef struct run_totals {
  int64_t steps_run;
  double train_seconds;
  double last_loss, last_val_loss;
  double bubble_sum;       /* measured pipeline bubble, over the steps after the first (warm-up) */
  int bubble_steps;
  comm_totals comm_before; /* at the start of the current step */
  memory_report memory;
  int saves;               /* checkpoints written */
  double save_bytes, save_seconds, save_blocking_seconds;
} run_totals;

/* This rank's memory by kind. */
memory_report run_memory(const run *r);

/* Collective over the world (memory per pipeline stage). */
void report_start(run *r, run_totals *totals);
void report_step(run *r, run_totals *totals, int64_t step, const step_result *res);
void report_validation(run *r, run_totals *totals, int64_t step, double val_loss);
/* `where`: "" or " in the background". */
void report_checkpoint(run *r, run_totals *totals, const checkpoint_stats *st, const char *where);
/* Collective over the world (peak resident memory). */
/* final_step: the last step trained (the schedule's end, or where a signal
 * stopped the run); the summary counts the steps this process ran. */
void report_end(run *r, const run_totals *totals, int64_t final_step);

/* Resets the step's communication baseline (after validation, samples,
 * saves: they are not the step's traffic). */
void report_mark_comm(run *r, run_totals *totals);

#endif

/* trainer — the training loop of `tessera train` (data parallelism over MPI).
 *
 * One step: every rank loads its slice of the global batch (batch_loader),
 * the step's token ids are checked against the vocabulary collectively,
 * micro-batches run forward+backward accumulating gradients, the last
 * micro-batch's backward starts the bucketed gradient all-reduce as blocks
 * finish (grad_sync), then the global gradient norm, clipping and AdamW.
 * Rank 0 reports the step (stdout, progress line, metrics file); validation
 * and samples run every N steps and at the end; a summary closes the run.
 */
#ifndef TESSERA_TRAINER_H
#define TESSERA_TRAINER_H

#include "config.h"
#include "runtime.h"

/* Runs the whole training job described by cfg; returns the exit status. */
int trainer_run(const config *cfg, const runtime *rt);

#endif

/* train_loop — one training step, a validation pass and a sample, on a
 * built run (run.h).
 *
 * A step: every rank loads its slice of the global batch (batch_loader) and
 * keeps its sequence pieces; the token ids are checked against the
 * vocabulary collectively; the pipeline runs the schedule's micro-batches,
 * forward and backward, accumulating gradients, while parallel/zero starts
 * reducing each chunk's gradients during its last backward;
 * zero_finish_gradients completes the reduction; then the global gradient
 * norm, clipping and the AdamW update (optimizer), whose new weights
 * parallel/zero shares again.
 */
#ifndef TESSERA_TRAIN_LOOP_H
#define TESSERA_TRAIN_LOOP_H

#include <stdint.h>

#include "run.h"

typedef struct step_result {
  double loss, grad_norm, lr, seconds;
  double bubble; /* measured idle share of the pipeline, mean over stages */
} step_result;

/* Collective: optimizer step `step` (counted from 1). */
step_result train_step(run *r, int64_t step);

/* Collective: the mean loss over the first val_sequences validation
 * sequences (NAN when there are none). */
double validate(run *r);

/* Collective over the replicas that take part: a sample of
 * sample_tokens from sample_prompt, printed by world rank 0. */
void print_sample(run *r, int64_t step);

#endif

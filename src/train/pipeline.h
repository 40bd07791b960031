/* pipeline — runs a pipeline schedule on this stage (DESIGN.md principle 3).
 *
 * A schedule (parallel/pipeline/pipeline_schedule) lists this stage's forward and
 * backward ops on (micro-batch, local chunk); this runtime executes any
 * such list. Chunk g of the p·V global chunks lives on stage g mod p, so
 * the forward of g receives from stage (g−1) mod p and sends to (g+1) mod p
 * over the pp group, and the backward the other way. Shapes are known in
 * advance: only the tensors travel (this rank's rows × d_model floats).
 *
 * Slots: before the first step the schedule is played through once to give
 * each (micro-batch, chunk) in flight a model slot (model.h) — the lowest
 * free one when its forward runs, freed by its backward — so no more slots
 * than the schedule's in-flight maximum exist. Receives are posted
 * non-blocking as early as their slot allows, in op order (messages of one
 * chunk and direction travel in micro-batch order, which MPI's
 * non-overtaking rule pairs with the receives); sends are non-blocking and
 * waited for only before their buffer is written again. Activations move
 * through parallel/comm/device_comm: on a GPU a receive lands in a host copy and
 * reaches the slot at its wait, and a send's host copy lives until its wait
 * (the pp group has no NCCL communicator: grid.h says why).
 *
 * The bubble: each op's compute time is summed; what the stage spends
 * otherwise in a step is waiting. measured bubble = 1 − busy / step time,
 * averaged over the stages, beside the formula (p−1)/(V·m + p−1).
 */
#ifndef TESSERA_PIPELINE_H
#define TESSERA_PIPELINE_H

#include <stdbool.h>

#include "comm.h"
#include "device_comm.h"
#include "model.h"
#include "pipeline_schedule.h"

typedef struct pipeline {
  model *m;
  comm *pp;              /* NULL or size 1: one stage */
  const pipe_schedule *schedule;
  int stage, stages, chunks_per_stage;
  int n_ops;
  const pipe_op *ops;
  int *op_slot;          /* the slot each op runs on */
  int *post_after;       /* op i's receive may be posted once op post_after[i] ran (−1: at once) */
  int *last_backward;    /* per local chunk: the index of its last backward op */
  int n_slots;
  dcomm_request *receives; /* per op */
  bool *receive_posted;
  dcomm_request *forward_sends; /* per slot: the chunk output it sends */
  bool *forward_sending;
  dcomm_request backward_send;  /* the input gradient (model_input_grad) */
  bool backward_sending;
  double busy_seconds, step_seconds; /* of the last step on this stage */
} pipeline;

/* The most slots the schedule needs on `stage` (plan before model_create). */
int pipeline_slots_needed(const pipe_schedule *schedule, int stage);

/* m must have at least pipeline_slots_needed slots. pp may be NULL. */
void pipeline_create(pipeline *pl, model *m, comm *pp, const pipe_schedule *schedule);
void pipeline_free(pipeline *pl);

/* One training step: the schedule's m micro-batches (inputs/targets hold
 * them back to back: this rank's B·model_local_tokens(T) ids of each, in
 * its row order). Gradients accumulate in the model; each chunk's last
 * backward is marked final, so parallel/zero may start reducing its
 * gradients then (zero_finish_gradients completes them after the step).
 * Returns this stage's loss sum (0 except on the last stage). */
double pipeline_train_step(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T,
                           float dloss_scale);

/* Forward only through every stage in turn (slot 0): the loss sum, on every
 * stage (collective over pp). */
double pipeline_forward_loss(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T);

/* Forward only, like pipeline_forward_loss, keeping every token's loss:
 * losses[b·T + t] (B·T floats, the B whole sequences' positions, not this
 * rank's rows) on every rank of the pipeline (collective over pp and sp). */
void pipeline_forward_token_losses(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T,
                                   float *losses);

/* The logits of position T−1 of one sequence, on every stage (a
 * sampler_logits_fn; context is the pipeline). */
void pipeline_last_logits(void *context, const int32_t *tokens, int T, float *logits);

/* The mean over stages of the last step's measured bubble (collective over pp). */
double pipeline_measured_bubble(pipeline *pl);

#endif

/* pipeline — see pipeline.h. */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "progress.h"

/* Tags: the activation entering global chunk g travels with tag 2g, the
 * gradient of chunk g's output with tag 2g + 1. */
static int forward_tag(int g) { return 2 * g; }
static int backward_tag(int g) { return 2 * g + 1; }

static int global_chunk(const pipeline *pl, int local_chunk) { return local_chunk * pl->stages + pl->stage; }
static int last_global_chunk(const pipeline *pl) { return pl->stages * pl->chunks_per_stage - 1; }
static int next_stage(const pipeline *pl) { return (pl->stage + 1) % pl->stages; }
static int previous_stage(const pipeline *pl) { return (pl->stage + pl->stages - 1) % pl->stages; }

/* Whether op i waits for a message: a forward for the activation of the
 * chunk before, a backward for the gradient from the chunk after. */
static bool receives(const pipeline *pl, int i) {
  const int g = global_chunk(pl, pl->ops[i].chunk);
  return pl->ops[i].backward ? g < last_global_chunk(pl) : g > 0;
}

/* Plays the stage's ops once, giving each forward the lowest free slot and
 * freeing it at the backward. post_after (may be NULL) gets, for each op,
 * the op that last freed its slot. Returns the slots used. */
static int assign_slots(const pipe_schedule *s, int stage, int *op_slot, int *post_after) {
  const int n = s->n_ops[stage], V = s->virtual_chunks, m = s->micro_batches;
  int *slot_of = xmalloc((size_t)m * V * sizeof *slot_of, "pipeline slots");
  int *freed_by = xmalloc((size_t)n * sizeof *freed_by, "pipeline slots"); /* per slot */
  bool *busy = xcalloc((size_t)n, sizeof *busy, "pipeline slots");
  int used = 0;
  for (int x = 0; x < n; x++) freed_by[x] = -1;
  for (int i = 0; i < n; i++) {
    const pipe_op op = s->ops[stage][i];
    const int key = op.micro * V + op.chunk;
    int x;
    if (!op.backward) {
      for (x = 0; busy[x]; x++) {}
      busy[x] = true;
      slot_of[key] = x;
      if (x + 1 > used) used = x + 1;
    } else {
      x = slot_of[key];
    }
    if (op_slot) op_slot[i] = x;
    if (post_after) post_after[i] = freed_by[x];
    if (op.backward) busy[x] = false, freed_by[x] = i;
  }
  free(slot_of);
  free(freed_by);
  free(busy);
  return used;
}

int pipeline_slots_needed(const pipe_schedule *schedule, int stage) {
  return assign_slots(schedule, stage, NULL, NULL);
}

void pipeline_create(pipeline *pl, model *m, comm *pp, const pipe_schedule *schedule) {
  memset(pl, 0, sizeof *pl);
  pl->m = m;
  pl->pp = pp && pp->size > 1 ? pp : NULL;
  pl->schedule = schedule;
  pl->stage = pl->pp ? pp->rank : 0;
  pl->stages = schedule->stages;
  ENSURE(pl->stages == (pl->pp ? pp->size : 1), "a schedule of %d stages on a pipeline group of %d",
         pl->stages, pl->pp ? pp->size : 1);
  pl->chunks_per_stage = schedule->virtual_chunks;
  ENSURE(pl->chunks_per_stage == m->layout.stage.n_chunks, "a schedule of %d chunks per stage for a model of %d",
         pl->chunks_per_stage, m->layout.stage.n_chunks);
  pl->n_ops = schedule->n_ops[pl->stage];
  pl->ops = schedule->ops[pl->stage];
  pl->op_slot = xmalloc((size_t)pl->n_ops * sizeof *pl->op_slot, "pipeline plan");
  pl->post_after = xmalloc((size_t)pl->n_ops * sizeof *pl->post_after, "pipeline plan");
  pl->n_slots = assign_slots(schedule, pl->stage, pl->op_slot, pl->post_after);
  ENSURE(pl->n_slots <= m->acts.n_slots, "the schedule needs %d activation slots, the model has %d", pl->n_slots,
         m->acts.n_slots);
  pl->last_backward = xmalloc((size_t)pl->chunks_per_stage * sizeof *pl->last_backward, "pipeline plan");
  for (int i = 0; i < pl->n_ops; i++)
    if (pl->ops[i].backward) pl->last_backward[pl->ops[i].chunk] = i;
  pl->receives = xcalloc((size_t)pl->n_ops, sizeof *pl->receives, "pipeline requests");
  pl->receive_posted = xcalloc((size_t)pl->n_ops, sizeof *pl->receive_posted, "pipeline requests");
  pl->forward_sends = xcalloc((size_t)pl->n_slots, sizeof *pl->forward_sends, "pipeline requests");
  pl->forward_sending = xcalloc((size_t)pl->n_slots, sizeof *pl->forward_sending, "pipeline requests");
}

void pipeline_free(pipeline *pl) {
  free(pl->op_slot);
  free(pl->post_after);
  free(pl->last_backward);
  free(pl->receives);
  free(pl->receive_posted);
  free(pl->forward_sends);
  free(pl->forward_sending);
  memset(pl, 0, sizeof *pl);
}

/* Posts, in op order, every receive whose slot is free by now (ops before
 * `done` have run); stops at the first that must wait. */
static void post_receives(pipeline *pl, int *next_post, int done, size_t boundary) {
  for (; *next_post < pl->n_ops; (*next_post)++) {
    const int i = *next_post;
    if (!receives(pl, i)) continue;
    if (pl->post_after[i] >= done) return;
    const pipe_op op = pl->ops[i];
    const int g = global_chunk(pl, op.chunk), x = pl->op_slot[i];
    if (op.backward)
      dcomm_recv_act_start(pl->pp, pl->m->be, model_slot_output_grad(pl->m, x), boundary, next_stage(pl),
                           backward_tag(g), &pl->receives[i]);
    else
      dcomm_recv_act_start(pl->pp, pl->m->be, model_slot_input(pl->m, x), boundary, previous_stage(pl),
                           forward_tag(g), &pl->receives[i]);
    pl->receive_posted[i] = true;
  }
}

static void finish_forward_send(pipeline *pl, int x) {
  if (pl->forward_sending[x]) dcomm_wait(&pl->forward_sends[x]);
  pl->forward_sending[x] = false;
}

static void finish_backward_send(pipeline *pl) {
  if (pl->backward_sending) dcomm_wait(&pl->backward_send);
  pl->backward_sending = false;
}

double pipeline_train_step(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T,
                           float dloss_scale) {
  model *m = pl->m;
  const size_t boundary = model_boundary_elems(m, B, T), micro_tokens = (size_t)B * model_local_tokens(m, T);
  const double step_start = now_seconds();
  double busy = 0, loss_sum = 0;
  int next_post = 0;
  for (int i = 0; i < pl->n_ops; i++) {
    const pipe_op op = pl->ops[i];
    profile_mark(m->profile, PROFILE_PIPELINE, op.backward); /* messages, until the op's work */
    post_receives(pl, &next_post, i, boundary);
    const int x = pl->op_slot[i], g = global_chunk(pl, op.chunk);
    if (receives(pl, i)) {
      ENSURE(pl->receive_posted[i], "pipeline op %d: receive not posted", i);
      dcomm_wait(&pl->receives[i]);
      pl->receive_posted[i] = false;
    }
    finish_forward_send(pl, x); /* the slot's output is about to be written (or recomputed) */
    const double start = now_seconds();
    if (!op.backward) {
      loss_sum += model_chunk_forward(m, x, op.chunk, inputs + (size_t)op.micro * micro_tokens,
                                      targets + (size_t)op.micro * micro_tokens, B, T, dloss_scale, PASS_TRAIN);
      busy += now_seconds() - start;
      if (g < last_global_chunk(pl)) {
        dcomm_send_act_start(pl->pp, m->be, model_slot_output(m, x, op.chunk), boundary, next_stage(pl),
                             forward_tag(g + 1), &pl->forward_sends[x]);
        pl->forward_sending[x] = true;
      }
    } else {
      finish_backward_send(pl); /* the input gradient's buffer is about to be written */
      const bool last = i == pl->last_backward[op.chunk];
      model_chunk_backward(m, x, op.chunk, B, T, last);
      busy += now_seconds() - start;
      if (g > 0) {
        dcomm_send_act_start(pl->pp, m->be, model_input_grad(m), boundary, previous_stage(pl),
                             backward_tag(g - 1), &pl->backward_send);
        pl->backward_sending = true;
      }
    }
  }
  profile_mark(m->profile, PROFILE_PIPELINE, true);
  for (int x = 0; x < pl->n_slots; x++) finish_forward_send(pl, x);
  finish_backward_send(pl);
  pl->busy_seconds = busy;
  pl->step_seconds = now_seconds() - step_start;
  return loss_sum;
}

/* Every global chunk in order, each on its stage; the head's result stays on
 * the last stage. */
static double forward_through(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T,
                              model_pass pass) {
  model *m = pl->m;
  const size_t boundary = model_boundary_elems(m, B, T);
  double loss_sum = 0;
  for (int g = 0; g <= last_global_chunk(pl); g++) {
    if (g % pl->stages != pl->stage) continue;
    if (g > 0) dcomm_recv_act(pl->pp, m->be, model_slot_input(m, 0), boundary, previous_stage(pl), forward_tag(g));
    loss_sum += model_chunk_forward(m, 0, g / pl->stages, inputs, targets, B, T, 0.0f, pass);
    if (g < last_global_chunk(pl))
      dcomm_send_act(pl->pp, m->be, model_slot_output(m, 0, g / pl->stages), boundary, next_stage(pl),
                     forward_tag(g + 1));
  }
  return loss_sum;
}

double pipeline_forward_loss(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T) {
  double loss_sum = forward_through(pl, inputs, targets, B, T, PASS_LOSS);
  if (pl->pp) comm_allreduce_sum_f64(pl->pp, &loss_sum, 1); /* only the last stage's is not 0 */
  return loss_sum;
}

void pipeline_forward_token_losses(pipeline *pl, const int32_t *inputs, const int32_t *targets, int B, int T,
                                   float *losses) {
  forward_through(pl, inputs, targets, B, T, PASS_LOSS);
  if (pl->m->layout.stage.has_head) model_copy_token_losses(pl->m, B, T, losses);
  if (pl->pp) comm_broadcast(pl->pp, losses, (size_t)B * T * sizeof *losses, pl->stages - 1);
}

void pipeline_last_logits(void *context, const int32_t *tokens, int T, float *logits) {
  pipeline *pl = context;
  model *m = pl->m;
  int T_run;
  int32_t *local = model_prompt_rows(m, tokens, T, &T_run);
  forward_through(pl, local, NULL, 1, T_run, PASS_LOGITS);
  free(local);
  if (m->layout.stage.has_head) model_copy_last_logits(m, 1, T - 1, logits);
  if (pl->pp) comm_broadcast(pl->pp, logits, (size_t)m->shape.vocab_size * sizeof *logits, pl->stages - 1);
}

double pipeline_measured_bubble(pipeline *pl) {
  double bubble = pl->step_seconds > 0 ? 1.0 - pl->busy_seconds / pl->step_seconds : 0;
  if (pl->pp) {
    comm_allreduce_sum_f64(pl->pp, &bubble, 1);
    bubble /= pl->stages;
  }
  return bubble;
}

/* model — see model.h. This file puts a stage together from its parts
 * (this rank's shares, the parameter layout, the weights, the activations)
 * and takes it apart; it keeps the sequence layout of the current
 * micro-batch shape, and runs the whole model when one stage holds it.
 */
#include "model.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "model_internal.h"

/* The groups and this rank's share of every split dimension. */
static void set_shares(model *m, const model_options *options, int max_T) {
  model_parallel *par = &m->par;
  const model_shape *shape = &m->shape;
  comm *tp = options->tp;
  par->tp = tp && tp->size > 1 ? tp : NULL;
  par->tp_size = par->tp ? tp->size : 1;
  par->pp = options->pp && options->pp->size > 1 ? options->pp : NULL;
  par->seq_shard = options->seq_shard && par->tp;
  ENSURE(!par->seq_shard || max_T % par->tp_size == 0, "sequence sharding: tp %d does not divide T %d",
         par->tp_size, max_T);
  ENSURE(shape->d_model % shape->n_head == 0, "n_head %d does not divide d_model %d", shape->n_head,
         shape->d_model);
  ENSURE(shape->n_head % par->tp_size == 0 && shape->d_model % par->tp_size == 0,
         "n_head %d / d_model %d not divisible by tp %d", shape->n_head, shape->d_model, par->tp_size);
  par->C_local = shape->d_model / par->tp_size;
  par->NH_local = shape->n_head / par->tp_size;
  const int F = model_ffn_hidden(shape);
  ENSURE(F % par->tp_size == 0, "the MLP width %d is not divisible by tp %d", F, par->tp_size);
  par->ffn_local = F / par->tp_size;
  par->mlp_in_local = shape->mlp == MLP_SWIGLU ? 2 * par->ffn_local : par->ffn_local;
  par->sp = options->sp && options->sp->size > 1 ? options->sp : NULL;
  par->sp_size = par->sp ? par->sp->size : 1;
  par->placement = par->sp ? sp_attention_placement(options->sp_algorithm, model_has_softmax(shape)) : SP_CONTIGUOUS;
}

void model_create(model *m, const backend *be, model_shape shape, int max_B, int max_T,
                  const model_options *options) {
  const model_options none = {0};
  if (!options) options = &none;
  memset(m, 0, sizeof *m);
  m->be = be;
  buffer_sizer allocating = buffer_sizer_allocating(be);
  buffer_sizer *sizer = options->sizer ? options->sizer : &allocating;
  m->counting = !sizer->allocate;
  m->shape = shape;
  m->recompute = options->recompute;
  m->acts.max_B = max_B;
  m->acts.max_T = max_T;
  set_shares(m, options, max_T);
  model_parallel *par = &m->par;
  if (par->sp) {
    char err[256];
    ENSURE(sp_layout_make(&par->seq, par->placement, par->sp_size, par->sp->rank, max_T, err, sizeof err) == 0,
           "%s", err);
    sp_attention_create(&par->spa, sizer, par->sp, options->sp_algorithm, max_B, max_T / par->sp_size, par->C_local,
                        par->NH_local);
  }
  const model_stage stage = options->stage ? *options->stage : model_stage_whole(shape.n_layer);
  param_layout_create(&m->layout, &shape, &stage, par->tp ? par->tp->rank : 0, par->tp_size);
  par->tied_copy = !shape.untied_head && stage.has_head && !stage.has_embedding;
  /* the vocabulary shard: wte's, or on a last stage without it lm_head's
   * (split alike) */
  const param_spec *vocab = registry_find(&m->layout.reg, "wte");
  if (!vocab) vocab = registry_find(&m->layout.reg, "lm_head");
  if (vocab) {
    par->V_local = (int)vocab->local_shape[0];
    par->V_valid = (int)vocab->local_valid;
    par->vocab_start = (int)vocab->local_start;
  }
  weights_create(m, sizer, options->windowed_grads, options->windowed_params);
  activations_create(m, sizer, options->n_slots, options->head_chunk_rows);
}

void model_free(model *m) {
  activations_free(m);
  weights_free(m);
  if (m->par.sp) sp_attention_free(&m->par.spa);
  param_layout_free(&m->layout);
  memset(m, 0, sizeof *m);
}

flat_layout model_flat_layout(const model *m) {
  const param_layout *pl = &m->layout;
  flat_layout l = {.n_elems = pl->reg.n_local_total,
                   .blocks_start = pl->block_start0,
                   .block_elems = pl->block_elems,
                   .n_blocks = pl->n_layers,
                   .tied_peer = -1};
  const param_spec *wte = registry_find(&pl->reg, "wte");
  /* a tied head: the first and the last stage are each other's peer; an
   * untied one shares nothing between stages */
  if (m->par.pp && wte && !m->shape.untied_head) {
    l.tied_offset = wte->offset;
    l.tied_elems = wte->n_local;
    l.tied_peer = pl->stage.has_embedding ? m->par.pp->size - 1 : 0;
  }
  return l;
}

void model_whole_registry(const model *m, registry *whole) {
  param_layout_whole_registry(&m->layout, &m->shape, whole);
}

void model_owner_stages(const model *m, const registry *whole, int *owner) {
  int64_t *stage = xmalloc((size_t)whole->n_params * sizeof *stage, "parameter owners");
  const int64_t me = m->par.pp ? m->par.pp->rank : 0;
  for (int k = 0; k < whole->n_params; k++) {
    const param_spec *p = &whole->params[k];
    const bool held = registry_find(&m->layout.reg, p->name) != NULL;
    stage[k] = held && !(m->par.tied_copy && strcmp(p->name, "wte") == 0) ? me : -1;
  }
  if (m->par.pp) comm_allreduce_max_i64(m->par.pp, stage, (size_t)whole->n_params);
  for (int k = 0; k < whole->n_params; k++) {
    ENSURE(stage[k] >= 0, "no pipeline stage holds %s", whole->params[k].name);
    owner[k] = (int)stage[k];
  }
  free(stage);
}

/* ---------------------------------------------------------------- sequence layout */

void model_set_sequence_layout(model *m, int B, int T) {
  model_workspace *ws = &m->ws;
  if (ws->positions_B == B && ws->positions_T == T) return;
  char err[256];
  ENSURE(sp_layout_make(&m->par.seq, m->par.placement, m->par.sp_size, m->par.sp ? m->par.sp->rank : 0, T, err,
                        sizeof err) == 0,
         "%s", err);
  const int N = B * sp_layout_local_tokens(&m->par.seq);
  int32_t *host = xmalloc((size_t)N * sizeof *host, "position ids");
  sp_layout_positions(&m->par.seq, B, host);
  m->be->ids_from_host(ws->positions, host, (size_t)N);
  free(host);
  ws->positions_B = B, ws->positions_T = T;
}

int model_local_tokens(const model *m, int T) { return T / m->par.sp_size; }

int model_sequence_quantum(const model *m) {
  const int chunks = m->par.sp_size * sp_placement_pieces(m->par.placement);
  const int tp = m->par.seq_shard ? m->par.tp_size : 1;
  int q = chunks; /* a multiple of the chunk count whose pieces the tp ranks can share */
  while ((q / chunks) % tp != 0) q += chunks;
  return q;
}

int model_padded_length(const model *m, int T) {
  const int q = model_sequence_quantum(m);
  return (T + q - 1) / q * q;
}

void model_take_local(model *m, int B, int T, const int32_t *full, int32_t *local) {
  model_set_sequence_layout(m, B, T);
  sp_layout_take(&m->par.seq, B, full, local);
}

int32_t *model_prompt_rows(model *m, const int32_t *tokens, int T, int *T_run) {
  /* sequence parallelism and sharding need T in whole pieces: pad on the
   * right, which a causal model's position T−1 never sees */
  *T_run = model_padded_length(m, T);
  int32_t *padded = xmalloc((size_t)*T_run * sizeof *padded, "padded prompt");
  for (int t = 0; t < *T_run; t++) padded[t] = tokens[t < T ? t : T - 1];
  int32_t *local = xmalloc((size_t)*T_run * sizeof *local, "prompt rows");
  model_take_local(m, 1, *T_run, padded, local);
  free(padded);
  return local;
}

/* ---------------------------------------------------------------- the whole model on one stage */

static void ensure_whole(const model *m) {
  const model_stage *stage = &m->layout.stage;
  ENSURE(stage->n_chunks == 1 && stage->has_embedding && stage->has_head,
         "this call needs the whole model on one stage");
}

double model_forward_loss(model *m, const int32_t *inputs, const int32_t *targets, int B, int T) {
  ensure_whole(m);
  return model_chunk_forward(m, 0, 0, inputs, targets, B, T, 0.0f, PASS_LOSS);
}

double model_forward_backward(model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                              float dloss_scale) {
  ensure_whole(m);
  const double loss_sum = model_chunk_forward(m, 0, 0, inputs, targets, B, T, dloss_scale, PASS_TRAIN);
  model_chunk_backward(m, 0, 0, B, T, true);
  return loss_sum;
}

void model_forward_last_logits(model *m, const int32_t *inputs, int T, float *host_logits) {
  ensure_whole(m);
  int T_run;
  int32_t *local = model_prompt_rows(m, inputs, T, &T_run);
  model_chunk_forward(m, 0, 0, local, NULL, 1, T_run, 0.0f, PASS_LOGITS);
  free(local);
  model_copy_last_logits(m, 1, T - 1, host_logits);
}

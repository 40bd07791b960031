/* model — see model.h. This file builds a stage (registry, buffers, slots)
 * and drives a chunk through the embedding, its blocks (model_block.c) and
 * the head; each forward sits beside its backward. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_comm.h"
#include "fail.h"
#include "model_internal.h"

/* The tied embedding's gradient travels between the pipeline's ends with
 * this tag; pipeline activations use tags below 2·(number of chunks). */
#define TIED_GRAD_TAG 32000

model_stage model_stage_whole(int n_layer) {
  model_stage st;
  memset(&st, 0, sizeof st);
  st.n_chunks = 1;
  st.chunk_first_layer[0] = 0;
  st.chunk_n_layers[0] = n_layer;
  st.has_embedding = st.has_head = true;
  return st;
}

model_shape model_shape_gpt2(int n_layer, int n_head, int d_model, int vocab_size, int seq_len) {
  model_shape s;
  memset(&s, 0, sizeof s);
  s.n_layer = n_layer, s.n_head = n_head, s.d_model = d_model, s.vocab_size = vocab_size, s.seq_len = seq_len;
  return s;
}

bool model_layer_is_linear(const model_shape *s, int l) {
  const size_t n = strlen(s->layer_pattern);
  return n > 0 && s->layer_pattern[(size_t)l % n] == 'L';
}

int model_ffn_hidden(const model_shape *s) {
  if (s->ffn_hidden > 0) return s->ffn_hidden;
  if (s->mlp == MLP_GELU) return 4 * s->d_model;
  /* SwiGLU's three matrices at about the FLOPs of GELU's two: 2/3 · 4h,
   * rounded up to a multiple of 16 (Llama rounds to 256 at its sizes) */
  return (8 * s->d_model / 3 + 15) / 16 * 16;
}

/* The norms carry a bias only as LayerNorm in a model with biases. */
static bool norm_has_bias(const model_shape *s) { return s->norm == NORM_LAYERNORM; }

static void register_block(registry *reg, const model_shape *s, int l) {
  const int64_t C = s->d_model, NH = s->n_head, HS = s->d_model / s->n_head, F = model_ffn_hidden(s);
  /* GPT-2: residual output projections scaled by 1/sqrt(2·n_layer) */
  const double std = 0.02, residual_std = 0.02 / sqrt(2.0 * s->n_layer);
  const bool bias = !s->no_bias, swiglu = s->mlp == MLP_SWIGLU;
  char name[REGISTRY_NAME_BYTES];
#define ADD(suffix, n_dims, shape, split, init, init_std, decay)                         \
  do {                                                                                     \
    snprintf(name, sizeof name, "layers.%d.%s", l, suffix);                                \
    registry_add(reg, name, n_dims, (int64_t[])shape, split, init, init_std, decay, l);    \
  } while (0)
#define SHAPE(...) {__VA_ARGS__}
  ADD("ln1.weight", 1, SHAPE(C), -1, INIT_ONES, 0, false);
  if (norm_has_bias(s)) ADD("ln1.bias", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
  ADD("attn.wqkv", 4, SHAPE(3, NH, HS, C), 1, INIT_NORMAL, std, true);
  if (bias) ADD("attn.bqkv", 3, SHAPE(3, NH, HS), 1, INIT_ZEROS, 0, false);
  ADD("attn.wo", 3, SHAPE(C, NH, HS), 1, INIT_NORMAL, residual_std, true);
  if (bias) ADD("attn.bo", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
  ADD("ln2.weight", 1, SHAPE(C), -1, INIT_ONES, 0, false);
  if (norm_has_bias(s)) ADD("ln2.bias", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
  if (swiglu) { /* gate and up rows side by side, split together over tp */
    ADD("mlp.w1", 3, SHAPE(2, F, C), 1, INIT_NORMAL, std, true);
    if (bias) ADD("mlp.b1", 2, SHAPE(2, F), 1, INIT_ZEROS, 0, false);
  } else {
    ADD("mlp.w1", 2, SHAPE(F, C), 0, INIT_NORMAL, std, true);
    if (bias) ADD("mlp.b1", 1, SHAPE(F), 0, INIT_ZEROS, 0, false);
  }
  ADD("mlp.w2", 2, SHAPE(C, F), 1, INIT_NORMAL, residual_std, true);
  if (bias) ADD("mlp.b2", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
#undef ADD
#undef SHAPE
}

void model_register(registry *reg, const model_shape *s, const model_stage *stage) {
  const model_stage whole = model_stage_whole(s->n_layer);
  if (!stage) stage = &whole;
  const int64_t C = s->d_model;
  if (stage->has_embedding || stage->has_head)
    registry_add_padded(reg, "wte", 2, (int64_t[]){s->vocab_size, C}, 0, INIT_NORMAL, 0.02, true, -1);
  if (stage->has_embedding && s->position == POSITION_LEARNED)
    registry_add(reg, "wpe", 2, (int64_t[]){s->seq_len, C}, -1, INIT_NORMAL, 0.02, false, -1);
  for (int c = 0; c < stage->n_chunks; c++)
    for (int i = 0; i < stage->chunk_n_layers[c]; i++) register_block(reg, s, stage->chunk_first_layer[c] + i);
  if (stage->has_head) {
    registry_add(reg, "lnf.weight", 1, (int64_t[]){C}, -1, INIT_ONES, 0, false, -1);
    if (norm_has_bias(s)) registry_add(reg, "lnf.bias", 1, (int64_t[]){C}, -1, INIT_ZEROS, 0, false, -1);
  }
}

/* Block j's tensors at their offsets in a flat buffer (NULL for the biases
 * a model without them lacks). */
static void bind_block_params(model *m, act_t *base, block_params *out) {
  for (int j = 0; j < m->n_local_layers; j++) {
    act_t **fields[BLOCK_N_PARAMS] = {&out[j].ln1_w, &out[j].ln1_b, &out[j].wqkv, &out[j].bqkv,
                                      &out[j].wo,    &out[j].bo,    &out[j].ln2_w, &out[j].ln2_b,
                                      &out[j].w1,    &out[j].b1,    &out[j].w2,    &out[j].b2};
    for (int k = 0; k < BLOCK_N_PARAMS; k++) {
      char name[REGISTRY_NAME_BYTES];
      snprintf(name, sizeof name, "layers.%d.%s", m->layer_ids[j], block_param_names[k]);
      const param_spec *spec = registry_find(&m->reg, name);
      *fields[k] = spec ? act_at(m->be, base, spec->offset) : NULL;
    }
  }
}

/* Binds block j's tensors into window j mod 2, as if the window were the
 * flat buffer shifted to the block's first element. */
static void bind_block_windows(model *m, act_t *windows[2], block_params *out) {
  for (int j = 0; j < m->n_local_layers; j++) {
    block_params *b = &out[j];
    act_t **fields[BLOCK_N_PARAMS] = {&b->ln1_w, &b->ln1_b, &b->wqkv, &b->bqkv, &b->wo, &b->bo,
                                      &b->ln2_w, &b->ln2_b, &b->w1,   &b->b1,   &b->w2, &b->b2};
    const size_t block_start = m->block_start0 + (size_t)j * m->block_elems;
    for (int k = 0; k < BLOCK_N_PARAMS; k++) {
      char name[REGISTRY_NAME_BYTES];
      snprintf(name, sizeof name, "layers.%d.%s", m->layer_ids[j], block_param_names[k]);
      const param_spec *spec = registry_find(&m->reg, name);
      *fields[k] = spec ? act_at(m->be, windows[j % 2], spec->offset - block_start) : NULL;
    }
  }
}

/* Hands out consecutive pieces of one arena, counting what it handed out. */
typedef struct carver {
  const backend *be;
  size_t act_elems, f32_elems;
  act_t *act_base;
  f32_t *f32_base;
} carver;

static act_t *carve_act(carver *c, size_t n) {
  act_t *p = c->act_base ? act_at(c->be, c->act_base, c->act_elems) : NULL;
  c->act_elems += n;
  return p;
}
static f32_t *carve_f32(carver *c, size_t n) {
  f32_t *p = c->f32_base ? f32_at(c->f32_base, c->f32_elems) : NULL;
  c->f32_elems += n;
  return p;
}
static size_t carved_bytes(const carver *c) {
  return c->act_elems * c->be->act_elem_bytes + c->f32_elems * sizeof(float);
}

/* One block's activations: the fields `keep` says a slot keeps are carved,
 * the others taken from the shared scratch set. */
typedef enum keep_kind { KEEP_ALL, KEEP_BUT_CORE, KEEP_OUTPUT, KEEP_SCRATCH_OF } keep_kind;

static void carve_block_acts(model *m, carver *c, block_acts *a, const block_acts *scratch,
                             keep_kind keep) {
  const int T_local = m->max_T / m->sp_size;
  const size_t BT = (size_t)m->max_B * T_local, C = (size_t)m->shape.d_model, Cl = (size_t)m->C_local;
  const size_t BTl = m->seq_shard ? BT / (size_t)m->tp_size : BT;
  /* which fields this set carves: KEEP_SCRATCH_OF carves what the slots do
   * not keep under the model's recompute mode */
  bool core, rest, output;
  switch (keep) {
    case KEEP_ALL: core = rest = output = true; break;
    case KEEP_BUT_CORE: core = false, rest = output = true; break;
    case KEEP_OUTPUT: core = rest = false, output = true; break;
    default:
      core = m->recompute != RECOMPUTE_NONE;
      rest = m->recompute == RECOMPUTE_FULL;
      output = false;
  }
  if (scratch) *a = *scratch;
  if (rest) {
    a->ln1 = carve_act(c, BT * C);
    a->qkv = carve_act(c, BT * 3 * Cl);
    a->res2 = carve_act(c, BTl * C);
    a->ln2 = carve_act(c, BT * C);
    a->fch = carve_act(c, BT * (size_t)m->mlp_in_local);
    a->fch_gelu = carve_act(c, BT * (size_t)m->ffn_local);
    a->ln1_mean = carve_f32(c, BTl);
    a->ln1_rstd = carve_f32(c, BTl);
    a->ln2_mean = carve_f32(c, BTl);
    a->ln2_rstd = carve_f32(c, BTl);
    /* the states entering linear attention's pieces (sequence parallelism) */
    if (m->any_linear && m->sp) a->att_state = carve_f32(c, model_linear_state_elems(m, m->max_B));
  }
  if (core) {
    a->atty = carve_act(c, BT * Cl);
    if (m->any_softmax) a->att_saved = carve_f32(c, model_softmax_saved_elems(m, m->max_B, T_local));
    if (m->any_linear) {
      a->att_raw = carve_act(c, BT * Cl);
      a->att_rstd = carve_f32(c, BT * (size_t)m->NH_local);
    }
  }
  if (output) a->res3 = carve_act(c, BTl * C);
}

/* Lays out every activation; run once to count, once to assign. */
static void carve_activations(model *m, carver *c) {
  const size_t B = (size_t)m->max_B, T = (size_t)(m->max_T / m->sp_size), C = (size_t)m->shape.d_model;
  const size_t Cl = (size_t)m->C_local, V = (size_t)m->V_local, BT = B * T;
  /* rows of the residual stream and norm statistics held here */
  const size_t BTl = m->seq_shard ? BT / (size_t)m->tp_size : BT;
  /* shared: what recomputation does not keep, the head, the backward's scratch */
  carve_block_acts(m, c, m->scratch_acts, NULL, KEEP_SCRATCH_OF);
  if (m->stage.has_head) {
    m->lnf = carve_act(c, BT * C);
    m->logits = carve_act(c, (size_t)m->head_rows * V);
    m->lnf_mean = carve_f32(c, BTl);
    m->lnf_rstd = carve_f32(c, BTl);
    m->losses = carve_f32(c, (size_t)m->head_rows);
    m->ce_max = carve_f32(c, (size_t)m->head_rows);
    m->ce_stats = carve_f32(c, 2 * (size_t)m->head_rows);
  }
  m->d_resid = carve_act(c, BTl * C);
  m->d_btc = carve_act(c, BT * C); /* also the forward's partial sums */
  m->d_atty = carve_act(c, BT * Cl);
  m->d_qkv = carve_act(c, BT * 3 * Cl);
  m->d_bt4c = carve_act(c, BT * (size_t)m->mlp_in_local);
  m->d_ffn_act = m->shape.mlp == MLP_SWIGLU ? carve_act(c, BT * (size_t)m->ffn_local) : NULL;
  m->d_att_raw = m->any_linear ? carve_act(c, BT * Cl) : NULL;
  if (m->seq_shard) {
    m->d_full = carve_act(c, BT * C);
    m->d_ln = carve_act(c, BTl * C); /* also the forward's local norm output */
    m->ln_grad_scratch = carve_act(c, 2 * C);
  } else { /* without sharding, local rows are all rows: the buffers coincide */
    m->d_full = m->d_resid;
    m->d_ln = m->d_btc;
    m->ln_grad_scratch = NULL;
  }
  /* the slots */
  const keep_kind keep = m->recompute == RECOMPUTE_NONE        ? KEEP_ALL
                         : m->recompute == RECOMPUTE_SELECTIVE ? KEEP_BUT_CORE
                                                               : KEEP_OUTPUT;
  for (int s = 0; s < m->n_slots; s++) {
    const size_t before = carved_bytes(c);
    model_slot *slot = &m->slots[s];
    slot->input = carve_act(c, BTl * C);
    slot->d_output = carve_act(c, BTl * C);
    for (int i = 0; i < m->max_chunk_layers; i++) carve_block_acts(m, c, &slot->acts[i], m->scratch_acts, keep);
    m->slot_activation_bytes = carved_bytes(c) - before;
  }
}

void model_create(model *m, const backend *be, model_shape shape, int max_B, int max_T,
                  const model_options *options) {
  const model_options none = {0};
  if (!options) options = &none;
  comm *tp = options->tp;
  const bool seq_shard = options->seq_shard;
  memset(m, 0, sizeof *m);
  m->be = be;
  m->shape = shape;
  m->max_B = max_B;
  m->max_T = max_T;
  m->stage = options->stage ? *options->stage : model_stage_whole(shape.n_layer);
  m->recompute = options->recompute;
  m->tp = tp && tp->size > 1 ? tp : NULL;
  m->tp_size = m->tp ? tp->size : 1;
  m->pp = options->pp && options->pp->size > 1 ? options->pp : NULL;
  m->tied_copy = m->stage.has_head && !m->stage.has_embedding;
  m->seq_shard = seq_shard && m->tp;
  ENSURE(!m->seq_shard || max_T % m->tp_size == 0, "sequence sharding: tp %d does not divide T %d",
         m->tp_size, max_T);
  ENSURE(shape.d_model % shape.n_head == 0, "n_head %d does not divide d_model %d", shape.n_head, shape.d_model);
  const int tp_rank = m->tp ? tp->rank : 0;
  ENSURE(shape.n_head % m->tp_size == 0 && shape.d_model % m->tp_size == 0,
         "n_head %d / d_model %d not divisible by tp %d", shape.n_head, shape.d_model, m->tp_size);
  m->C_local = shape.d_model / m->tp_size;
  m->NH_local = shape.n_head / m->tp_size;
  const int F = model_ffn_hidden(&shape);
  ENSURE(F % m->tp_size == 0, "the MLP width %d is not divisible by tp %d", F, m->tp_size);
  m->ffn_local = F / m->tp_size;
  m->mlp_in_local = shape.mlp == MLP_SWIGLU ? 2 * m->ffn_local : m->ffn_local;
  m->sp = options->sp && options->sp->size > 1 ? options->sp : NULL;
  m->sp_size = m->sp ? m->sp->size : 1;

  /* local blocks: the chunks' layers one after another */
  ENSURE(m->stage.n_chunks >= 1 && m->stage.n_chunks <= MODEL_MAX_CHUNKS, "%d chunks per stage",
         m->stage.n_chunks);
  for (int c = 0; c < m->stage.n_chunks; c++) {
    ENSURE(m->stage.chunk_n_layers[c] >= 1, "chunk %d holds no layer", c);
    m->chunk_start[c] = m->n_local_layers;
    m->n_local_layers += m->stage.chunk_n_layers[c];
    if (m->stage.chunk_n_layers[c] > m->max_chunk_layers) m->max_chunk_layers = m->stage.chunk_n_layers[c];
  }
  m->layer_ids = xmalloc((size_t)m->n_local_layers * sizeof *m->layer_ids, "layer ids");
  for (int c = 0; c < m->stage.n_chunks; c++)
    for (int i = 0; i < m->stage.chunk_n_layers[c]; i++)
      m->layer_ids[m->chunk_start[c] + i] = m->stage.chunk_first_layer[c] + i;
  for (int j = 0; j < m->n_local_layers; j++) {
    if (model_layer_is_linear(&shape, m->layer_ids[j])) m->any_linear = true;
    else m->any_softmax = true;
  }
  /* Sequence parallelism: ring attention over softmax layers balances its
   * causal work with the zig-zag placement, which then holds for every
   * layer of the model (linear layers chain their pieces in sequence order). */
  bool model_has_softmax = false;
  for (int l = 0; l < shape.n_layer; l++) model_has_softmax |= !model_layer_is_linear(&shape, l);
  m->placement = m->sp && options->sp_algorithm == SP_RING && model_has_softmax ? SP_ZIGZAG : SP_CONTIGUOUS;
  if (m->sp) {
    char err[256];
    ENSURE(sp_layout_make(&m->layout, m->placement, m->sp_size, m->sp->rank, max_T, err, sizeof err) == 0, "%s",
           err);
    sp_attention_create(&m->spa, be, m->sp, options->sp_algorithm, max_B, max_T / m->sp_size, m->C_local,
                        m->NH_local);
  }
  if (m->any_linear && shape.decay_base > 0) { /* λ_h = exp(−2^(−base·(h+1)/NH)) of this rank's heads */
    float *host = xmalloc((size_t)m->NH_local * sizeof *host, "decay");
    for (int h = 0; h < m->NH_local; h++) {
      const int head = tp_rank * m->NH_local + h;
      host[h] = (float)exp(-pow(2.0, -shape.decay_base * (head + 1) / shape.n_head));
    }
    m->decay = be->alloc_f32((size_t)m->NH_local, "linear attention decay");
    be->f32_from_host(m->decay, host, (size_t)m->NH_local);
    free(host);
  }

  registry_init(&m->reg, tp_rank, m->tp_size);
  model_register(&m->reg, &m->shape, &m->stage);
  const param_spec *wte = registry_find(&m->reg, "wte");
  if (wte) {
    m->V_local = (int)wte->local_shape[0];
    m->V_valid = (int)wte->local_valid;
    m->vocab_start = (int)wte->local_start;
    m->head_rows = model_head_chunk_rows(max_B * (max_T / m->sp_size), options->head_chunk_rows);
  }
  const size_t n_params = m->reg.n_local_total;
  const int L = m->n_local_layers;
  m->blocks = xcalloc((size_t)L, sizeof *m->blocks, "block pointers");
  m->block_grads = xcalloc((size_t)L, sizeof *m->block_grads, "block pointers");
  char name[REGISTRY_NAME_BYTES];
  snprintf(name, sizeof name, "layers.%d.ln1.weight", m->layer_ids[0]);
  m->block_start0 = registry_find(&m->reg, name)->offset;
  const size_t blocks_end = m->stage.has_head ? registry_find(&m->reg, "lnf.weight")->offset : n_params;
  m->block_elems = (blocks_end - m->block_start0) / (size_t)L;
  m->outer_elems = n_params - (size_t)L * m->block_elems;
  /* Windowed buffers hold the embeddings then the final norm, back to back,
   * and blocks alternate between two block-sized windows (block j: window
   * j mod 2). */
  m->windowed_params = options->windowed_params;
  if (!m->windowed_params) {
    m->params = be->alloc_act(n_params, "parameters");
    bind_block_params(m, m->params, m->blocks);
  } else {
    m->params = be->alloc_act(m->outer_elems, "embedding and final-norm parameters");
    for (int w = 0; w < 2; w++) m->param_windows[w] = be->alloc_act(m->block_elems, "parameter window");
    bind_block_windows(m, m->param_windows, m->blocks);
  }
  m->windowed_grads = options->windowed_grads || options->windowed_params;
  if (!m->windowed_grads) {
    m->grads = be->alloc_act(n_params, "gradients");
    bind_block_params(m, m->grads, m->block_grads);
  } else {
    m->grads = be->alloc_act(m->outer_elems, "embedding and final-norm gradients");
    for (int w = 0; w < 2; w++) m->grad_windows[w] = be->alloc_act(m->block_elems, "gradient window");
    bind_block_windows(m, m->grad_windows, m->block_grads);
  }
  model_zero_grads(m);

  m->n_slots = options->n_slots > 0 ? options->n_slots : 1;
  m->slots = xcalloc((size_t)m->n_slots, sizeof *m->slots, "activation slots");
  for (int s = 0; s < m->n_slots; s++) {
    m->slots[s].acts = xcalloc((size_t)m->max_chunk_layers, sizeof(block_acts), "activation pointers");
    m->slots[s].tokens = be->alloc_ids((size_t)max_B * max_T, "input tokens");
  }
  m->scratch_acts = xcalloc(1, sizeof *m->scratch_acts, "activation pointers");
  carver count = {.be = be};
  carve_activations(m, &count);
  carver assign = {.be = be};
  assign.act_base = be->alloc_act(count.act_elems, "activations");
  assign.f32_base = be->alloc_f32(count.f32_elems, "activation statistics");
  m->arena[0] = assign.act_base;
  m->arena[1] = assign.f32_base;
  carve_activations(m, &assign);
  m->activation_bytes = carved_bytes(&count);

  m->targets = be->alloc_ids((size_t)max_B * max_T, "target tokens");
  m->positions = be->alloc_ids((size_t)max_B * max_T, "position ids");
  m->host_losses = xmalloc((size_t)max_B * max_T * sizeof(float), "losses");
  /* kept, not allocated per step: on a GPU a free synchronises the device */
  if (m->pp && wte) m->tied_peer_grad = be->alloc_act(wte->n_local, "tied embedding gradient");
}

void model_free(model *m) {
  const backend *be = m->be;
  be->free_buffer(m->params);
  be->free_buffer(m->grads);
  for (int w = 0; w < 2; w++) {
    if (m->grad_windows[w]) be->free_buffer(m->grad_windows[w]);
    if (m->param_windows[w]) be->free_buffer(m->param_windows[w]);
  }
  be->free_buffer(m->arena[0]);
  be->free_buffer(m->arena[1]);
  for (int s = 0; s < m->n_slots; s++) {
    be->free_buffer(m->slots[s].tokens);
    free(m->slots[s].acts);
  }
  be->free_buffer(m->targets);
  be->free_buffer(m->positions);
  if (m->decay) be->free_buffer(m->decay);
  if (m->sp) sp_attention_free(&m->spa);
  free(m->slots);
  free(m->scratch_acts);
  free(m->blocks);
  free(m->block_grads);
  free(m->layer_ids);
  free(m->host_losses);
  if (m->tied_peer_grad) be->free_buffer(m->tied_peer_grad);
  registry_free(&m->reg);
  memset(m, 0, sizeof *m);
}

void model_zero_grads(model *m) {
  m->be->zero_act(m->grads, m->windowed_grads ? m->outer_elems : m->reg.n_local_total);
}

void model_outer_ranges(const model *m, size_t *embeddings_end, size_t *final_norm_start) {
  *embeddings_end = m->block_start0;
  *final_norm_start = m->block_start0 + (size_t)m->n_local_layers * m->block_elems;
}

/* Where an embedding or final-norm tensor lives in a buffer: at its flat
 * offset, or in a windowed buffer's outer part (embeddings at their flat
 * offsets, the final norm right after them). */
static size_t outer_offset(const model *m, const char *name, bool windowed) {
  const param_spec *p = registry_find(&m->reg, name);
  ENSURE(p && p->layer < 0, "no embedding or final-norm parameter %s", name);
  size_t offset = p->offset;
  const size_t blocks_end = m->block_start0 + (size_t)m->n_local_layers * m->block_elems;
  if (windowed && offset >= m->block_start0) offset = m->block_start0 + (offset - blocks_end);
  return offset;
}
/* NULL when this stage, or this model, has no such tensor (wpe without
 * learned positions, lnf.bias without LayerNorm). */
static act_t *outer_grad_at(const model *m, const char *name) {
  if (!registry_find(&m->reg, name)) return NULL;
  return act_at(m->be, m->grads, outer_offset(m, name, m->windowed_grads));
}
static act_t *outer_param_at(const model *m, const char *name) {
  if (!registry_find(&m->reg, name)) return NULL;
  return act_at(m->be, m->params, outer_offset(m, name, m->windowed_params));
}

void model_load_params(model *m, const float *host) {
  if (!m->windowed_params) {
    m->be->act_from_host(m->params, host, m->reg.n_local_total);
    return;
  }
  size_t embeddings_end, final_norm_start;
  model_outer_ranges(m, &embeddings_end, &final_norm_start);
  m->be->act_from_host(m->params, host, embeddings_end);
  m->be->act_from_host(act_at(m->be, m->params, embeddings_end), host + final_norm_start,
                       m->reg.n_local_total - final_norm_start);
}

/* ZeRO-3: make sure block j's weights are in its window before use. */
static void need_block(model *m, int j, int next) {
  if (m->windowed_params && m->param_hooks)
    m->param_hooks->need_block(m->param_hooks->context, j, j % 2, m->param_windows[j % 2],
                               m->block_start0 + (size_t)j * m->block_elems, m->block_elems, next);
}

void model_whole_registry(const model *m, registry *whole) {
  registry_init(whole, m->reg.tp_rank, m->reg.tp_size);
  model_register(whole, &m->shape, NULL);
}

void model_owner_stages(const model *m, const registry *whole, int *owner) {
  int64_t *stage = xmalloc((size_t)whole->n_params * sizeof *stage, "parameter owners");
  const int64_t me = m->pp ? m->pp->rank : 0;
  for (int k = 0; k < whole->n_params; k++) {
    const param_spec *p = &whole->params[k];
    const bool held = registry_find(&m->reg, p->name) != NULL;
    stage[k] = held && !(m->tied_copy && strcmp(p->name, "wte") == 0) ? me : -1;
  }
  if (m->pp) comm_allreduce_max_i64(m->pp, stage, (size_t)whole->n_params);
  for (int k = 0; k < whole->n_params; k++) {
    ENSURE(stage[k] >= 0, "no pipeline stage holds %s", whole->params[k].name);
    owner[k] = (int)stage[k];
  }
  free(stage);
}

int64_t model_n_params(const model *m) {
  registry whole;
  registry_init(&whole, 0, 1);
  model_register(&whole, &m->shape, NULL);
  int64_t total = 0;
  for (int i = 0; i < whole.n_params; i++) total += whole.params[i].n_logical;
  registry_free(&whole);
  return total;
}

double model_block_flops(const model_shape *s, int l, int T) {
  const double C = s->d_model, F = model_ffn_hidden(s), HS = (double)s->d_model / s->n_head;
  /* the matrices a token multiplies through: QKV 3C², output C², the MLP
   * 2FC (GELU) or 3FC (SwiGLU), at 2 FLOPs per multiply-add; biases and
   * norms are noise */
  const double matrices = 2.0 * (4.0 * C * C + (s->mlp == MLP_SWIGLU ? 3.0 : 2.0) * F * C);
  if (!model_layer_is_linear(s, l)) return matrices + 2.0 * T * C; /* causal QKᵀ and PV: half of 4TC */
  /* chunkwise linear attention: the masked chunk (half of 4·chunk·C) and
   * the state's two products q·S and kᵀv (2·2·HS·C) */
  const double chunk = s->linear_chunk > 0 ? s->linear_chunk : 64;
  return matrices + 2.0 * (chunk < T ? chunk : T) * C + 4.0 * HS * C;
}

double model_flops_per_token(const model_shape *s, int T) {
  /* forward and backward: three times the forward (PaLM's appendix: 6N
   * for the matrices, attention likewise), plus the tied head's 2VC */
  double forward = 2.0 * s->vocab_size * s->d_model;
  for (int l = 0; l < s->n_layer; l++) forward += model_block_flops(s, l, T);
  return 3.0 * forward;
}

double model_head_flops(const model_shape *s) {
  const double C = s->d_model, V = s->vocab_size;
  /* the head's product, and the softmax and loss over every logit (about
   * five operations each: max, exp, sum, the gradient) */
  return 2.0 * V * C + 5.0 * V;
}

/* ---- sequence layout and positions ---- */

/* This rank's pieces of sequences of T tokens (one piece of all T without
 * sequence parallelism), and the position of every row, uploaded once per
 * micro-batch shape. */
static void set_layout(model *m, int B, int T) {
  if (m->positions_B == B && m->positions_T == T) return;
  char err[256];
  ENSURE(sp_layout_make(&m->layout, m->placement, m->sp_size, m->sp ? m->sp->rank : 0, T, err, sizeof err) == 0,
         "%s", err);
  const int N = B * sp_layout_local_tokens(&m->layout);
  int32_t *host = xmalloc((size_t)N * sizeof *host, "position ids");
  sp_layout_positions(&m->layout, B, host);
  m->be->ids_from_host(m->positions, host, (size_t)N);
  free(host);
  m->positions_B = B, m->positions_T = T;
}

int model_local_tokens(const model *m, int T) { return T / m->sp_size; }

int model_sequence_quantum(const model *m) {
  const int chunks = m->sp_size * (m->placement == SP_ZIGZAG ? 2 : 1);
  const int tp = m->seq_shard ? m->tp_size : 1;
  int q = chunks; /* a multiple of the chunk count whose pieces the tp ranks can share */
  while ((q / chunks) % tp != 0) q += chunks;
  return q;
}

void model_take_local(model *m, int B, int T, const int32_t *full, int32_t *local) {
  set_layout(m, B, T);
  sp_layout_take(&m->layout, B, full, local);
}

/* ---- the embedding, forward and backward ---- */

/* Vocabulary-parallel lookup of this rank's rows into the slot's input;
 * the position embedding is added by one tp rank only, so that the sum over
 * the group holds it once. */
static void embedding_forward(model *m, model_slot *s, const int32_t *inputs, int B, int T_local) {
  profile_mark(m->profile, PROFILE_EMBEDDING, false);
  const backend *be = m->be;
  const int C = m->shape.d_model, N = B * T_local, Nl = model_local_rows(m, N);
  be->ids_from_host(s->tokens, inputs, (size_t)N);
  const bool adds_positions = !m->tp || m->tp->rank == 0;
  act_t *partial = m->seq_shard ? m->d_btc : s->input;
  be->embedding_forward(partial, s->tokens, m->positions, outer_param_at(m, "wte"),
                        adds_positions ? outer_param_at(m, "wpe") : NULL, N, C, m->vocab_start, m->V_valid);
  model_sum_rows(m, s->input, partial, Nl, C);
}

/* From m->d_resid, dL/d(the embedding's output) of this rank's rows; the
 * lookup's backward reads every row's gradient. */
static void embedding_backward(model *m, model_slot *s, int B, int T_local) {
  profile_mark(m->profile, PROFILE_EMBEDDING, true);
  const int C = m->shape.d_model, Nl = model_local_rows(m, B * T_local);
  model_gather_rows(m, m->d_full, m->d_resid, Nl, C);
  m->be->embedding_backward(outer_grad_at(m, "wte"), outer_grad_at(m, "wpe"), m->d_full, s->tokens, m->positions,
                            B * T_local, C, m->vocab_start, m->V_valid);
}

/* ---- the head: final norm, tied output layer, loss ---- */

int model_head_chunk_rows(int rows, int asked) {
  if (rows < 1) return 1;
  return asked > 0 && asked < rows ? asked : rows;
}

/* Vocabulary-parallel cross-entropy (kernels/backend.h) of R rows whose
 * logits are in m->logits: losses on every tp rank, and with dloss_scale ≠ 0
 * the logits become their gradient. Returns the rows' loss sum. */
static double crossentropy(model *m, const int32_t *targets, int R, float dloss_scale) {
  const backend *be = m->be;
  be->ids_from_host(m->targets, targets, (size_t)R);
  be->crossentropy_max(m->ce_max, m->logits, R, m->V_valid, m->V_local);
  if (m->tp) dcomm_allreduce_max_f32(m->tp, be, m->ce_max, (size_t)R);
  be->crossentropy_sumexp(m->ce_stats, m->logits, m->ce_max, m->targets, R, m->V_valid, m->V_local,
                          m->vocab_start);
  if (m->tp) dcomm_allreduce_sum_f32(m->tp, be, m->ce_stats, 2 * (size_t)R);
  be->crossentropy_finish(m->losses, m->logits, m->ce_max, m->ce_stats, m->targets, R, m->V_valid,
                          m->V_local, m->vocab_start, dloss_scale);
  be->f32_to_host(m->host_losses, m->losses, (size_t)R);
  double total = 0.0;
  for (int i = 0; i < R; i++) total += m->host_losses[i];
  return total;
}

/* x: this rank's rows of the last block's output (T_local tokens per
 * sequence). For PASS_TRAIN the head's backward runs here too and dL/dx
 * lands in d_x.
 *
 * The logits exist for head_rows rows at a time (all of them unless
 * head_chunk_rows asks for fewer): each chunk of rows gets its logits, its
 * loss and, in training, its two backward products before the next chunk
 * reuses the buffer (a row's loss gradient needs nothing from other rows,
 * so nothing is computed twice). Rows, not vocabulary slices: a vocabulary
 * slice would need the whole row's log-sum-exp before any gradient, so its
 * logits would be computed twice. doc/design.md has the trade-off. */
static double head_forward(model *m, const act_t *x, act_t *d_x, const int32_t *targets, int B, int T_local,
                           float dloss_scale, model_pass pass) {
  const backend *be = m->be;
  const int C = m->shape.d_model, V = m->V_local, N = B * T_local, Nl = model_local_rows(m, N);
  const act_t *wte = outer_param_at(m, "wte"), *lnf_w = outer_param_at(m, "lnf.weight");
  act_t *lnf_local = m->seq_shard ? m->d_ln : m->lnf;
  profile_mark(m->profile, PROFILE_HEAD, false);
  model_norm_forward(m, lnf_local, m->lnf_mean, m->lnf_rstd, x, lnf_w, outer_param_at(m, "lnf.bias"), Nl);
  model_gather_rows(m, m->lnf, lnf_local, Nl, C);
  if (pass == PASS_LOGITS) return 0.0; /* model_copy_last_logits computes the one row it needs */
  const float scale = pass == PASS_TRAIN ? dloss_scale : 0.0f;
  act_t *dwte = pass == PASS_TRAIN ? outer_grad_at(m, "wte") : NULL;
  double loss_sum = 0.0;
  for (int r0 = 0; r0 < N; r0 += m->head_rows) {
    const int R = N - r0 < m->head_rows ? N - r0 : m->head_rows;
    const act_t *lnf_rows = act_at(be, m->lnf, (size_t)r0 * C);
    profile_mark(m->profile, PROFILE_HEAD, false);
    /* tied head: logits = lnf · wteᵀ, this rank's vocabulary rows */
    be->gemm(false, true, R, V, C, 1.0f, lnf_rows, C, wte, C, 0.0f, m->logits, V);
    loss_sum += crossentropy(m, targets + r0, R, scale);
    if (!dwte) continue;
    profile_mark(m->profile, PROFILE_HEAD, true);
    /* backward: dlnf = dlogits · wte (partial over vocabulary shards);
     * dwte += dlogitsᵀ · lnf (this rank's rows) */
    be->gemm(false, false, R, C, V, 1.0f, m->logits, V, wte, C, 0.0f, act_at(be, m->d_btc, (size_t)r0 * C), C);
    be->gemm(true, false, V, C, R, 1.0f, m->logits, V, lnf_rows, C, 1.0f, dwte, C);
  }
  if (pass != PASS_TRAIN) return loss_sum; /* the head's backward goes on: still its region */
  model_sum_rows(m, m->d_ln, m->d_btc, Nl, C);
  be->zero_act(d_x, (size_t)Nl * C);
  model_norm_backward(m, d_x, outer_grad_at(m, "lnf.weight"), outer_grad_at(m, "lnf.bias"), m->d_ln, x, lnf_w,
                      m->lnf_mean, m->lnf_rstd, Nl);
  return loss_sum;
}

/* ---- a chunk on a slot ---- */

size_t model_boundary_elems(const model *m, int B, int T) {
  return (size_t)model_local_rows(m, B * model_local_tokens(m, T)) * (size_t)m->shape.d_model;
}
act_t *model_slot_input(model *m, int slot) { return m->slots[slot].input; }
act_t *model_slot_output_grad(model *m, int slot) { return m->slots[slot].d_output; }
const act_t *model_input_grad(const model *m) { return m->d_resid; }
const act_t *model_slot_output(const model *m, int slot, int chunk) {
  return m->slots[slot].acts[m->stage.chunk_n_layers[chunk] - 1].res3;
}

/* Checks a micro-batch of B sequences of T tokens and sets this rank's
 * layout for it; returns its tokens per sequence here. */
static int begin_micro_batch(model *m, int slot, int chunk, int B, int T) {
  ENSURE(B <= m->max_B && T <= m->max_T, "micro-batch %dx%d exceeds the arena's %dx%d", B, T, m->max_B, m->max_T);
  ENSURE(slot >= 0 && slot < m->n_slots && chunk >= 0 && chunk < m->stage.n_chunks, "slot %d / chunk %d out of range",
         slot, chunk);
  set_layout(m, B, T);
  const int T_local = sp_layout_local_tokens(&m->layout);
  ENSURE(!m->seq_shard || (B * T_local) % m->tp_size == 0, "sequence sharding: %d rows over tp %d", B * T_local,
         m->tp_size);
  return T_local;
}

double model_chunk_forward(model *m, int slot, int chunk, const int32_t *inputs,
                           const int32_t *targets, int B, int T, float dloss_scale, model_pass pass) {
  const int T_local = begin_micro_batch(m, slot, chunk, B, T);
  model_slot *s = &m->slots[slot];
  if (chunk == 0 && m->stage.has_embedding) embedding_forward(m, s, inputs, B, T_local);
  const act_t *x = s->input;
  const int j0 = m->chunk_start[chunk], n = m->stage.chunk_n_layers[chunk];
  for (int i = 0; i < n; i++) {
    const int j = j0 + i;
    need_block(m, j, j + 1 < m->n_local_layers ? j + 1 : -1);
    block_forward(m, j, &s->acts[i], x, B, T_local);
    x = s->acts[i].res3;
  }
  if (chunk == m->stage.n_chunks - 1 && m->stage.has_head)
    return head_forward(m, x, s->d_output, targets, B, T_local, dloss_scale, pass);
  return 0.0;
}

void model_chunk_backward(model *m, int slot, int chunk, int B, int T, grads_ready_fn ready,
                          void *ready_context) {
  const int T_local = begin_micro_batch(m, slot, chunk, B, T);
  const backend *be = m->be;
  model_slot *s = &m->slots[slot];
  const size_t boundary = model_boundary_elems(m, B, T);
  be->zero_act(m->d_resid, boundary);
  be->accumulate(m->d_resid, s->d_output, boundary);
  const int j0 = m->chunk_start[chunk], n = m->stage.chunk_n_layers[chunk];
  const grad_window_hooks *hooks = m->window_hooks;
  for (int i = n - 1; i >= 0; i--) {
    const int j = j0 + i;
    if (m->windowed_grads) { /* take the window back, clean */
      if (hooks) hooks->window_reuse(hooks->context, j % 2);
      be->zero_act(m->grad_windows[j % 2], m->block_elems);
    }
    need_block(m, j, j - 1);
    block_backward(m, j, &s->acts[i], i == 0 ? s->input : s->acts[i - 1].res3, B, T_local);
    if (m->windowed_grads && hooks)
      hooks->block_done(hooks->context, j % 2, m->grad_windows[j % 2],
                        m->block_start0 + (size_t)j * m->block_elems, m->block_elems);
    if (ready) ready(ready_context, m->block_start0 + (size_t)j * m->block_elems);
  }
  if (chunk == 0 && m->stage.has_embedding) embedding_backward(m, s, B, T_local);
}

void model_sum_tied_grads(model *m) {
  if (!m->pp || !(m->stage.has_embedding || m->stage.has_head)) return;
  ENSURE(!m->windowed_grads, "a tied embedding across stages needs flat gradients");
  const backend *be = m->be;
  const param_spec *wte = registry_find(&m->reg, "wte");
  const int peer = m->stage.has_embedding ? m->pp->size - 1 : 0;
  act_t *grad = act_at(be, m->grads, wte->offset);
  dcomm_request exchange;
  dcomm_exchange_act_start(m->pp, be, grad, peer, m->tied_peer_grad, peer, wte->n_local, TIED_GRAD_TAG, &exchange);
  dcomm_wait(&exchange);
  /* a + b on one end, b + a on the other: the same float (fp32 addition
   * commutes; on bf16 both ends round the same fp32 sum), so the copies stay equal */
  be->accumulate(grad, m->tied_peer_grad, wte->n_local);
}

void model_copy_last_logits(model *m, int B, int t, float *host_logits) {
  const int Vl = m->V_local;
  float *shard = xcalloc((size_t)Vl, sizeof *shard, "logits shard");
  /* the row of position t of sequence 0: on one sp rank only; its logits
   * from the final norm's output, which the PASS_LOGITS forward left whole */
  const int64_t row = sp_layout_row_of(&m->layout, B, 0, t);
  if (row >= 0) {
    const backend *be = m->be;
    const int C = m->shape.d_model;
    be->gemm(false, true, 1, Vl, C, 1.0f, act_at(be, m->lnf, (size_t)row * C), C, outer_param_at(m, "wte"), C, 0.0f,
             m->logits, Vl);
    be->act_to_host(shard, m->logits, (size_t)Vl);
  }
  float *all = shard;
  if (m->tp) { /* shards are consecutive vocabulary ranges; padding sits past V */
    all = xmalloc((size_t)Vl * m->tp_size * sizeof *all, "gathered logits");
    comm_allgather_f32(m->tp, shard, all, (size_t)Vl);
  }
  memcpy(host_logits, all, (size_t)m->shape.vocab_size * sizeof *all);
  if (m->sp) { /* from the sp rank that holds the row: the others hold zeros */
    int64_t holder = row >= 0 ? m->sp->rank : -1;
    comm_allreduce_max_i64(m->sp, &holder, 1);
    comm_broadcast(m->sp, host_logits, (size_t)m->shape.vocab_size * sizeof *host_logits, (int)holder);
  }
  if (all != shard) free(all);
  free(shard);
}

int model_padded_length(const model *m, int T) {
  const int q = model_sequence_quantum(m);
  return (T + q - 1) / q * q;
}

/* ---- the whole model on one stage ---- */

static void ensure_whole(const model *m) {
  ENSURE(m->stage.n_chunks == 1 && m->stage.has_embedding && m->stage.has_head,
         "this call needs the whole model on one stage");
}

double model_forward_loss(model *m, const int32_t *inputs, const int32_t *targets, int B, int T) {
  ensure_whole(m);
  return model_chunk_forward(m, 0, 0, inputs, targets, B, T, 0.0f, PASS_LOSS);
}

double model_forward_backward(model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                              float dloss_scale, grads_ready_fn ready, void *ready_context) {
  ensure_whole(m);
  const double loss_sum = model_chunk_forward(m, 0, 0, inputs, targets, B, T, dloss_scale, PASS_TRAIN);
  model_chunk_backward(m, 0, 0, B, T, ready, ready_context);
  if (ready) ready(ready_context, 0);
  return loss_sum;
}

void model_forward_last_logits(model *m, const int32_t *inputs, int T, float *host_logits) {
  ensure_whole(m);
  /* sequence parallelism and sharding need T in whole pieces: pad on the
   * right, which a causal model's position T−1 never sees */
  const int T_run = model_padded_length(m, T);
  int32_t *padded = xmalloc((size_t)T_run * sizeof *padded, "padded prompt");
  for (int t = 0; t < T_run; t++) padded[t] = inputs[t < T ? t : T - 1];
  int32_t *local = xmalloc((size_t)T_run * sizeof *local, "prompt rows");
  model_take_local(m, 1, T_run, padded, local);
  model_chunk_forward(m, 0, 0, local, NULL, 1, T_run, 0.0f, PASS_LOGITS);
  free(padded);
  free(local);
  model_copy_last_logits(m, 1, T - 1, host_logits);
}

/* param_layout — see param_layout.h. */
#include "param_layout.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

const char *const block_param_names[BLOCK_N_PARAMS] = {
    "ln1.weight", "ln1.bias", "attn.wqkv", "attn.bqkv", "attn.wo", "attn.bo",
    "ln2.weight", "ln2.bias", "mlp.w1",    "mlp.b1",    "mlp.w2",  "mlp.b2"};

model_stage model_stage_whole(int n_layer) {
  model_stage st;
  memset(&st, 0, sizeof st);
  st.n_chunks = 1;
  st.chunk_first_layer[0] = 0;
  st.chunk_n_layers[0] = n_layer;
  st.has_embedding = st.has_head = true;
  return st;
}

/* ---------------------------------------------------------------- registration */

static void register_block(registry *reg, const model_shape *s, int l) {
  const int64_t C = s->d_model, NH = s->n_head, HS = model_head_size(s), F = model_ffn_hidden(s);
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
  if (model_norm_has_bias(s)) ADD("ln1.bias", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
  ADD("attn.wqkv", 4, SHAPE(3, NH, HS, C), 1, INIT_NORMAL, std, true);
  if (bias) ADD("attn.bqkv", 3, SHAPE(3, NH, HS), 1, INIT_ZEROS, 0, false);
  ADD("attn.wo", 3, SHAPE(C, NH, HS), 1, INIT_NORMAL, residual_std, true);
  if (bias) ADD("attn.bo", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
  ADD("ln2.weight", 1, SHAPE(C), -1, INIT_ONES, 0, false);
  if (model_norm_has_bias(s)) ADD("ln2.bias", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
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
  /* the tied head reads wte: the last stage holds a copy */
  if (stage->has_embedding || (stage->has_head && !s->untied_head))
    registry_add_padded(reg, "wte", 2, (int64_t[]){s->vocab_size, C}, 0, INIT_NORMAL, 0.02, true, -1);
  if (stage->has_embedding && s->position == POSITION_LEARNED)
    registry_add(reg, "wpe", 2, (int64_t[]){s->seq_len, C}, -1, INIT_NORMAL, 0.02, false, -1);
  for (int c = 0; c < stage->n_chunks; c++)
    for (int i = 0; i < stage->chunk_n_layers[c]; i++) register_block(reg, s, stage->chunk_first_layer[c] + i);
  if (stage->has_head) {
    registry_add(reg, "lnf.weight", 1, (int64_t[]){C}, -1, INIT_ONES, 0, false, -1);
    if (model_norm_has_bias(s)) registry_add(reg, "lnf.bias", 1, (int64_t[]){C}, -1, INIT_ZEROS, 0, false, -1);
    /* the untied head: vocabulary rows split over tp as wte's, initialised
     * and decayed as wte; after the final norm, an outer tensor as lnf */
    if (s->untied_head)
      registry_add_padded(reg, "lm_head", 2, (int64_t[]){s->vocab_size, C}, 0, INIT_NORMAL, 0.02, true, -1);
  }
}

int64_t model_n_params(const model_shape *shape) {
  registry whole;
  registry_init(&whole, 0, 1);
  model_register(&whole, shape, NULL);
  int64_t total = 0;
  for (int i = 0; i < whole.n_params; i++) total += whole.params[i].n_logical;
  registry_free(&whole);
  return total;
}

/* ---------------------------------------------------------------- the stage's layout */

void param_layout_create(param_layout *pl, const model_shape *shape, const model_stage *stage, int tp_rank,
                         int tp_size) {
  memset(pl, 0, sizeof *pl);
  pl->stage = *stage;
  /* local blocks: the chunks' layers one after another */
  ENSURE(stage->n_chunks >= 1 && stage->n_chunks <= MODEL_MAX_CHUNKS, "%d chunks per stage", stage->n_chunks);
  for (int c = 0; c < stage->n_chunks; c++) {
    ENSURE(stage->chunk_n_layers[c] >= 1, "chunk %d holds no layer", c);
    pl->chunk_start[c] = pl->n_layers;
    pl->n_layers += stage->chunk_n_layers[c];
    if (stage->chunk_n_layers[c] > pl->max_chunk_layers) pl->max_chunk_layers = stage->chunk_n_layers[c];
  }
  pl->layer_ids = xmalloc((size_t)pl->n_layers * sizeof *pl->layer_ids, "layer ids");
  for (int c = 0; c < stage->n_chunks; c++)
    for (int i = 0; i < stage->chunk_n_layers[c]; i++)
      pl->layer_ids[pl->chunk_start[c] + i] = stage->chunk_first_layer[c] + i;
  for (int j = 0; j < pl->n_layers; j++) {
    if (model_layer_is_linear(shape, pl->layer_ids[j])) pl->any_linear = true;
    else pl->any_softmax = true;
  }
  registry_init(&pl->reg, tp_rank, tp_size);
  model_register(&pl->reg, shape, stage);
  const size_t n_params = pl->reg.n_local_total;
  char name[REGISTRY_NAME_BYTES];
  snprintf(name, sizeof name, "layers.%d.ln1.weight", pl->layer_ids[0]);
  pl->block_start0 = registry_find(&pl->reg, name)->offset;
  const size_t blocks_end = stage->has_head ? registry_find(&pl->reg, "lnf.weight")->offset : n_params;
  pl->block_elems = (blocks_end - pl->block_start0) / (size_t)pl->n_layers;
  pl->outer_elems = n_params - (size_t)pl->n_layers * pl->block_elems;
}

void param_layout_free(param_layout *pl) {
  free(pl->layer_ids);
  registry_free(&pl->reg);
  memset(pl, 0, sizeof *pl);
}

size_t param_layout_block_start(const param_layout *pl, int j) { return pl->block_start0 + (size_t)j * pl->block_elems; }

void param_layout_outer_ranges(const param_layout *pl, size_t *embeddings_end, size_t *final_norm_start) {
  *embeddings_end = pl->block_start0;
  *final_norm_start = param_layout_block_start(pl, pl->n_layers);
}

size_t param_layout_outer_offset(const param_layout *pl, const char *name, bool windowed) {
  const param_spec *p = registry_find(&pl->reg, name);
  ENSURE(p && p->layer < 0, "no outer parameter %s (embedding, final norm, lm_head)", name);
  size_t offset = p->offset;
  const size_t blocks_end = param_layout_block_start(pl, pl->n_layers);
  if (windowed && offset >= pl->block_start0) offset = pl->block_start0 + (offset - blocks_end);
  return offset;
}

void param_layout_whole_registry(const param_layout *pl, const model_shape *shape, registry *whole) {
  registry_init(whole, pl->reg.tp_rank, pl->reg.tp_size);
  model_register(whole, shape, NULL);
}

/* weights — the stage's weight and gradient buffers (model.h,
 * model_weights) and where each block's tensors are in them.
 *
 * Without ZeRO both are one flat buffer in registry order. With windowed
 * gradients (ZeRO-2) or weights (ZeRO-3) the buffer holds only the outer
 * tensors — the embeddings, then the final norm, back to back — and the
 * blocks take turns in two block-sized windows (block j in window j mod 2),
 * which parallel/zero fills and drains.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "memory_tally.h"
#include "model_internal.h"

/* Points block j's tensors at their places: in `flat` at their offsets, or
 * in window j mod 2, which holds the block as if it were the flat buffer
 * shifted to the block's first element. */
static void bind_blocks(model *m, act_t *flat, act_t *const windows[2], block_params *out) {
  for (int j = 0; j < m->layout.n_layers; j++) {
    block_params *b = &out[j];
    act_t **fields[BLOCK_N_PARAMS] = {&b->ln1_w, &b->ln1_b, &b->wqkv, &b->bqkv, &b->wo, &b->bo,
                                      &b->ln2_w, &b->ln2_b, &b->w1,   &b->b1,   &b->w2, &b->b2};
    act_t *base = windows ? windows[j % 2] : flat;
    const size_t shift = windows ? param_layout_block_start(&m->layout, j) : 0;
    for (int k = 0; k < BLOCK_N_PARAMS; k++) {
      char name[REGISTRY_NAME_BYTES];
      snprintf(name, sizeof name, "layers.%d.%s", m->layout.layer_ids[j], block_param_names[k]);
      const param_spec *spec = registry_find(&m->layout.reg, name);
      *fields[k] = spec ? act_at(m->be, base, spec->offset - shift) : NULL;
    }
  }
}

/* The flat buffer, or the outer tensors and two windows; blocks bound. */
static act_t *allocate(model *m, buffer_sizer *sizer, memory_kind kind, bool windowed, act_t *windows[2],
                       block_params *blocks, const char *what) {
  if (!windowed) {
    act_t *flat = sizer_act(sizer, m->layout.reg.n_local_total, kind, what);
    bind_blocks(m, flat, NULL, blocks);
    return flat;
  }
  char outer_what[64], window_what[64];
  snprintf(outer_what, sizeof outer_what, "embedding and final-norm %s", what);
  snprintf(window_what, sizeof window_what, "window of %s", what);
  act_t *outer = sizer_act(sizer, m->layout.outer_elems, kind, outer_what);
  for (int w = 0; w < 2; w++) windows[w] = sizer_act(sizer, m->layout.block_elems, kind, window_what);
  bind_blocks(m, NULL, windows, blocks);
  return outer;
}

/* λ_h = exp(−2^(−base·(h+1)/NH)) of this rank's heads (linear attention with decay). */
static f32_t *decay_of_heads(const model *m, buffer_sizer *sizer) {
  f32_t *decay = sizer_f32(sizer, (size_t)m->par.NH_local, MEMORY_OTHER, "linear attention decay");
  if (!decay) return NULL; /* counted only */
  const int NH_local = m->par.NH_local, first_head = (m->par.tp ? m->par.tp->rank : 0) * NH_local;
  float *host = xmalloc((size_t)NH_local * sizeof *host, "decay");
  for (int h = 0; h < NH_local; h++)
    host[h] = (float)exp(-pow(2.0, -m->shape.decay_base * (first_head + h + 1) / m->shape.n_head));
  m->be->f32_from_host(decay, host, (size_t)NH_local);
  free(host);
  return decay;
}

void weights_create(model *m, buffer_sizer *sizer, bool windowed_grads, bool windowed_params) {
  model_weights *w = &m->w;
  const int L = m->layout.n_layers;
  if (m->layout.any_linear && m->shape.decay_base > 0) w->decay = decay_of_heads(m, sizer);
  w->blocks = xcalloc((size_t)L, sizeof *w->blocks, "block pointers");
  w->block_grads = xcalloc((size_t)L, sizeof *w->block_grads, "block pointers");
  w->windowed_params = windowed_params;
  w->windowed_grads = windowed_grads || windowed_params;
  w->params = allocate(m, sizer, MEMORY_WEIGHTS, w->windowed_params, w->param_windows, w->blocks, "parameters");
  w->grads = allocate(m, sizer, MEMORY_GRADS, w->windowed_grads, w->grad_windows, w->block_grads, "gradients");
  if (!m->counting) model_zero_grads(m);
}

void weights_free(model *m) {
  model_weights *w = &m->w;
  const backend *be = m->be;
  if (w->params) be->free_buffer(w->params);
  if (w->grads) be->free_buffer(w->grads);
  for (int i = 0; i < 2; i++) {
    if (w->grad_windows[i]) be->free_buffer(w->grad_windows[i]);
    if (w->param_windows[i]) be->free_buffer(w->param_windows[i]);
  }
  if (w->decay) be->free_buffer(w->decay);
  free(w->blocks);
  free(w->block_grads);
  memset(w, 0, sizeof *w);
}

act_t *outer_grad_at(const model *m, const char *name) {
  if (!registry_find(&m->layout.reg, name)) return NULL;
  return act_at(m->be, m->w.grads, param_layout_outer_offset(&m->layout, name, m->w.windowed_grads));
}

act_t *outer_param_at(const model *m, const char *name) {
  if (!registry_find(&m->layout.reg, name)) return NULL;
  return act_at(m->be, m->w.params, param_layout_outer_offset(&m->layout, name, m->w.windowed_params));
}

void model_zero_grads(model *m) {
  m->be->zero_act(m->w.grads, m->w.windowed_grads ? m->layout.outer_elems : m->layout.reg.n_local_total);
}

void model_load_params(model *m, const float *host) {
  if (!m->w.windowed_params) {
    m->be->act_from_host(m->w.params, host, m->layout.reg.n_local_total);
    return;
  }
  size_t embeddings_end, final_norm_start;
  param_layout_outer_ranges(&m->layout, &embeddings_end, &final_norm_start);
  m->be->act_from_host(m->w.params, host, embeddings_end);
  m->be->act_from_host(act_at(m->be, m->w.params, embeddings_end), host + final_norm_start,
                       m->layout.reg.n_local_total - final_norm_start);
}

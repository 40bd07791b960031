/* chunk — a chunk of consecutive blocks run forward and backward on one
 * activation slot: the unit the pipeline runtime schedules (model.h). The
 * first chunk of the first stage begins with the embedding, the last chunk
 * of the last stage ends with the head. Around each block the model tells
 * parallel/zero what it needs (a block's weights, under ZeRO-3) and what it
 * has done (a block's gradients).
 */
#include "fail.h"
#include "model_internal.h"

size_t model_boundary_elems(const model *m, int B, int T) {
  return (size_t)model_local_rows(m, B * model_local_tokens(m, T)) * (size_t)m->shape.d_model;
}
act_t *model_slot_input(model *m, int slot) { return m->acts.slots[slot].input; }
act_t *model_slot_output_grad(model *m, int slot) { return m->acts.slots[slot].d_output; }
const act_t *model_input_grad(const model *m) { return m->ws.d_resid; }
const act_t *model_slot_output(const model *m, int slot, int chunk) {
  return m->acts.slots[slot].acts[m->layout.stage.chunk_n_layers[chunk] - 1].res3;
}

/* Checks a micro-batch of B sequences of T tokens and sets this rank's
 * layout for it; returns its tokens per sequence here. */
static int begin_micro_batch(model *m, int slot, int chunk, int B, int T) {
  ENSURE(B <= m->acts.max_B && T <= m->acts.max_T, "micro-batch %dx%d exceeds the arena's %dx%d", B, T,
         m->acts.max_B, m->acts.max_T);
  ENSURE(slot >= 0 && slot < m->acts.n_slots && chunk >= 0 && chunk < m->layout.stage.n_chunks,
         "slot %d / chunk %d out of range", slot, chunk);
  model_set_sequence_layout(m, B, T);
  const int T_local = sp_layout_local_tokens(&m->par.seq);
  ENSURE(!m->par.seq_shard || (B * T_local) % m->par.tp_size == 0, "sequence sharding: %d rows over tp %d",
         B * T_local, m->par.tp_size);
  return T_local;
}

/* ZeRO-3: block j's weights in its window before use, block `next` on its
 * way (zero_need_block does nothing at other stages). */
static void need_block(model *m, int j, int next) {
  if (m->zero) zero_need_block(m->zero, j, next);
}

double model_chunk_forward(model *m, int slot, int chunk, const int32_t *inputs,
                           const int32_t *targets, int B, int T, float dloss_scale, model_pass pass) {
  const int T_local = begin_micro_batch(m, slot, chunk, B, T);
  model_slot *s = &m->acts.slots[slot];
  const model_stage *stage = &m->layout.stage;
  if (chunk == 0 && stage->has_embedding) embedding_forward(m, s, inputs, B, T_local);
  const act_t *x = s->input;
  const int j0 = m->layout.chunk_start[chunk], n = stage->chunk_n_layers[chunk];
  for (int i = 0; i < n; i++) {
    const int j = j0 + i;
    need_block(m, j, j + 1 < m->layout.n_layers ? j + 1 : -1);
    block_forward(m, j, &s->acts[i], x, B, T_local);
    x = s->acts[i].res3;
  }
  if (chunk == stage->n_chunks - 1 && stage->has_head)
    return head_forward(m, x, s->d_output, targets, B, T_local, dloss_scale, pass);
  return 0.0;
}

void model_chunk_backward(model *m, int slot, int chunk, int B, int T, bool final) {
  const int T_local = begin_micro_batch(m, slot, chunk, B, T);
  const backend *be = m->be;
  model_slot *s = &m->acts.slots[slot];
  const size_t boundary = model_boundary_elems(m, B, T);
  be->zero_act(m->ws.d_resid, boundary);
  be->accumulate(m->ws.d_resid, s->d_output, boundary);
  const int j0 = m->layout.chunk_start[chunk], n = m->layout.stage.chunk_n_layers[chunk];
  for (int i = n - 1; i >= 0; i--) {
    const int j = j0 + i;
    if (m->w.windowed_grads) { /* take the window back, clean */
      if (m->zero) zero_window_reuse(m->zero, j % 2);
      be->zero_act(m->w.grad_windows[j % 2], m->layout.block_elems);
    }
    need_block(m, j, j - 1);
    block_backward(m, j, &s->acts[i], i == 0 ? s->input : s->acts[i - 1].res3, B, T_local);
    if (m->zero) zero_block_backward_done(m->zero, j, final);
  }
  if (chunk == 0 && m->layout.stage.has_embedding) embedding_backward(m, s, B, T_local);
}

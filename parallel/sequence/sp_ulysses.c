/* sp_ulysses — DeepSpeed-Ulysses (sp_attention.h): an all-to-all over the sp
 * group turns this rank's rows [B·T/P tokens, every local head] into
 * [B·T tokens, NHl/P heads]; the rank runs the single-rank attention of the
 * whole sequence on its heads; an all-to-all back returns its rows.
 *
 * Placement is contiguous (sp_attention_placement): rank r holds positions
 * r·n .. r·n+n−1 of every sequence (n = T/P), rows b·n + i. All-to-all block
 * q of a rank's input goes to rank q, so block q holds head slice q of every
 * row, and rank q receives, from each rank r in rank order, [B, n] rows that
 * are positions r·n.. of each sequence: gathered into rows b·T + r·n + i, the
 * sequence is in true order, which causal attention and the decay's chunk
 * chain need. A qkv row [q | k | v] of Cl each becomes [q_s | k_s | v_s] of
 * Cl/P each: the single-rank kernels' layout with C = Cl/P, NH = NHl/P.
 *
 * The backward all-to-alls qkv and (softmax) the output again rather than
 * keeping head-sharded copies per layer and micro-batch: 4 more all-to-alls
 * of rows·Cl, no more memory (doc/design.md has the bytes). */
#include "sp_attention.h"

#include "device_comm.h"
#include "fail.h"

/* seq [rows, parts·Cl] (rows b·n+i) → head [B·T, parts·Cl/P] of this rank's
 * head slice (rows b·T + t), through one all-to-all */
static void to_heads(sp_attention *a, const sp_layout *l, act_t *head, const act_t *seq, int parts, int B) {
  const backend *be = a->be;
  const int P = a->group->size, Cl = a->C_local, s = Cl / P, n = l->piece_len, T = l->T, w = parts * s;
  const size_t rows = (size_t)B * n, block = rows * w;
  for (int q = 0; q < P; q++) /* block q: head slice q of every part */
    for (int part = 0; part < parts; part++)
      be->copy_rows(act_at(be, a->u_send, q * block + (size_t)part * s), w,
                    act_at(be, seq, (size_t)part * Cl + (size_t)q * s), parts * Cl, (int)rows, s);
  dcomm_alltoall_act(a->group, be, a->u_send, a->u_recv, block);
  for (int r = 0; r < P; r++) /* rank r's rows are positions r·n .. of each sequence */
    for (int b = 0; b < B; b++)
      be->copy_rows(act_at(be, head, ((size_t)b * T + (size_t)r * n) * w), w,
                    act_at(be, a->u_recv, r * block + (size_t)b * n * w), w, n, w);
}

/* the inverse: head [B·T, parts·Cl/P] → seq [rows, parts·Cl] */
static void to_sequence(sp_attention *a, const sp_layout *l, act_t *seq, const act_t *head, int parts, int B) {
  const backend *be = a->be;
  const int P = a->group->size, Cl = a->C_local, s = Cl / P, n = l->piece_len, T = l->T, w = parts * s;
  const size_t rows = (size_t)B * n, block = rows * w;
  for (int r = 0; r < P; r++)
    for (int b = 0; b < B; b++)
      be->copy_rows(act_at(be, a->u_send, r * block + (size_t)b * n * w), w,
                    act_at(be, head, ((size_t)b * T + (size_t)r * n) * w), w, n, w);
  dcomm_alltoall_act(a->group, be, a->u_send, a->u_recv, block);
  for (int q = 0; q < P; q++) /* block q: rank q's head slice of our rows */
    for (int part = 0; part < parts; part++)
      be->copy_rows(act_at(be, seq, (size_t)part * Cl + (size_t)q * s), parts * Cl,
                    act_at(be, a->u_recv, q * block + (size_t)part * s), w, (int)rows, s);
}

/* this rank's heads' decays (NULL: no decay) */
static const f32_t *decay_slice(const sp_attention *a, const f32_t *decay) {
  return decay ? f32_at(decay, (size_t)a->group->rank * (a->NH_local / a->group->size)) : NULL;
}

void sp_ulysses_softmax_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *lse, const act_t *qkv, int B) {
  const backend *be = a->be;
  const int P = a->group->size, s = a->C_local / P, NHs = a->NH_local / P, T = l->T;
  to_heads(a, l, a->u_qkv, qkv, 3, B);
  be->attention_block_forward(a->acc, lse, a->u_qkv, act_at(be, a->u_qkv, (size_t)s), act_at(be, a->u_qkv, 2 * (size_t)s),
                              3 * s, 3 * s, B, T, T, s, NHs, 0, 0);
  be->cast_f32_to_act(a->u_out, a->acc, (size_t)B * T * s);
  to_sequence(a, l, out, a->u_out, 1, B);
}

void sp_ulysses_softmax_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *out,
                                 const f32_t *lse, const act_t *qkv, int B) {
  const backend *be = a->be;
  const int P = a->group->size, s = a->C_local / P, NHs = a->NH_local / P, T = l->T;
  to_heads(a, l, a->u_qkv, qkv, 3, B);
  to_heads(a, l, a->u_out, out, 1, B);
  to_heads(a, l, a->u_dout, dout, 1, B);
  be->attention_delta(a->delta, a->u_dout, a->u_out, B, T, s, NHs);
  be->zero_act(a->u_dqkv, (size_t)B * T * 3 * s);
  const act_t *q = a->u_qkv, *k = act_at(be, q, (size_t)s), *v = act_at(be, q, 2 * (size_t)s);
  act_t *dq = a->u_dqkv;
  be->attention_block_backward(dq, act_at(be, dq, (size_t)s), act_at(be, dq, 2 * (size_t)s), 3 * s, 3 * s, a->u_dout,
                               a->delta, lse, q, k, v, 3 * s, 3 * s, B, T, T, s, NHs, 0, 0);
  to_sequence(a, l, dqkv, a->u_dqkv, 3, B);
}

void sp_ulysses_linear_forward(sp_attention *a, const sp_layout *l, act_t *out, const act_t *qkv, const f32_t *decay,
                               int B, int chunk) {
  const int P = a->group->size;
  to_heads(a, l, a->u_qkv, qkv, 3, B);
  a->be->linear_attention_forward(a->u_out, NULL, a->u_qkv, decay_slice(a, decay), B, l->T, a->C_local / P,
                                  a->NH_local / P, chunk);
  to_sequence(a, l, out, a->u_out, 1, B);
}

void sp_ulysses_linear_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *qkv,
                                const f32_t *decay, int B, int chunk) {
  const int P = a->group->size;
  to_heads(a, l, a->u_qkv, qkv, 3, B);
  to_heads(a, l, a->u_dout, dout, 1, B);
  a->be->linear_attention_backward(a->u_dqkv, a->u_dout, a->u_qkv, NULL, decay_slice(a, decay), B, l->T,
                                   a->C_local / P, a->NH_local / P, chunk);
  to_sequence(a, l, dqkv, a->u_dqkv, 3, B);
}

/* embedding_head — the two ends of the model: the token (and position)
 * embedding before the first block, and after the last the final norm, the
 * output head (the token embedding wte when tied, else lm_head), the
 * vocabulary-parallel loss and the head's own backward; and the one row of
 * logits generation needs.
 */
#include <stdlib.h>
#include <string.h>

#include "device_comm.h"
#include "fail.h"
#include "model_internal.h"

/* ---- the embedding, forward and backward ---- */

/* Vocabulary-parallel lookup of this rank's rows into the slot's input;
 * the position embedding is added by one tp rank only, so that the sum over
 * the group holds it once. */
void embedding_forward(model *m, model_slot *s, const int32_t *inputs, int B, int T_local) {
  profile_mark(m->profile, PROFILE_EMBEDDING, false);
  const backend *be = m->be;
  const int C = m->shape.d_model, N = B * T_local, Nl = model_local_rows(m, N);
  be->ids_from_host(s->tokens, inputs, (size_t)N);
  const bool adds_positions = !m->par.tp || m->par.tp->rank == 0;
  act_t *partial = m->par.seq_shard ? m->ws.d_btc : s->input;
  be->embedding_forward(partial, s->tokens, m->ws.positions, outer_param_at(m, "wte"),
                        adds_positions ? outer_param_at(m, "wpe") : NULL, N, C, m->par.vocab_start, m->par.V_valid);
  model_sum_rows(m, s->input, partial, Nl, C);
}

/* From ws.d_resid, dL/d(the embedding's output) of this rank's rows; the
 * lookup's backward reads every row's gradient. */
void embedding_backward(model *m, model_slot *s, int B, int T_local) {
  profile_mark(m->profile, PROFILE_EMBEDDING, true);
  const int C = m->shape.d_model, Nl = model_local_rows(m, B * T_local);
  model_gather_rows(m, m->ws.d_full, m->ws.d_resid, Nl, C);
  m->be->embedding_backward(outer_grad_at(m, "wte"), outer_grad_at(m, "wpe"), m->ws.d_full, s->tokens, m->ws.positions,
                            B * T_local, C, m->par.vocab_start, m->par.V_valid);
}

/* ---- the head: final norm, output layer, loss ---- */

/* The output layer's matrix [V_local, C] (rows of this rank's vocabulary
 * shard) and its gradient: wte under GPT-2's tie, else lm_head. */
static const char *head_matrix_name(const model *m) { return m->shape.untied_head ? "lm_head" : "wte"; }

int model_head_chunk_rows(int rows, int asked) {
  if (rows < 1) return 1;
  return asked > 0 && asked < rows ? asked : rows;
}

/* Vocabulary-parallel cross-entropy (kernels/backend.h) of R rows whose
 * logits are in ws.logits: losses on every tp rank, and with dloss_scale ≠ 0
 * the logits become their gradient. The rows' losses land in host_losses
 * (where model_copy_token_losses finds them). Returns their sum. */
static double crossentropy(model *m, const int32_t *targets, int R, float dloss_scale, float *host_losses) {
  const backend *be = m->be;
  model_workspace *ws = &m->ws;
  const model_parallel *par = &m->par;
  be->ids_from_host(ws->targets, targets, (size_t)R);
  be->crossentropy_max(ws->ce_max, ws->logits, R, par->V_valid, par->V_local);
  if (par->tp) dcomm_allreduce_max_f32(par->tp, be, ws->ce_max, (size_t)R);
  be->crossentropy_sumexp(ws->ce_stats, ws->logits, ws->ce_max, ws->targets, R, par->V_valid, par->V_local,
                          par->vocab_start);
  if (par->tp) dcomm_allreduce_sum_f32(par->tp, be, ws->ce_stats, 2 * (size_t)R);
  be->crossentropy_finish(ws->losses, ws->logits, ws->ce_max, ws->ce_stats, ws->targets, R, par->V_valid,
                          par->V_local, par->vocab_start, dloss_scale);
  be->f32_to_host(host_losses, ws->losses, (size_t)R);
  double total = 0.0;
  for (int i = 0; i < R; i++) total += host_losses[i];
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
double head_forward(model *m, const act_t *x, act_t *d_x, const int32_t *targets, int B, int T_local,
                    float dloss_scale, model_pass pass) {
  const backend *be = m->be;
  model_workspace *ws = &m->ws;
  const int C = m->shape.d_model, V = m->par.V_local, N = B * T_local, Nl = model_local_rows(m, N);
  const act_t *head_w = outer_param_at(m, head_matrix_name(m)), *lnf_w = outer_param_at(m, "lnf.weight");
  act_t *lnf_local = m->par.seq_shard ? ws->d_ln : ws->lnf;
  profile_mark(m->profile, PROFILE_HEAD, false);
  model_norm_forward(m, lnf_local, ws->lnf_mean, ws->lnf_rstd, x, lnf_w, outer_param_at(m, "lnf.bias"), Nl);
  model_gather_rows(m, ws->lnf, lnf_local, Nl, C);
  if (pass == PASS_LOGITS) return 0.0; /* model_copy_last_logits computes the one row it needs */
  const float scale = pass == PASS_TRAIN ? dloss_scale : 0.0f;
  act_t *dhead_w = pass == PASS_TRAIN ? outer_grad_at(m, head_matrix_name(m)) : NULL;
  double loss_sum = 0.0;
  for (int r0 = 0; r0 < N; r0 += ws->head_rows) {
    const int R = N - r0 < ws->head_rows ? N - r0 : ws->head_rows;
    const act_t *lnf_rows = act_at(be, ws->lnf, (size_t)r0 * C);
    profile_mark(m->profile, PROFILE_HEAD, false);
    /* logits = lnf · Wᵀ (W: wte or lm_head), this rank's vocabulary rows */
    be->gemm(false, true, R, V, C, 1.0f, lnf_rows, C, head_w, C, 0.0f, ws->logits, V);
    loss_sum += crossentropy(m, targets + r0, R, scale, ws->host_losses + r0);
    if (!dhead_w) continue;
    profile_mark(m->profile, PROFILE_HEAD, true);
    /* backward: dlnf = dlogits · W (partial over vocabulary shards);
     * dW += dlogitsᵀ · lnf (this rank's rows) */
    be->gemm(false, false, R, C, V, 1.0f, ws->logits, V, head_w, C, 0.0f, act_at(be, ws->d_btc, (size_t)r0 * C), C);
    be->gemm(true, false, V, C, R, 1.0f, ws->logits, V, lnf_rows, C, 1.0f, dhead_w, C);
  }
  if (pass != PASS_TRAIN) return loss_sum; /* the head's backward goes on: still its region */
  model_sum_rows(m, ws->d_ln, ws->d_btc, Nl, C);
  be->zero_act(d_x, (size_t)Nl * C);
  model_norm_backward(m, d_x, outer_grad_at(m, "lnf.weight"), outer_grad_at(m, "lnf.bias"), ws->d_ln, x, lnf_w,
                      ws->lnf_mean, ws->lnf_rstd, Nl);
  return loss_sum;
}

void model_copy_last_logits(model *m, int B, int t, float *host_logits) {
  const int Vl = m->par.V_local;
  float *shard = xcalloc((size_t)Vl, sizeof *shard, "logits shard");
  /* the row of position t of sequence 0: on one sp rank only; its logits
   * from the final norm's output, which the PASS_LOGITS forward left whole */
  const int64_t row = sp_layout_row_of(&m->par.seq, B, 0, t);
  if (row >= 0) {
    const backend *be = m->be;
    const int C = m->shape.d_model;
    be->gemm(false, true, 1, Vl, C, 1.0f, act_at(be, m->ws.lnf, (size_t)row * C), C,
             outer_param_at(m, head_matrix_name(m)), C, 0.0f, m->ws.logits, Vl);
    be->act_to_host(shard, m->ws.logits, (size_t)Vl);
  }
  float *all = shard;
  if (m->par.tp) { /* shards are consecutive vocabulary ranges; padding sits past V */
    all = xmalloc((size_t)Vl * m->par.tp_size * sizeof *all, "gathered logits");
    comm_allgather_f32(m->par.tp, shard, all, (size_t)Vl);
  }
  memcpy(host_logits, all, (size_t)m->shape.vocab_size * sizeof *all);
  if (m->par.sp) { /* from the sp rank that holds the row: the others hold zeros */
    int64_t holder = row >= 0 ? m->par.sp->rank : -1;
    comm_allreduce_max_i64(m->par.sp, &holder, 1);
    comm_broadcast(m->par.sp, host_logits, (size_t)m->shape.vocab_size * sizeof *host_logits, (int)holder);
  }
  if (all != shard) free(all);
  free(shard);
}


void model_copy_token_losses(model *m, int B, int T, float *losses) {
  /* every position from the row that holds it (host_losses has this rank's
   * B·T_local rows, in its row order); zeros where another sp rank holds it */
  for (int b = 0; b < B; b++)
    for (int t = 0; t < T; t++) {
      const int64_t row = sp_layout_row_of(&m->par.seq, B, b, t);
      losses[(size_t)b * T + t] = row >= 0 ? m->ws.host_losses[row] : 0.0f;
    }
  /* each position is non-zero on one sp rank only: the sum is exact */
  if (m->par.sp) comm_allreduce_sum_f32(m->par.sp, losses, (size_t)B * T);
}

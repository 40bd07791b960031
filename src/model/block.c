/* block — one pre-norm transformer block, forward and backward side by
 * side. The backward mirrors the forward line by line in reverse. Linear
 * layers compute out[N, OC] = inp[N, IC] · Wᵀ + b with W stored [OC, IC].
 *
 * Scratch: the backward's buffers (ws.d_*) are idle between blocks except
 * d_resid, which carries the gradient of the residual stream. The forward
 * uses d_ln (this rank's norm output) and d_btc (partial sums) as scratch
 * under sequence sharding, so a block can be recomputed inside the backward
 * without touching d_resid. The tensor-parallel reductions around each
 * product are tensor_parallel.c's.
 */
#include "model_internal.h"

/* ---- linear layer, forward and backward ---- */

/* out[N, OC] = inp[N, IC] · Wᵀ (+ bias: one op, which CUDA fuses into the GEMM) */
static void linear_forward(const backend *be, act_t *out, const act_t *inp, const act_t *weight,
                           const act_t *bias, int N, int IC, int OC) {
  if (bias) be->gemm_bias(out, inp, weight, bias, N, IC, OC);
  else be->gemm(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC);
}

/* dinp is overwritten; dweight and dbias accumulate. */
static void linear_backward(const backend *be, act_t *dinp, act_t *dweight, act_t *dbias,
                            const act_t *dout, const act_t *inp, const act_t *weight, int N,
                            int IC, int OC) {
  if (dinp) be->gemm(false, false, N, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, dinp, IC);
  be->gemm(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
  if (dbias) be->bias_backward(dbias, dout, N, OC);
}

/* ---- the attention core: softmax or linear, on one rank or over sp ---- */

size_t model_softmax_saved_elems(const model *m, int B, int T_local) {
  const int NHl = m->par.NH_local;
  return m->par.sp ? sp_softmax_saved_elems(B, T_local, NHl) : m->be->attention_saved_elems(B, T_local, NHl);
}

size_t model_linear_state_elems(const model *m, int B) {
  return sp_linear_saved_elems(B, m->par.NH_local, model_head_size(&m->shape), sp_placement_pieces(m->par.placement));
}

/* The per-head RMSNorm (no weight) after linear attention: TransNormerLLM's
 * normalisation in place of the softmax's denominator (doc/design.md). Its
 * ε is part of the attention, not the model's norm_eps: fixed. */
#define LINEAR_OUTPUT_NORM_EPS 1e-5
static void linear_output_norm(const model *m, block_acts *a, int N) {
  const int HS = model_head_size(&m->shape);
  m->be->rmsnorm_forward(a->atty, a->att_rstd, a->att_raw, NULL, N * m->par.NH_local, HS, LINEAR_OUTPUT_NORM_EPS);
}

/* atty from qkv. `recompute`: the selective mode's rerun, which for linear
 * attention under sequence parallelism reuses the saved entering states
 * instead of communicating again. */
static void attention_core_forward(model *m, int j, block_acts *a, int B, int T, bool recompute) {
  const backend *be = m->be;
  const int Cl = m->par.C_local, NHl = m->par.NH_local, N = B * T, chunk = model_linear_chunk(&m->shape);
  sp_attention *spa = &m->par.spa;
  const sp_layout *seq = &m->par.seq;
  if (model_layer_is_linear(&m->shape, m->layout.layer_ids[j])) {
    if (m->par.sp && recompute) sp_linear_recompute(spa, seq, a->att_raw, a->att_state, a->qkv, m->w.decay, B, chunk);
    else if (m->par.sp) sp_linear_forward(spa, seq, a->att_raw, a->att_state, a->qkv, m->w.decay, B, chunk);
    else be->linear_attention_forward(a->att_raw, NULL, a->qkv, m->w.decay, B, T, Cl, NHl, chunk);
    linear_output_norm(m, a, N);
  } else if (m->par.sp) {
    sp_softmax_forward(spa, seq, a->atty, a->att_saved, a->qkv, B);
  } else {
    be->attention_forward(a->atty, a->att_saved, a->qkv, B, T, Cl, NHl);
  }
}

/* ws.d_qkv (overwritten) from ws.d_atty */
static void attention_core_backward(model *m, int j, block_acts *a, int B, int T) {
  const backend *be = m->be;
  const int Cl = m->par.C_local, NHl = m->par.NH_local, N = B * T, HS = model_head_size(&m->shape);
  const int chunk = model_linear_chunk(&m->shape);
  model_workspace *ws = &m->ws;
  sp_attention *spa = &m->par.spa;
  const sp_layout *seq = &m->par.seq;
  if (model_layer_is_linear(&m->shape, m->layout.layer_ids[j])) {
    be->zero_act(ws->d_att_raw, (size_t)N * Cl);
    be->rmsnorm_backward(ws->d_att_raw, NULL, ws->d_atty, a->att_raw, NULL, a->att_rstd, N * NHl, HS);
    if (m->par.sp)
      sp_linear_backward(spa, seq, ws->d_qkv, ws->d_att_raw, a->qkv, a->att_state, m->w.decay, B, chunk);
    else
      be->linear_attention_backward(ws->d_qkv, ws->d_att_raw, a->qkv, NULL, m->w.decay, B, T, Cl, NHl, chunk);
  } else if (m->par.sp) {
    sp_softmax_backward(spa, seq, ws->d_qkv, ws->d_atty, a->atty, a->att_saved, a->qkv, B);
  } else {
    be->attention_backward(ws->d_qkv, ws->d_atty, a->atty, a->qkv, a->att_saved, B, T, Cl, NHl);
  }
}

/* ---- one transformer block ----
 * C is the model width, Cl = C/tp this rank's share of the heads, F_l its
 * share of the MLP width; T is the tokens per sequence on this rank. */

/* A region of the profile begins (profile.h; nothing when profiling is off).
 * Recomputation inside a backward counts as backward time. */
static void mark(const model *m, profile_region region, bool backward) {
  profile_mark(m->profile, region, backward || m->recomputing);
}

static float rope_theta(const model *m) { return (float)model_rope_theta(&m->shape); }

void block_forward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, Cl = m->par.C_local, N = B * T, Nl = model_local_rows(m, N);
  const int Fl = m->par.ffn_local, F_in = m->par.mlp_in_local, NHl = m->par.NH_local;
  const size_t NlC = (size_t)Nl * C;
  const block_params *p = &m->w.blocks[j];
  model_workspace *ws = &m->ws;
  /* with sequence sharding: this rank's norm output and the partial sums */
  act_t *ln_local = m->par.seq_shard ? ws->d_ln : a->ln1;
  act_t *partial = m->par.seq_shard ? ws->d_btc : a->res2;
  mark(m, PROFILE_NORM, false);
  model_norm_forward(m, ln_local, a->ln1_mean, a->ln1_rstd, res_in, p->ln1_w, p->ln1_b, Nl);
  model_gather_rows(m, a->ln1, ln_local, Nl, C);
  mark(m, PROFILE_QKV, false);
  linear_forward(be, a->qkv, a->ln1, p->wqkv, p->bqkv, N, C, 3 * Cl); /* column-parallel */
  if (m->shape.position == POSITION_ROPE) be->rope_forward(a->qkv, ws->positions, N, Cl, NHl, rope_theta(m));
  mark(m, PROFILE_ATTENTION, false);
  attention_core_forward(m, j, a, B, T, false);
  mark(m, PROFILE_ATTN_OUT, false);
  linear_forward(be, partial, a->atty, p->wo, NULL, N, Cl, C);         /* row-parallel */
  model_sum_rows(m, a->res2, partial, Nl, C);
  if (p->bo) be->bias_add(a->res2, p->bo, Nl, C); /* after the sum: the bias is added once */
  be->accumulate(a->res2, res_in, NlC);                                  /* residual */
  ln_local = m->par.seq_shard ? ws->d_ln : a->ln2;
  partial = m->par.seq_shard ? ws->d_btc : a->res3;
  mark(m, PROFILE_NORM, false);
  model_norm_forward(m, ln_local, a->ln2_mean, a->ln2_rstd, a->res2, p->ln2_w, p->ln2_b, Nl);
  model_gather_rows(m, a->ln2, ln_local, Nl, C);
  /* column-parallel; GELU with a bias is one op (fch kept for gelu_backward) */
  mark(m, PROFILE_MLP_IN, false);
  if (m->shape.mlp == MLP_GELU && p->b1) {
    be->gemm_bias_gelu(a->fch_gelu, a->fch, a->ln2, p->w1, p->b1, N, C, F_in);
  } else {
    linear_forward(be, a->fch, a->ln2, p->w1, p->b1, N, C, F_in);
    mark(m, PROFILE_MLP_ACT, false);
    if (m->shape.mlp == MLP_SWIGLU) be->swiglu_forward(a->fch_gelu, a->fch, N, Fl);
    else be->gelu_forward(a->fch_gelu, a->fch, (size_t)N * Fl);
  }
  mark(m, PROFILE_MLP_OUT, false);
  linear_forward(be, partial, a->fch_gelu, p->w2, NULL, N, Fl, C);     /* row-parallel */
  model_sum_rows(m, a->res3, partial, Nl, C);
  if (p->b2) be->bias_add(a->res3, p->b2, Nl, C);
  be->accumulate(a->res3, a->res2, NlC);                                 /* residual */
}

void block_backward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, Cl = m->par.C_local, N = B * T, Nl = model_local_rows(m, N);
  const int Fl = m->par.ffn_local, F_in = m->par.mlp_in_local, NHl = m->par.NH_local;
  const block_params *p = &m->w.blocks[j];
  block_params *g = &m->w.block_grads[j];
  model_workspace *ws = &m->ws;
  /* what the slot did not keep: the same computation again, the same bits */
  m->recomputing = true;
  if (m->recompute == RECOMPUTE_FULL) block_forward(m, j, a, res_in, B, T);
  if (m->recompute == RECOMPUTE_SELECTIVE) {
    mark(m, PROFILE_ATTENTION, true);
    attention_core_forward(m, j, a, B, T, true);
  }
  m->recomputing = false;
  /* MLP: the residual passes d_resid straight through; the branch adds to it. */
  mark(m, PROFILE_MLP_OUT, true);
  model_gather_rows(m, ws->d_full, ws->d_resid, Nl, C);
  if (m->shape.mlp == MLP_SWIGLU) {
    linear_backward(be, ws->d_ffn_act, g->w2, g->b2, ws->d_full, a->fch_gelu, p->w2, N, Fl, C);
    mark(m, PROFILE_MLP_ACT, true);
    be->swiglu_backward(ws->d_bt4c, a->fch, ws->d_ffn_act, N, Fl);
  } else {
    linear_backward(be, ws->d_bt4c, g->w2, g->b2, ws->d_full, a->fch_gelu, p->w2, N, Fl, C);
    mark(m, PROFILE_MLP_ACT, true);
    be->gelu_backward(ws->d_bt4c, a->fch, ws->d_bt4c, (size_t)N * Fl);
  }
  mark(m, PROFILE_MLP_IN, true);
  linear_backward(be, ws->d_btc, g->w1, g->b1, ws->d_bt4c, a->ln2, p->w1, N, C, F_in);
  mark(m, PROFILE_NORM, true);
  model_sum_rows(m, ws->d_ln, ws->d_btc, Nl, C);
  model_norm_backward(m, ws->d_resid, g->ln2_w, g->ln2_b, ws->d_ln, a->res2, p->ln2_w, a->ln2_mean, a->ln2_rstd, Nl);
  /* attention */
  mark(m, PROFILE_ATTN_OUT, true);
  model_gather_rows(m, ws->d_full, ws->d_resid, Nl, C);
  linear_backward(be, ws->d_atty, g->wo, g->bo, ws->d_full, a->atty, p->wo, N, Cl, C);
  mark(m, PROFILE_ATTENTION, true);
  attention_core_backward(m, j, a, B, T);
  mark(m, PROFILE_QKV, true);
  if (m->shape.position == POSITION_ROPE) be->rope_backward(ws->d_qkv, ws->positions, N, Cl, NHl, rope_theta(m));
  linear_backward(be, ws->d_btc, g->wqkv, g->bqkv, ws->d_qkv, a->ln1, p->wqkv, N, C, 3 * Cl);
  mark(m, PROFILE_NORM, true);
  model_sum_rows(m, ws->d_ln, ws->d_btc, Nl, C);
  model_norm_backward(m, ws->d_resid, g->ln1_w, g->ln1_b, ws->d_ln, res_in, p->ln1_w, a->ln1_mean, a->ln1_rstd, Nl);
}

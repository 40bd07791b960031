/* model_block — one pre-norm transformer block, forward and backward side by
 * side, and the tensor-parallel reductions around it (Megatron's f and g).
 * The backward mirrors the forward line by line in reverse. Linear layers
 * compute out[N, OC] = inp[N, IC] · Wᵀ + b with W stored [OC, IC].
 *
 * Scratch: the backward's buffers (d_*) are idle between blocks except
 * d_resid, which carries the gradient of the residual stream. The forward
 * uses d_ln (this rank's norm output) and d_btc (partial sums) as scratch
 * under sequence sharding, so a block can be recomputed inside the backward
 * without touching d_resid. The tp reductions take the backend's buffers
 * (parallel/device_comm), so they run on host and device memory alike. */
#include <stdlib.h>

#include "device_comm.h"
#include "fail.h"
#include "model_internal.h"

const char *const block_param_names[BLOCK_N_PARAMS] = {
    "ln1.weight", "ln1.bias", "attn.wqkv", "attn.bqkv", "attn.wo", "attn.bo",
    "ln2.weight", "ln2.bias", "mlp.w1",    "mlp.b1",    "mlp.w2",  "mlp.b2"};

int model_local_rows(const model *m, int N) { return m->seq_shard ? N / m->tp_size : N; }

/* ---- tensor-parallel reductions (Megatron's f and g operators) ---- */

/* Leaving a row-parallel product: the partial sums over tp of all N rows
 * become this rank's rows — an all-reduce in place (local == partial), or a
 * reduce-scatter into the local rows with sequence sharding. */
void model_sum_rows(model *m, act_t *local, act_t *partial, int N_local, int C) {
  if (!m->tp) return;
  if (m->seq_shard)
    dcomm_reduce_scatter_sum_act(m->tp, m->be, partial, local, (size_t)N_local * C);
  else
    dcomm_allreduce_sum_act(m->tp, m->be, partial, (size_t)N_local * C);
}

/* Entering a column-parallel product: every rank needs all N rows — an
 * all-gather of the local rows with sequence sharding, nothing otherwise
 * (full == local). */
void model_gather_rows(model *m, act_t *full, const act_t *local, int N_local, int C) {
  if (m->seq_shard)
    dcomm_allgather_act(m->tp, m->be, local, full, (size_t)N_local * C);
}

void model_norm_forward(const model *m, act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp, const act_t *weight,
                        const act_t *bias, int N_local) {
  const int C = m->shape.d_model;
  if (m->shape.norm == NORM_RMSNORM) m->be->rmsnorm_forward(out, rstd, inp, weight, N_local, C);
  else m->be->layernorm_forward(out, mean, rstd, inp, weight, bias, N_local, C);
}

static void norm_backward_local(const model *m, act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                                const act_t *inp, const act_t *weight, const f32_t *mean, const f32_t *rstd,
                                int N_local) {
  const int C = m->shape.d_model;
  if (m->shape.norm == NORM_RMSNORM) m->be->rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N_local, C);
  else m->be->layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N_local, C);
}

/* The norm's backward on this rank's rows. With sequence sharding the weight
 * and bias gradients cover only those rows: they are computed apart, summed
 * over tp, then accumulated, so every tp rank holds the same gradient. */
void model_norm_backward(model *m, act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                         const act_t *inp, const act_t *weight, const f32_t *mean, const f32_t *rstd,
                         int N_local) {
  const backend *be = m->be;
  const int C = m->shape.d_model;
  if (!m->seq_shard) {
    norm_backward_local(m, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N_local);
    return;
  }
  act_t *dw = m->ln_grad_scratch, *db = dbias ? act_at(be, m->ln_grad_scratch, (size_t)C) : NULL;
  const size_t n = dbias ? 2 * (size_t)C : (size_t)C;
  be->zero_act(m->ln_grad_scratch, n);
  norm_backward_local(m, dinp, dw, db, dout, inp, weight, mean, rstd, N_local);
  dcomm_allreduce_sum_act(m->tp, be, m->ln_grad_scratch, n);
  be->accumulate(dweight, dw, (size_t)C);
  if (dbias) be->accumulate(dbias, db, (size_t)C);
}

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
  return m->sp ? sp_softmax_saved_elems(B, T_local, m->NH_local) : m->be->attention_saved_elems(B, T_local, m->NH_local);
}

size_t model_linear_state_elems(const model *m, int B) {
  const int HS = m->shape.d_model / m->shape.n_head;
  return sp_linear_saved_elems(B, m->NH_local, HS, m->placement == SP_ZIGZAG ? 2 : 1);
}

static int linear_chunk(const model *m) { return m->shape.linear_chunk > 0 ? m->shape.linear_chunk : 64; }
static float rope_theta(const model *m) { return m->shape.rope_theta > 0 ? (float)m->shape.rope_theta : 10000.0f; }

/* The per-head RMSNorm (no weight) after linear attention: TransNormerLLM's
 * normalisation in place of the softmax's denominator (doc/design.md). */
static void linear_output_norm(const model *m, block_acts *a, int N) {
  const int HS = m->shape.d_model / m->shape.n_head;
  m->be->rmsnorm_forward(a->atty, a->att_rstd, a->att_raw, NULL, N * m->NH_local, HS);
}

/* atty from qkv. `recompute`: the selective mode's rerun, which for linear
 * attention under sequence parallelism reuses the saved entering states
 * instead of communicating again. */
static void attention_core_forward(model *m, int j, block_acts *a, int B, int T, bool recompute) {
  const backend *be = m->be;
  const int Cl = m->C_local, NHl = m->NH_local, N = B * T;
  if (model_layer_is_linear(&m->shape, m->layer_ids[j])) {
    if (m->sp && recompute) sp_linear_recompute(&m->spa, &m->layout, a->att_raw, a->att_state, a->qkv, m->decay, B, linear_chunk(m));
    else if (m->sp) sp_linear_forward(&m->spa, &m->layout, a->att_raw, a->att_state, a->qkv, m->decay, B, linear_chunk(m));
    else be->linear_attention_forward(a->att_raw, NULL, a->qkv, m->decay, B, T, Cl, NHl, linear_chunk(m));
    linear_output_norm(m, a, N);
  } else if (m->sp) {
    sp_softmax_forward(&m->spa, &m->layout, a->atty, a->att_saved, a->qkv, B);
  } else {
    be->attention_forward(a->atty, a->att_saved, a->qkv, B, T, Cl, NHl);
  }
}

/* m->d_qkv (overwritten) from m->d_atty */
static void attention_core_backward(model *m, int j, block_acts *a, int B, int T) {
  const backend *be = m->be;
  const int Cl = m->C_local, NHl = m->NH_local, N = B * T, HS = m->shape.d_model / m->shape.n_head;
  if (model_layer_is_linear(&m->shape, m->layer_ids[j])) {
    be->zero_act(m->d_att_raw, (size_t)N * Cl);
    be->rmsnorm_backward(m->d_att_raw, NULL, m->d_atty, a->att_raw, NULL, a->att_rstd, N * NHl, HS);
    if (m->sp)
      sp_linear_backward(&m->spa, &m->layout, m->d_qkv, m->d_att_raw, a->qkv, a->att_state, m->decay, B, linear_chunk(m));
    else
      be->linear_attention_backward(m->d_qkv, m->d_att_raw, a->qkv, NULL, m->decay, B, T, Cl, NHl, linear_chunk(m));
  } else if (m->sp) {
    sp_softmax_backward(&m->spa, &m->layout, m->d_qkv, m->d_atty, a->atty, a->att_saved, a->qkv, B);
  } else {
    be->attention_backward(m->d_qkv, m->d_atty, a->atty, a->qkv, a->att_saved, B, T, Cl, NHl);
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

void block_forward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, Cl = m->C_local, N = B * T, Nl = model_local_rows(m, N);
  const int Fl = m->ffn_local, F_in = m->mlp_in_local;
  const size_t NlC = (size_t)Nl * C;
  const block_params *p = &m->blocks[j];
  /* with sequence sharding: this rank's norm output and the partial sums */
  act_t *ln_local = m->seq_shard ? m->d_ln : a->ln1;
  act_t *partial = m->seq_shard ? m->d_btc : a->res2;
  mark(m, PROFILE_NORM, false);
  model_norm_forward(m, ln_local, a->ln1_mean, a->ln1_rstd, res_in, p->ln1_w, p->ln1_b, Nl);
  model_gather_rows(m, a->ln1, ln_local, Nl, C);
  mark(m, PROFILE_QKV, false);
  linear_forward(be, a->qkv, a->ln1, p->wqkv, p->bqkv, N, C, 3 * Cl); /* column-parallel */
  if (m->shape.position == POSITION_ROPE) be->rope_forward(a->qkv, m->positions, N, Cl, m->NH_local, rope_theta(m));
  mark(m, PROFILE_ATTENTION, false);
  attention_core_forward(m, j, a, B, T, false);
  mark(m, PROFILE_ATTN_OUT, false);
  linear_forward(be, partial, a->atty, p->wo, NULL, N, Cl, C);         /* row-parallel */
  model_sum_rows(m, a->res2, partial, Nl, C);
  if (p->bo) be->bias_add(a->res2, p->bo, Nl, C); /* after the sum: the bias is added once */
  be->accumulate(a->res2, res_in, NlC);                                  /* residual */
  ln_local = m->seq_shard ? m->d_ln : a->ln2;
  partial = m->seq_shard ? m->d_btc : a->res3;
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
  const int C = m->shape.d_model, Cl = m->C_local, N = B * T, Nl = model_local_rows(m, N);
  const int Fl = m->ffn_local, F_in = m->mlp_in_local;
  const block_params *p = &m->blocks[j];
  block_params *g = &m->block_grads[j];
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
  model_gather_rows(m, m->d_full, m->d_resid, Nl, C);
  if (m->shape.mlp == MLP_SWIGLU) {
    linear_backward(be, m->d_ffn_act, g->w2, g->b2, m->d_full, a->fch_gelu, p->w2, N, Fl, C);
    mark(m, PROFILE_MLP_ACT, true);
    be->swiglu_backward(m->d_bt4c, a->fch, m->d_ffn_act, N, Fl);
  } else {
    linear_backward(be, m->d_bt4c, g->w2, g->b2, m->d_full, a->fch_gelu, p->w2, N, Fl, C);
    mark(m, PROFILE_MLP_ACT, true);
    be->gelu_backward(m->d_bt4c, a->fch, m->d_bt4c, (size_t)N * Fl);
  }
  mark(m, PROFILE_MLP_IN, true);
  linear_backward(be, m->d_btc, g->w1, g->b1, m->d_bt4c, a->ln2, p->w1, N, C, F_in);
  mark(m, PROFILE_NORM, true);
  model_sum_rows(m, m->d_ln, m->d_btc, Nl, C);
  model_norm_backward(m, m->d_resid, g->ln2_w, g->ln2_b, m->d_ln, a->res2, p->ln2_w, a->ln2_mean, a->ln2_rstd, Nl);
  /* attention */
  mark(m, PROFILE_ATTN_OUT, true);
  model_gather_rows(m, m->d_full, m->d_resid, Nl, C);
  linear_backward(be, m->d_atty, g->wo, g->bo, m->d_full, a->atty, p->wo, N, Cl, C);
  mark(m, PROFILE_ATTENTION, true);
  attention_core_backward(m, j, a, B, T);
  mark(m, PROFILE_QKV, true);
  if (m->shape.position == POSITION_ROPE) be->rope_backward(m->d_qkv, m->positions, N, Cl, m->NH_local, rope_theta(m));
  linear_backward(be, m->d_btc, g->wqkv, g->bqkv, m->d_qkv, a->ln1, p->wqkv, N, C, 3 * Cl);
  mark(m, PROFILE_NORM, true);
  model_sum_rows(m, m->d_ln, m->d_btc, Nl, C);
  model_norm_backward(m, m->d_resid, g->ln1_w, g->ln1_b, m->d_ln, res_in, p->ln1_w, a->ln1_mean, a->ln1_rstd, Nl);
}

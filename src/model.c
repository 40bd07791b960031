/* model — see model.h. Each block's forward and backward sit side by side;
 * the backward mirrors the forward line by line in reverse. Linear layers
 * compute out[N, OC] = inp[N, IC] · Wᵀ + b with W stored [OC, IC]. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

struct block_params {
  act_t *ln1_w, *ln1_b, *wqkv, *bqkv, *wo, *bo, *ln2_w, *ln2_b, *w1, *b1, *w2, *b2;
};

/* What one block's backward needs from its forward (one micro-batch). */
struct block_acts {
  act_t *ln1, *qkv, *atty, *res2, *ln2, *fch, *fch_gelu, *res3;
  f32_t *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd, *att_saved;
};

static act_t *param_at(const model *m, act_t *base, const char *name) {
  const param_spec *p = registry_find(&m->reg, name);
  ENSURE(p, "no parameter %s", name);
  return act_at(m->be, base, p->offset);
}

void model_register(registry *reg, const model_shape *s) {
  const int64_t C = s->d_model, NH = s->n_head, HS = s->d_model / s->n_head;
  /* GPT-2: residual output projections scaled by 1/sqrt(2·n_layer) */
  const double std = 0.02, residual_std = 0.02 / sqrt(2.0 * s->n_layer);
  registry_add_padded(reg, "wte", 2, (int64_t[]){s->vocab_size, C}, 0, INIT_NORMAL, std, true, -1);
  registry_add(reg, "wpe", 2, (int64_t[]){s->seq_len, C}, -1, INIT_NORMAL, std, false, -1);
  for (int l = 0; l < s->n_layer; l++) {
    char name[REGISTRY_NAME_BYTES];
#define ADD(suffix, n_dims, shape, split, init, init_std, decay)                       \
  snprintf(name, sizeof name, "layers.%d.%s", l, suffix);                                \
  registry_add(reg, name, n_dims, (int64_t[])shape, split, init, init_std, decay, l)
#define SHAPE(...) {__VA_ARGS__}
    ADD("ln1.weight", 1, SHAPE(C), -1, INIT_ONES, 0, false);
    ADD("ln1.bias", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
    ADD("attn.wqkv", 4, SHAPE(3, NH, HS, C), 1, INIT_NORMAL, std, true);
    ADD("attn.bqkv", 3, SHAPE(3, NH, HS), 1, INIT_ZEROS, 0, false);
    ADD("attn.wo", 3, SHAPE(C, NH, HS), 1, INIT_NORMAL, residual_std, true);
    ADD("attn.bo", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
    ADD("ln2.weight", 1, SHAPE(C), -1, INIT_ONES, 0, false);
    ADD("ln2.bias", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
    ADD("mlp.w1", 2, SHAPE(4 * C, C), 0, INIT_NORMAL, std, true);
    ADD("mlp.b1", 1, SHAPE(4 * C), 0, INIT_ZEROS, 0, false);
    ADD("mlp.w2", 2, SHAPE(C, 4 * C), 1, INIT_NORMAL, residual_std, true);
    ADD("mlp.b2", 1, SHAPE(C), -1, INIT_ZEROS, 0, false);
#undef ADD
#undef SHAPE
  }
  registry_add(reg, "lnf.weight", 1, (int64_t[]){C}, -1, INIT_ONES, 0, false, -1);
  registry_add(reg, "lnf.bias", 1, (int64_t[]){C}, -1, INIT_ZEROS, 0, false, -1);
}

static void bind_block_params(model *m, act_t *base, block_params *out) {
  for (int l = 0; l < m->shape.n_layer; l++) {
    char name[REGISTRY_NAME_BYTES];
#define BIND(field, suffix)                                  \
  snprintf(name, sizeof name, "layers.%d.%s", l, suffix);     \
  out[l].field = param_at(m, base, name)
    BIND(ln1_w, "ln1.weight"); BIND(ln1_b, "ln1.bias");
    BIND(wqkv, "attn.wqkv"); BIND(bqkv, "attn.bqkv");
    BIND(wo, "attn.wo"); BIND(bo, "attn.bo");
    BIND(ln2_w, "ln2.weight"); BIND(ln2_b, "ln2.bias");
    BIND(w1, "mlp.w1"); BIND(b1, "mlp.b1");
    BIND(w2, "mlp.w2"); BIND(b2, "mlp.b2");
#undef BIND
  }
}

/* Binds block l's tensors into window l mod 2, as if the window were the
 * flat buffer shifted to the block's first element. */
static void bind_block_windows(model *m, act_t *windows[2], block_params *out) {
  static const char *names[12] = {"ln1.weight", "ln1.bias", "attn.wqkv", "attn.bqkv",
                                  "attn.wo",    "attn.bo",  "ln2.weight", "ln2.bias",
                                  "mlp.w1",     "mlp.b1",   "mlp.w2",     "mlp.b2"};
  for (int l = 0; l < m->shape.n_layer; l++) {
    block_params *b = &out[l];
    act_t **fields[12] = {&b->ln1_w, &b->ln1_b, &b->wqkv, &b->bqkv, &b->wo, &b->bo,
                          &b->ln2_w, &b->ln2_b, &b->w1,   &b->b1,   &b->w2, &b->b2};
    const size_t block_start = m->block_start0 + (size_t)l * m->block_elems;
    for (int k = 0; k < 12; k++) {
      char name[REGISTRY_NAME_BYTES];
      snprintf(name, sizeof name, "layers.%d.%s", l, names[k]);
      *fields[k] = act_at(m->be, windows[l % 2], registry_find(&m->reg, name)->offset - block_start);
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

/* Lays out every activation; run once to count, once to assign. */
static void carve_activations(model *m, carver *c) {
  const size_t B = (size_t)m->max_B, T = (size_t)m->max_T, C = (size_t)m->shape.d_model;
  const size_t Cl = (size_t)m->C_local, V = (size_t)m->V_local, BT = B * T;
  /* rows of the residual stream and norm statistics held here */
  const size_t BTl = m->seq_shard ? BT / (size_t)m->tp_size : BT;
  m->encoded = carve_act(c, BTl * C);
  for (int l = 0; l < m->shape.n_layer; l++) {
    block_acts *a = &m->acts[l];
    a->ln1 = carve_act(c, BT * C);
    a->qkv = carve_act(c, BT * 3 * Cl);
    a->atty = carve_act(c, BT * Cl);
    a->res2 = carve_act(c, BTl * C);
    a->ln2 = carve_act(c, BT * C);
    a->fch = carve_act(c, BT * 4 * Cl);
    a->fch_gelu = carve_act(c, BT * 4 * Cl);
    a->res3 = carve_act(c, BTl * C);
    a->ln1_mean = carve_f32(c, BTl);
    a->ln1_rstd = carve_f32(c, BTl);
    a->ln2_mean = carve_f32(c, BTl);
    a->ln2_rstd = carve_f32(c, BTl);
    a->att_saved = carve_f32(c, m->be->attention_saved_elems((int)B, (int)T, m->NH_local));
  }
  m->lnf = carve_act(c, BT * C);
  m->logits = carve_act(c, BT * V);
  m->lnf_mean = carve_f32(c, BTl);
  m->lnf_rstd = carve_f32(c, BTl);
  m->losses = carve_f32(c, BT);
  m->ce_max = carve_f32(c, BT);
  m->ce_stats = carve_f32(c, 2 * BT);
  /* backward scratch, reused by every block */
  m->d_resid = carve_act(c, BTl * C); /* also the forward's local norm output */
  m->d_btc = carve_act(c, BT * C);     /* also the forward's partial sums */
  m->d_atty = carve_act(c, BT * Cl);
  m->d_qkv = carve_act(c, BT * 3 * Cl);
  m->d_bt4c = carve_act(c, BT * 4 * Cl);
  if (m->seq_shard) {
    m->d_full = carve_act(c, BT * C);
    m->d_ln = carve_act(c, BTl * C);
    m->ln_grad_scratch = carve_act(c, 2 * C);
  } else { /* without sharding, local rows are all rows: the buffers coincide */
    m->d_full = m->d_resid;
    m->d_ln = m->d_btc;
    m->ln_grad_scratch = NULL;
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
  m->tp = tp && tp->size > 1 ? tp : NULL;
  m->tp_size = m->tp ? tp->size : 1;
  m->seq_shard = seq_shard && m->tp;
  ENSURE(!m->seq_shard || max_T % m->tp_size == 0, "sequence sharding: tp %d does not divide T %d",
         m->tp_size, max_T);
  const int tp_rank = m->tp ? tp->rank : 0;
  ENSURE(shape.n_head % m->tp_size == 0 && shape.d_model % m->tp_size == 0,
         "n_head %d / d_model %d not divisible by tp %d", shape.n_head, shape.d_model, m->tp_size);
  m->C_local = shape.d_model / m->tp_size;
  m->NH_local = shape.n_head / m->tp_size;
  registry_init(&m->reg, tp_rank, m->tp_size);
  model_register(&m->reg, &m->shape);
  const param_spec *wte = registry_find(&m->reg, "wte");
  m->V_local = (int)wte->local_shape[0];
  m->V_valid = (int)wte->local_valid;
  m->vocab_start = (int)wte->local_start;
  const size_t n_params = m->reg.n_local_total;
  m->blocks = xcalloc((size_t)shape.n_layer, sizeof *m->blocks, "block pointers");
  m->block_grads = xcalloc((size_t)shape.n_layer, sizeof *m->block_grads, "block pointers");
  char first[REGISTRY_NAME_BYTES], second[REGISTRY_NAME_BYTES];
  snprintf(first, sizeof first, "layers.0.ln1.weight");
  snprintf(second, sizeof second, "%s", shape.n_layer > 1 ? "layers.1.ln1.weight" : "lnf.weight");
  m->block_start0 = registry_find(&m->reg, first)->offset;
  m->block_elems = registry_find(&m->reg, second)->offset - m->block_start0;
  m->outer_elems = n_params - (size_t)shape.n_layer * m->block_elems;
  /* Windowed buffers hold the embeddings then the final norm, back to back,
   * and blocks alternate between two block-sized windows (block l: window
   * l mod 2). */
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

  m->acts = xcalloc((size_t)shape.n_layer, sizeof *m->acts, "activation pointers");
  carver count = {.be = be};
  carve_activations(m, &count);
  carver assign = {.be = be};
  assign.act_base = be->alloc_act(count.act_elems, "activations");
  assign.f32_base = be->alloc_f32(count.f32_elems, "activation statistics");
  m->arena[0] = assign.act_base;
  m->arena[1] = assign.f32_base;
  carve_activations(m, &assign);
  m->activation_bytes = count.act_elems * be->act_elem_bytes + count.f32_elems * sizeof(float);

  m->inputs = be->alloc_ids((size_t)max_B * max_T, "input tokens");
  m->targets = be->alloc_ids((size_t)max_B * max_T, "target tokens");
  m->positions = be->alloc_ids((size_t)max_B * max_T, "position ids");
  m->host_losses = xmalloc((size_t)max_B * max_T * sizeof(float), "losses");
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
  be->free_buffer(m->inputs);
  be->free_buffer(m->targets);
  be->free_buffer(m->positions);
  free(m->blocks);
  free(m->block_grads);
  free(m->acts);
  free(m->host_losses);
  registry_free(&m->reg);
  memset(m, 0, sizeof *m);
}

void model_zero_grads(model *m) {
  m->be->zero_act(m->grads, m->windowed_grads ? m->outer_elems : m->reg.n_local_total);
}

void model_outer_ranges(const model *m, size_t *embeddings_end, size_t *final_norm_start) {
  *embeddings_end = m->block_start0;
  *final_norm_start = m->block_start0 + (size_t)m->shape.n_layer * m->block_elems;
}

/* Where an embedding or final-norm tensor lives in a buffer: at its flat
 * offset, or in a windowed buffer's outer part (embeddings at their flat
 * offsets, the final norm right after them). */
static size_t outer_offset(const model *m, const char *name, bool windowed) {
  const param_spec *p = registry_find(&m->reg, name);
  ENSURE(p && p->layer < 0, "no embedding or final-norm parameter %s", name);
  size_t offset = p->offset;
  if (windowed && offset >= m->block_start0)
    offset = m->block_start0 + (offset - (m->block_start0 + (size_t)m->shape.n_layer * m->block_elems));
  return offset;
}
static act_t *outer_grad_at(const model *m, const char *name) {
  return act_at(m->be, m->grads, outer_offset(m, name, m->windowed_grads));
}
static act_t *outer_param_at(const model *m, const char *name) {
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

/* ZeRO-3: make sure block l's weights are in its window before use. */
static void need_block(model *m, int l, int next) {
  if (m->windowed_params && m->param_hooks)
    m->param_hooks->need_block(m->param_hooks->context, l, l % 2, m->param_windows[l % 2],
                               m->block_start0 + (size_t)l * m->block_elems, m->block_elems, next);
}

int64_t model_n_params(const model *m) {
  int64_t total = 0;
  for (int i = 0; i < m->reg.n_params; i++) total += m->reg.params[i].n_logical;
  return total;
}

double model_flops_per_token(const model_shape *s, int T) {
  const double C = s->d_model, L = s->n_layer, V = s->vocab_size;
  /* N counts the matrices a token multiplies through: per block 12·C² (QKV 3C²,
   * output C², MLP 8C²) plus the tied head V·C; biases and norms are noise. */
  const double matmul_params = L * 12.0 * C * C + V * C;
  return 6.0 * matmul_params + 6.0 * L * T * C;
}

/* ---- tensor-parallel reductions (Megatron's f and g operators) ---- */

static float *host_of(const model *m, const act_t *x) {
  float *host = m->be->host_pointer((void *)x);
  ENSURE(host, "tp communication needs host-addressable activations on the %s backend", m->be->name);
  return host;
}

/* Leaving a row-parallel product: the partial sums over tp of all N rows
 * become this rank's rows — an all-reduce in place (local == partial), or a
 * reduce-scatter into the local rows with sequence sharding. */
static void sum_rows(model *m, act_t *local, act_t *partial, int N_local, int C) {
  if (!m->tp) return;
  if (m->seq_shard)
    comm_reduce_scatter_sum_f32(m->tp, host_of(m, partial), host_of(m, local), (size_t)N_local * C);
  else
    comm_allreduce_sum_f32(m->tp, host_of(m, partial), (size_t)N_local * C);
}

/* Entering a column-parallel product: every rank needs all N rows — an
 * all-gather of the local rows with sequence sharding, nothing otherwise
 * (full == local). */
static void gather_rows(model *m, act_t *full, const act_t *local, int N_local, int C) {
  if (m->seq_shard)
    comm_allgather_f32(m->tp, host_of(m, local), host_of(m, full), (size_t)N_local * C);
}

/* LayerNorm backward on this rank's rows. With sequence sharding the weight
 * and bias gradients cover only those rows: they are computed apart, summed
 * over tp, then accumulated, so every tp rank holds the same gradient. */
static void norm_backward(model *m, act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                          const act_t *inp, const act_t *weight, const f32_t *mean,
                          const f32_t *rstd, int N_local, int C) {
  const backend *be = m->be;
  if (!m->seq_shard) {
    be->layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N_local, C);
    return;
  }
  act_t *dw = m->ln_grad_scratch, *db = act_at(be, m->ln_grad_scratch, (size_t)C);
  be->zero_act(m->ln_grad_scratch, 2 * (size_t)C);
  be->layernorm_backward(dinp, dw, db, dout, inp, weight, mean, rstd, N_local, C);
  comm_allreduce_sum_f32(m->tp, host_of(m, m->ln_grad_scratch), 2 * (size_t)C);
  be->accumulate(dweight, dw, (size_t)C);
  be->accumulate(dbias, db, (size_t)C);
}

static int local_rows(const model *m, int N) { return m->seq_shard ? N / m->tp_size : N; }

/* ---- linear layer, forward and backward ---- */

/* out[N, OC] = inp[N, IC] · Wᵀ (+ bias) */
static void linear_forward(const backend *be, act_t *out, const act_t *inp, const act_t *weight,
                           const act_t *bias, int N, int IC, int OC) {
  be->gemm(false, true, N, OC, IC, 1.0f, inp, IC, weight, IC, 0.0f, out, OC);
  if (bias) be->bias_add(out, bias, N, OC);
}

/* dinp is overwritten; dweight and dbias accumulate. */
static void linear_backward(const backend *be, act_t *dinp, act_t *dweight, act_t *dbias,
                            const act_t *dout, const act_t *inp, const act_t *weight, int N,
                            int IC, int OC) {
  if (dinp) be->gemm(false, false, N, IC, OC, 1.0f, dout, OC, weight, IC, 0.0f, dinp, IC);
  be->gemm(true, false, OC, IC, N, 1.0f, dout, OC, inp, IC, 1.0f, dweight, IC);
  if (dbias) be->bias_backward(dbias, dout, N, OC);
}

/* ---- one transformer block ----
 * C is the model width, Cl = C/tp this rank's share of heads and of 4C. */

static void block_forward(model *m, int l, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, Cl = m->C_local, N = B * T, Nl = local_rows(m, N);
  const size_t NlC = (size_t)Nl * C;
  const block_params *p = &m->blocks[l];
  block_acts *a = &m->acts[l];
  /* scratch while the backward's buffers are idle: local norm output, partial sums */
  act_t *ln_local = m->seq_shard ? m->d_resid : a->ln1;
  act_t *partial = m->seq_shard ? m->d_btc : a->res2;
  be->layernorm_forward(ln_local, a->ln1_mean, a->ln1_rstd, res_in, p->ln1_w, p->ln1_b, Nl, C);
  gather_rows(m, a->ln1, ln_local, Nl, C);
  linear_forward(be, a->qkv, a->ln1, p->wqkv, p->bqkv, N, C, 3 * Cl); /* column-parallel */
  be->attention_forward(a->atty, a->att_saved, a->qkv, B, T, Cl, m->NH_local);
  linear_forward(be, partial, a->atty, p->wo, NULL, N, Cl, C);         /* row-parallel */
  sum_rows(m, a->res2, partial, Nl, C);
  be->bias_add(a->res2, p->bo, Nl, C); /* after the sum: the bias is added once */
  be->accumulate(a->res2, res_in, NlC);                                  /* residual */
  ln_local = m->seq_shard ? m->d_resid : a->ln2;
  partial = m->seq_shard ? m->d_btc : a->res3;
  be->layernorm_forward(ln_local, a->ln2_mean, a->ln2_rstd, a->res2, p->ln2_w, p->ln2_b, Nl, C);
  gather_rows(m, a->ln2, ln_local, Nl, C);
  linear_forward(be, a->fch, a->ln2, p->w1, p->b1, N, C, 4 * Cl);      /* column-parallel */
  be->gelu_forward(a->fch_gelu, a->fch, (size_t)N * 4 * Cl);
  linear_forward(be, partial, a->fch_gelu, p->w2, NULL, N, 4 * Cl, C); /* row-parallel */
  sum_rows(m, a->res3, partial, Nl, C);
  be->bias_add(a->res3, p->b2, Nl, C);
  be->accumulate(a->res3, a->res2, NlC);                                 /* residual */
}

/* On entry m->d_resid holds dL/d(block output) for this rank's rows; on
 * exit dL/d(block input). */
static void block_backward(model *m, int l, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, Cl = m->C_local, N = B * T, Nl = local_rows(m, N);
  const block_params *p = &m->blocks[l];
  block_params *g = &m->block_grads[l];
  const block_acts *a = &m->acts[l];
  /* MLP: the residual passes d_resid straight through; the branch adds to it. */
  gather_rows(m, m->d_full, m->d_resid, Nl, C);
  linear_backward(be, m->d_bt4c, g->w2, g->b2, m->d_full, a->fch_gelu, p->w2, N, 4 * Cl, C);
  be->gelu_backward(m->d_bt4c, a->fch, m->d_bt4c, (size_t)N * 4 * Cl);
  linear_backward(be, m->d_btc, g->w1, g->b1, m->d_bt4c, a->ln2, p->w1, N, C, 4 * Cl);
  sum_rows(m, m->d_ln, m->d_btc, Nl, C);
  norm_backward(m, m->d_resid, g->ln2_w, g->ln2_b, m->d_ln, a->res2, p->ln2_w, a->ln2_mean,
                a->ln2_rstd, Nl, C);
  /* attention */
  gather_rows(m, m->d_full, m->d_resid, Nl, C);
  linear_backward(be, m->d_atty, g->wo, g->bo, m->d_full, a->atty, p->wo, N, Cl, C);
  be->attention_backward(m->d_qkv, m->d_atty, a->atty, a->qkv, a->att_saved, B, T, Cl, m->NH_local);
  linear_backward(be, m->d_btc, g->wqkv, g->bqkv, m->d_qkv, a->ln1, p->wqkv, N, C, 3 * Cl);
  sum_rows(m, m->d_ln, m->d_btc, Nl, C);
  norm_backward(m, m->d_resid, g->ln1_w, g->ln1_b, m->d_ln, res_in, p->ln1_w, a->ln1_mean,
                a->ln1_rstd, Nl, C);
}

static const act_t *block_input(const model *m, int l) {
  return l == 0 ? m->encoded : m->acts[l - 1].res3;
}

/* Embedding, blocks, final norm and head: leaves this rank's vocabulary
 * shard of the logits in m->logits [N, V_local]. */
static void forward_to_logits(model *m, const int32_t *inputs, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, N = B * T, Nl = local_rows(m, N);
  ENSURE(B <= m->max_B && T <= m->max_T, "micro-batch %dx%d exceeds the arena's %dx%d", B, T,
         m->max_B, m->max_T);
  ENSURE(N == Nl * (m->seq_shard ? m->tp_size : 1), "sequence sharding: %d rows over tp %d", N,
         m->tp_size);
  be->ids_from_host(m->inputs, inputs, (size_t)N);
  int32_t *host_positions = xmalloc((size_t)N * sizeof *host_positions, "position ids");
  for (int n = 0; n < N; n++) host_positions[n] = n % T; /* row b·T + t is at position t */
  be->ids_from_host(m->positions, host_positions, (size_t)N);
  free(host_positions);
  /* vocabulary-parallel lookup of all N rows; the position embedding is added
   * by one tp rank only, so that the sum over the group holds it once */
  const bool adds_positions = !m->tp || m->tp->rank == 0;
  act_t *partial = m->seq_shard ? m->d_btc : m->encoded;
  be->embedding_forward(partial, m->inputs, m->positions, m->params,
                        adds_positions ? outer_param_at(m, "wpe") : NULL, N, C,
                        m->vocab_start, m->V_valid);
  sum_rows(m, m->encoded, partial, Nl, C);
  for (int l = 0; l < m->shape.n_layer; l++) {
    need_block(m, l, l + 1 < m->shape.n_layer ? l + 1 : -1);
    block_forward(m, l, block_input(m, l), B, T);
  }
  act_t *lnf_local = m->seq_shard ? m->d_resid : m->lnf;
  be->layernorm_forward(lnf_local, m->lnf_mean, m->lnf_rstd, block_input(m, m->shape.n_layer),
                        outer_param_at(m, "lnf.weight"), outer_param_at(m, "lnf.bias"),
                        Nl, C);
  gather_rows(m, m->lnf, lnf_local, Nl, C);
  /* tied head: logits = lnf · wteᵀ, this rank's vocabulary rows */
  be->gemm(false, true, N, m->V_local, C, 1.0f, m->lnf, C, m->params, C, 0.0f, m->logits,
           m->V_local);
}

/* Vocabulary-parallel cross-entropy (kernels/backend.h): losses on every tp
 * rank, and with dloss_scale ≠ 0 the logits become their gradient. */
static double crossentropy(model *m, const int32_t *targets, int N, float dloss_scale) {
  const backend *be = m->be;
  be->ids_from_host(m->targets, targets, (size_t)N);
  be->crossentropy_max(m->ce_max, m->logits, N, m->V_valid, m->V_local);
  if (m->tp) comm_allreduce_max_f32(m->tp, be->host_pointer(m->ce_max), (size_t)N);
  be->crossentropy_sumexp(m->ce_stats, m->logits, m->ce_max, m->targets, N, m->V_valid, m->V_local,
                          m->vocab_start);
  if (m->tp) comm_allreduce_sum_f32(m->tp, be->host_pointer(m->ce_stats), 2 * (size_t)N);
  be->crossentropy_finish(m->losses, m->logits, m->ce_max, m->ce_stats, m->targets, N, m->V_valid,
                          m->V_local, m->vocab_start, dloss_scale);
  be->f32_to_host(m->host_losses, m->losses, (size_t)N);
  double total = 0.0;
  for (int i = 0; i < N; i++) total += m->host_losses[i];
  return total;
}

double model_forward_loss(model *m, const int32_t *inputs, const int32_t *targets, int B, int T) {
  forward_to_logits(m, inputs, B, T);
  return crossentropy(m, targets, B * T, 0.0f);
}

double model_forward_backward(model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                              float dloss_scale, grads_ready_fn ready, void *ready_context) {
  const backend *be = m->be;
  const int C = m->shape.d_model, V = m->V_local, N = B * T, L = m->shape.n_layer;
  forward_to_logits(m, inputs, B, T);
  double loss_sum = crossentropy(m, targets, N, dloss_scale);

  /* head (tied): dlnf = dlogits · wte (partial over vocabulary shards);
   * dwte += dlogitsᵀ · lnf (this rank's rows) */
  const int Nl = local_rows(m, N);
  be->gemm(false, false, N, C, V, 1.0f, m->logits, V, m->params, C, 0.0f, m->d_btc, C);
  be->gemm(true, false, V, C, N, 1.0f, m->logits, V, m->lnf, C, 1.0f, m->grads, C);
  sum_rows(m, m->d_ln, m->d_btc, Nl, C);
  be->zero_act(m->d_resid, (size_t)Nl * C);
  norm_backward(m, m->d_resid, outer_grad_at(m, "lnf.weight"), outer_grad_at(m, "lnf.bias"),
                m->d_ln, block_input(m, L), outer_param_at(m, "lnf.weight"), m->lnf_mean,
                m->lnf_rstd, Nl, C);
  if (ready) ready(ready_context, registry_find(&m->reg, "lnf.weight")->offset);
  for (int l = L - 1; l >= 0; l--) {
    const grad_window_hooks *hooks = m->window_hooks;
    if (m->windowed_grads) { /* take the window back, clean */
      if (hooks) hooks->window_reuse(hooks->context, l % 2);
      be->zero_act(m->grad_windows[l % 2], m->block_elems);
    }
    need_block(m, l, l - 1);
    block_backward(m, l, block_input(m, l), B, T);
    if (m->windowed_grads && hooks)
      hooks->block_done(hooks->context, l % 2, m->grad_windows[l % 2],
                        m->block_start0 + (size_t)l * m->block_elems, m->block_elems);
    if (ready) {
      char name[REGISTRY_NAME_BYTES];
      snprintf(name, sizeof name, "layers.%d.ln1.weight", l);
      ready(ready_context, registry_find(&m->reg, name)->offset);
    }
  }
  /* the embedding's backward reads every row's gradient */
  gather_rows(m, m->d_full, m->d_resid, Nl, C);
  be->embedding_backward(m->grads, outer_grad_at(m, "wpe"), m->d_full, m->inputs, m->positions,
                         N, C, m->vocab_start, m->V_valid);
  if (ready) ready(ready_context, 0);
  return loss_sum;
}

void model_forward_last_logits(model *m, const int32_t *inputs, int T, float *host_logits) {
  /* sequence sharding needs T divisible by tp: pad on the right, which a
   * causal model's position T−1 never sees */
  int T_run = m->seq_shard ? (T + m->tp_size - 1) / m->tp_size * m->tp_size : T;
  int32_t *padded = xmalloc((size_t)T_run * sizeof *padded, "padded prompt");
  for (int t = 0; t < T_run; t++) padded[t] = inputs[t < T ? t : T - 1];
  forward_to_logits(m, padded, 1, T_run);
  free(padded);
  const int Vl = m->V_local;
  float *shard = xmalloc((size_t)Vl * sizeof *shard, "logits shard");
  m->be->act_to_host(shard, act_at(m->be, m->logits, (size_t)(T - 1) * Vl), (size_t)Vl);
  if (!m->tp) {
    memcpy(host_logits, shard, (size_t)m->shape.vocab_size * sizeof *shard);
  } else { /* shards are consecutive vocabulary ranges; padding sits past V */
    float *all = xmalloc((size_t)Vl * m->tp_size * sizeof *all, "gathered logits");
    comm_allgather_f32(m->tp, shard, all, (size_t)Vl);
    memcpy(host_logits, all, (size_t)m->shape.vocab_size * sizeof *all);
    free(all);
  }
  free(shard);
}

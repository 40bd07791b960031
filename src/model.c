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

static void register_parameters(model *m) {
  const model_shape *s = &m->shape;
  const int64_t C = s->d_model, NH = s->n_head, HS = s->d_model / s->n_head;
  /* GPT-2: residual output projections scaled by 1/sqrt(2·n_layer) */
  const double std = 0.02, residual_std = 0.02 / sqrt(2.0 * s->n_layer);
  registry *reg = &m->reg;
  registry_add(reg, "wte", 2, (int64_t[]){s->vocab_size, C}, 0, INIT_NORMAL, std, true, -1);
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
  const size_t V = (size_t)m->shape.vocab_size, BT = B * T;
  m->encoded = carve_act(c, BT * C);
  for (int l = 0; l < m->shape.n_layer; l++) {
    block_acts *a = &m->acts[l];
    a->ln1 = carve_act(c, BT * C);
    a->qkv = carve_act(c, BT * 3 * C);
    a->atty = carve_act(c, BT * C);
    a->res2 = carve_act(c, BT * C);
    a->ln2 = carve_act(c, BT * C);
    a->fch = carve_act(c, BT * 4 * C);
    a->fch_gelu = carve_act(c, BT * 4 * C);
    a->res3 = carve_act(c, BT * C);
    a->ln1_mean = carve_f32(c, BT);
    a->ln1_rstd = carve_f32(c, BT);
    a->ln2_mean = carve_f32(c, BT);
    a->ln2_rstd = carve_f32(c, BT);
    a->att_saved = carve_f32(c, m->be->attention_saved_elems((int)B, (int)T, m->shape.n_head));
  }
  m->lnf = carve_act(c, BT * C);
  m->logits = carve_act(c, BT * V);
  m->lnf_mean = carve_f32(c, BT);
  m->lnf_rstd = carve_f32(c, BT);
  m->losses = carve_f32(c, BT);
  /* backward scratch, reused by every block */
  m->d_resid = carve_act(c, BT * C);
  m->d_btc = carve_act(c, BT * C);
  m->d_atty = carve_act(c, BT * C);
  m->d_qkv = carve_act(c, BT * 3 * C);
  m->d_bt4c = carve_act(c, BT * 4 * C);
}

void model_create(model *m, const backend *be, model_shape shape, int max_B, int max_T) {
  memset(m, 0, sizeof *m);
  m->be = be;
  m->shape = shape;
  m->max_B = max_B;
  m->max_T = max_T;
  registry_init(&m->reg, 0, 1);
  register_parameters(m);
  const size_t n_params = m->reg.n_local_total;
  m->params = be->alloc_act(n_params, "parameters");
  m->grads = be->alloc_act(n_params, "gradients");
  be->zero_act(m->grads, n_params);
  m->blocks = xcalloc((size_t)shape.n_layer, sizeof *m->blocks, "block pointers");
  m->block_grads = xcalloc((size_t)shape.n_layer, sizeof *m->block_grads, "block pointers");
  bind_block_params(m, m->params, m->blocks);
  bind_block_params(m, m->grads, m->block_grads);

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
  m->host_losses = xmalloc((size_t)max_B * max_T * sizeof(float), "losses");
}

void model_free(model *m) {
  const backend *be = m->be;
  be->free_buffer(m->params);
  be->free_buffer(m->grads);
  be->free_buffer(m->arena[0]);
  be->free_buffer(m->arena[1]);
  be->free_buffer(m->inputs);
  be->free_buffer(m->targets);
  free(m->blocks);
  free(m->block_grads);
  free(m->acts);
  free(m->host_losses);
  registry_free(&m->reg);
  memset(m, 0, sizeof *m);
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

/* ---- linear layer, forward and backward ---- */

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

/* ---- one transformer block ---- */

static void block_forward(model *m, int l, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, NH = m->shape.n_head, N = B * T;
  const block_params *p = &m->blocks[l];
  block_acts *a = &m->acts[l];
  be->layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, res_in, p->ln1_w, p->ln1_b, N, C);
  linear_forward(be, a->qkv, a->ln1, p->wqkv, p->bqkv, N, C, 3 * C);
  be->attention_forward(a->atty, a->att_saved, a->qkv, B, T, C, NH);
  linear_forward(be, a->res2, a->atty, p->wo, p->bo, N, C, C); /* attention projection */
  be->accumulate(a->res2, res_in, (size_t)N * C);              /* residual */
  be->layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, p->ln2_w, p->ln2_b, N, C);
  linear_forward(be, a->fch, a->ln2, p->w1, p->b1, N, C, 4 * C);
  be->gelu_forward(a->fch_gelu, a->fch, (size_t)N * 4 * C);
  linear_forward(be, a->res3, a->fch_gelu, p->w2, p->b2, N, 4 * C, C); /* MLP projection */
  be->accumulate(a->res3, a->res2, (size_t)N * C);                      /* residual */
}

/* On entry m->d_resid holds dL/d(block output); on exit dL/d(block input). */
static void block_backward(model *m, int l, const act_t *res_in, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, NH = m->shape.n_head, N = B * T;
  const block_params *p = &m->blocks[l];
  block_params *g = &m->block_grads[l];
  const block_acts *a = &m->acts[l];
  /* MLP: the residual passes d_resid straight through; the branch adds to it. */
  linear_backward(be, m->d_bt4c, g->w2, g->b2, m->d_resid, a->fch_gelu, p->w2, N, 4 * C, C);
  be->gelu_backward(m->d_bt4c, a->fch, m->d_bt4c, (size_t)N * 4 * C);
  linear_backward(be, m->d_btc, g->w1, g->b1, m->d_bt4c, a->ln2, p->w1, N, C, 4 * C);
  be->layernorm_backward(m->d_resid, g->ln2_w, g->ln2_b, m->d_btc, a->res2, p->ln2_w, a->ln2_mean,
                         a->ln2_rstd, N, C);
  /* attention */
  linear_backward(be, m->d_atty, g->wo, g->bo, m->d_resid, a->atty, p->wo, N, C, C);
  be->attention_backward(m->d_qkv, m->d_atty, a->qkv, a->att_saved, B, T, C, NH);
  linear_backward(be, m->d_btc, g->wqkv, g->bqkv, m->d_qkv, a->ln1, p->wqkv, N, C, 3 * C);
  be->layernorm_backward(m->d_resid, g->ln1_w, g->ln1_b, m->d_btc, res_in, p->ln1_w, a->ln1_mean,
                         a->ln1_rstd, N, C);
}

static const act_t *block_input(const model *m, int l) {
  return l == 0 ? m->encoded : m->acts[l - 1].res3;
}

/* Embedding, blocks, final norm and head: leaves logits in m->logits. */
static void forward_to_logits(model *m, const int32_t *inputs, int B, int T) {
  const backend *be = m->be;
  const int C = m->shape.d_model, V = m->shape.vocab_size, N = B * T;
  ENSURE(B <= m->max_B && T <= m->max_T, "micro-batch %dx%d exceeds the arena's %dx%d", B, T,
         m->max_B, m->max_T);
  be->ids_from_host(m->inputs, inputs, (size_t)N);
  be->embedding_forward(m->encoded, m->inputs, m->params, param_at(m, m->params, "wpe"), B, T, C);
  for (int l = 0; l < m->shape.n_layer; l++) block_forward(m, l, block_input(m, l), B, T);
  be->layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, block_input(m, m->shape.n_layer),
                        param_at(m, m->params, "lnf.weight"), param_at(m, m->params, "lnf.bias"),
                        N, C);
  /* tied head: logits = lnf · wteᵀ */
  be->gemm(false, true, N, V, C, 1.0f, m->lnf, C, m->params, C, 0.0f, m->logits, V);
}

static double sum_losses(model *m, int N) {
  m->be->f32_to_host(m->host_losses, m->losses, (size_t)N);
  double total = 0.0;
  for (int i = 0; i < N; i++) total += m->host_losses[i];
  return total;
}

double model_forward_loss(model *m, const int32_t *inputs, const int32_t *targets, int B, int T) {
  forward_to_logits(m, inputs, B, T);
  const int N = B * T, V = m->shape.vocab_size;
  m->be->ids_from_host(m->targets, targets, (size_t)N);
  m->be->softmax_crossentropy(m->losses, m->logits, m->targets, N, V, V, 0.0f);
  return sum_losses(m, N);
}

double model_forward_backward(model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                              float dloss_scale, grads_ready_fn ready, void *ready_context) {
  const backend *be = m->be;
  const int C = m->shape.d_model, V = m->shape.vocab_size, N = B * T, L = m->shape.n_layer;
  forward_to_logits(m, inputs, B, T);
  be->ids_from_host(m->targets, targets, (size_t)N);
  /* fused: losses, and the logits become dL/dlogits in place */
  be->softmax_crossentropy(m->losses, m->logits, m->targets, N, V, V, dloss_scale);
  double loss_sum = sum_losses(m, N);

  /* head (tied): dlnf = dlogits · wte;  dwte += dlogitsᵀ · lnf */
  be->gemm(false, false, N, C, V, 1.0f, m->logits, V, m->params, C, 0.0f, m->d_btc, C);
  be->gemm(true, false, V, C, N, 1.0f, m->logits, V, m->lnf, C, 1.0f, m->grads, C);
  be->zero_act(m->d_resid, (size_t)N * C);
  be->layernorm_backward(m->d_resid, param_at(m, m->grads, "lnf.weight"),
                         param_at(m, m->grads, "lnf.bias"), m->d_btc, block_input(m, L),
                         param_at(m, m->params, "lnf.weight"), m->lnf_mean, m->lnf_rstd, N, C);
  if (ready) ready(ready_context, registry_find(&m->reg, "lnf.weight")->offset);
  for (int l = L - 1; l >= 0; l--) {
    block_backward(m, l, block_input(m, l), B, T);
    if (ready) {
      char name[REGISTRY_NAME_BYTES];
      snprintf(name, sizeof name, "layers.%d.ln1.weight", l);
      ready(ready_context, registry_find(&m->reg, name)->offset);
    }
  }
  be->embedding_backward(m->grads, param_at(m, m->grads, "wpe"), m->d_resid, m->inputs, B, T, C);
  if (ready) ready(ready_context, 0);
  return loss_sum;
}

void model_forward_last_logits(model *m, const int32_t *inputs, int T, float *host_logits) {
  forward_to_logits(m, inputs, 1, T);
  const int V = m->shape.vocab_size;
  m->be->act_to_host(host_logits, act_at(m->be, m->logits, (size_t)(T - 1) * V), (size_t)V);
}

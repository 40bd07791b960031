/* plan_time — the step time of a layout on a machine (plan_time.h). */
#include "plan_time.h"

#include <math.h>
#include <string.h>

#include "model_shape.h"
#include "plan_stage.h"

#define MAX_OPS 64
#define GRAD_BUCKET_BYTES (25.0 * 1024 * 1024) /* grad_sync's bucket: the last one cannot hide */

static int ceil_log2(int p) {
  int k = 0;
  while ((1 << k) < p) k++;
  return k;
}

double plan_collective_seconds(plan_op_kind kind, int p, double n, const profile_link *link) {
  if (p <= 1 && kind != PLAN_SENDRECV) return 0.0;
  const double a = link->alpha_s, b = link->bandwidth, share = (double)(p - 1) / p;
  switch (kind) {
  case PLAN_ALLREDUCE: {
    const double ring = 2.0 * (p - 1) * a + 2.0 * share * n / b;
    const double tree = 2.0 * ceil_log2(p) * a + 2.0 * n / b;
    return ring < tree ? ring : tree;
  }
  case PLAN_ALLGATHER:
  case PLAN_REDUCE_SCATTER:
  case PLAN_ALLTOALL: return (p - 1) * a + share * n / b;
  case PLAN_SENDRECV: return a + n / b;
  case PLAN_BROADCAST: return ceil_log2(p) * a + n / b;
  }
  return 0.0;
}

/* The distance in world ranks between neighbours of a group (grid.h:
 * rank = ((pp·dp + dp_r)·sp + sp_r)·tp + tp_r; dp×sp is the sp·dp ranks
 * at stride tp). */
static int group_stride(const plan_layout *l, plan_group g) {
  switch (g) {
  case PLAN_TP: return 1;
  case PLAN_SP:
  case PLAN_DP_SP: return l->tp;
  case PLAN_DP: return l->tp * l->sp;
  case PLAN_PP: return l->tp * l->sp * l->dp;
  default: return 1;
  }
}

profile_link plan_group_link(const plan_layout *l, plan_group group, int group_size, const machine_profile *m) {
  const int per_node = l->gpus_per_node > 0 ? l->gpus_per_node : m->gpus_per_node;
  /* the groups of one kind tile blocks of stride·size consecutive ranks
   * (grid.h's order), so all of them stay inside nodes exactly when such a
   * block fits a node and nodes hold whole blocks; otherwise some group
   * crosses, and a collective waits for its slowest member */
  const long block = (long)group_stride(l, group) * group_size;
  const bool one_node = block <= per_node && per_node % block == 0;
  if (one_node) return m->intra_node;
  profile_link link = m->inter_node;
  link.bandwidth = m->inter_node.bandwidth * m->nics_per_node / per_node; /* the node's ranks share its NICs */
  return link;
}

/* The rate the layout's matrix products get: each product of a block and the
 * head at the rate of its smallest dimension, weighted by its FLOPs. */
static double layout_gemm_rate(const config *cfg, const plan_layout *l, const machine_profile *m) {
  const model_shape s = config_model_shape(cfg);
  const double M = (double)l->micro_batch * s.seq_len / l->sp, C = s.d_model, t = l->tp;
  const double F = model_ffn_hidden(&s), F_in = s.mlp == MLP_SWIGLU ? 2 * F : F, V = s.vocab_size;
  const double L = s.n_layer;
  const struct { double flops, n, k; } prod[5] = {
      {L * 3 * C * C, 3 * C / t, C},  /* qkv, column-parallel */
      {L * C * C, C, C / t},          /* attention output, row-parallel */
      {L * F_in * C, F_in / t, C},    /* MLP in */
      {L * F * C, C, F / t},          /* MLP out */
      {V * C, V / t, C},              /* head */
  };
  double flops = 0, seconds = 0;
  for (int i = 0; i < 5; i++) {
    double d = M < prod[i].n ? M : prod[i].n;
    if (prod[i].k < d) d = prod[i].k;
    flops += prod[i].flops;
    seconds += prod[i].flops / machine_profile_gemm_rate(m, d);
  }
  return flops / seconds;
}

/* A CPU host with more ranks than cores: each rank gets cores/ranks of one. */
static double core_share(const plan_layout *l, const machine_profile *m) {
  if (m->cores_per_node <= 0) return 1.0;
  int ranks = l->gpus_per_node > 0 ? l->gpus_per_node : m->gpus_per_node;
  if (ranks > l->world) ranks = l->world;
  return ranks > m->cores_per_node ? (double)m->cores_per_node / ranks : 1.0;
}

static double attention_rate(const config *cfg, const machine_profile *m) {
  const model_shape s = config_model_shape(cfg);
  int linear = 0;
  for (int i = 0; i < s.n_layer; i++) linear += model_layer_is_linear(&s, i);
  const double f = (double)linear / s.n_layer; /* harmonic mix by layer count */
  return 1.0 / (f / m->linear_attention_flops + (1 - f) / m->attention_flops);
}

/* The slowest pipeline stage over the mean one (plan_predict_compute counts
 * the mean): each stage's forward FLOPs from the layers the run's partition
 * gives it (plan_stage_size) and the head on the last. */
static double stage_imbalance_uncached(const config *cfg, const plan_layout *l) {
  const model_shape s = config_model_shape(cfg);
  int soft = -1, lin = -1;
  double total = model_head_flops(&s);
  for (int i = 0; i < s.n_layer; i++) {
    total += model_block_flops(&s, i, s.seq_len);
    if (model_layer_is_linear(&s, i)) { if (lin < 0) lin = i; }
    else if (soft < 0) soft = i;
  }
  double slowest = 0;
  for (int r = 0; r < l->pp; r++) {
    plan_stage st;
    plan_stage_size(cfg, l, r, &st);
    const double cost = (soft >= 0 ? st.softmax_layers * model_block_flops(&s, soft, s.seq_len) : 0) +
                        (lin >= 0 ? st.linear_layers * model_block_flops(&s, lin, s.seq_len) : 0) +
                        (st.has_head ? model_head_flops(&s) : 0);
    if (cost > slowest) slowest = cost;
  }
  return slowest / (total / l->pp);
}

/* The same, remembered for the last few pipelines: a search predicts many
 * layouts of one model that share their pp and chunks, and laying out each
 * of pp stages costs. Keyed by everything the partition depends on. */
static double stage_imbalance(const config *cfg, const plan_layout *l) {
  if (l->pp <= 1) return 1.0;
  enum { SLOTS = 32 };
  static struct { model_shape shape; int pp, v, schedule; double factor; bool used; } memo[SLOTS];
  static int next;
  const model_shape s = config_model_shape(cfg);
  for (int i = 0; i < SLOTS; i++)
    if (memo[i].used && memo[i].pp == l->pp && memo[i].v == l->virtual_stages && memo[i].schedule == l->schedule &&
        memcmp(&memo[i].shape, &s, sizeof s) == 0 && cfg->pp_layers[0] == 0)
      return memo[i].factor;
  const double factor = stage_imbalance_uncached(cfg, l);
  memo[next].shape = s, memo[next].pp = l->pp, memo[next].v = l->virtual_stages;
  memo[next].schedule = l->schedule, memo[next].factor = factor, memo[next].used = true;
  next = (next + 1) % SLOTS;
  return factor;
}

typedef struct comm_sums {
  double in_pipeline, behind_attention, behind_backward, behind_passes, tail;
  double last_bucket, first_gather, total;
  bool per_micro_backward; /* gradient ops every micro-batch (ZeRO 2): all the backward hides them */
} comm_sums;

static comm_sums sum_comm(const plan_layout *l, const machine_profile *m, const plan_comm_op *ops, int n_ops,
                          int micro_batches) {
  comm_sums s = {0};
  for (int i = 0; i < n_ops; i++) {
    const plan_comm_op *op = &ops[i];
    if (op->count == 0 || op->group_size <= 1) continue;
    const profile_link link = plan_group_link(l, op->group, op->group_size, m);
    double one = plan_collective_seconds(op->kind, op->group_size, (double)op->bytes, &link);
    if (op->group == PLAN_PP && m->host_staging.bandwidth > 0) /* MPI from host memory: a copy out, one in */
      one += 2 * (m->host_staging.alpha_s + (double)op->bytes / m->host_staging.bandwidth);
    const double all = one * (double)op->count;
    s.total += all;
    const bool grads = op->group == PLAN_DP || op->group == PLAN_DP_SP;
    switch (op->overlap) {
    case PLAN_BEHIND_ATTENTION: s.behind_attention += all; break;
    case PLAN_BEHIND_BACKWARD: {
      s.behind_backward += all;
      const double bucket = (double)op->bytes < GRAD_BUCKET_BYTES ? (double)op->bytes : GRAD_BUCKET_BYTES;
      const double tail = plan_collective_seconds(op->kind, op->group_size, bucket, &link);
      if (tail > s.last_bucket) s.last_bucket = tail;
      if (op->count >= (uint64_t)micro_batches && micro_batches > 1) s.per_micro_backward = true;
      break;
    }
    case PLAN_BEHIND_FORWARD:
      s.behind_passes += all;
      if (one > s.first_gather) s.first_gather = one;
      break;
    case PLAN_EXPOSED:
    default:
      if (grads) s.tail += all; else s.in_pipeline += all;
    }
  }
  return s;
}

static double exposed_part(double comm, double window, double floor_s) {
  if (comm <= 0) return 0;
  double e = comm - window;
  if (e < floor_s) e = floor_s;
  return e < comm ? e : comm;
}

plan_time plan_time_from_parts(const config *cfg, const plan_layout *l, const machine_profile *m,
                               const plan_compute *c, const plan_comm_op *ops, int n_ops) {
  plan_time t = {0};
  const double share = core_share(l, m);
  t.gemm_rate = layout_gemm_rate(cfg, l, m) * share;
  const double gemm_s = c->gemm_flops / t.gemm_rate;
  const double attn_s = c->attention_flops / (attention_rate(cfg, m) * share);
  const double other_s = c->other_bytes / (m->elementwise_bandwidth * share);
  t.compute_s = (gemm_s + attn_s + other_s) * stage_imbalance(cfg, l);
  const int micro = c->micro_batches > 0 ? c->micro_batches : 1;
  const comm_sums s = sum_comm(l, m, ops, n_ops, micro);
  t.comm_s = s.total;
  /* the backward is about two thirds of a pass's work (three with recomputation: 2 of 4) */
  const double backward_share = l->recompute == RECOMPUTE_CHOICE_FULL ? 0.5 : 2.0 / 3.0;
  const double backward_window = t.compute_s * backward_share / (s.per_micro_backward ? 1.0 : micro);
  const double in_pipe = s.in_pipeline + exposed_part(s.behind_attention, attn_s, 0) +
                         exposed_part(s.behind_passes, t.compute_s, s.first_gather);
  const double after = s.tail + exposed_part(s.behind_backward, backward_window, s.last_bucket);
  const int p = c->pipeline_stages > 0 ? c->pipeline_stages : 1;
  const int v = c->schedule == PP_SCHEDULE_INTERLEAVED && c->virtual_stages > 1 ? c->virtual_stages : 1;
  const double bubble_fraction = p > 1 ? (double)(p - 1) / ((double)v * micro) : 0.0;
  t.bubble_s = (t.compute_s + in_pipe) * bubble_fraction;
  t.exposed_comm_s = in_pipe + after;
  t.step_s = t.compute_s + t.bubble_s + t.exposed_comm_s;
  const model_shape shape = config_model_shape(cfg);
  const double tokens = (double)l->dp * l->micro_batch * l->n_micro * shape.seq_len;
  t.tokens_per_s = tokens / t.step_s;
  t.tflops_per_gpu = model_flops_per_token(&shape, shape.seq_len) * t.tokens_per_s / l->world / 1e12;
  t.mfu = t.tflops_per_gpu * 1e12 / m->peak_flops;
  return t;
}

plan_time plan_predict_time(const config *cfg, const plan_layout *l, const machine_profile *m) {
  plan_comm_op ops[MAX_OPS];
  int n = plan_predict_comm(cfg, l, ops, MAX_OPS);
  if (n > MAX_OPS) n = MAX_OPS;
  const plan_compute c = plan_predict_compute(cfg, l);
  return plan_time_from_parts(cfg, l, m, &c, ops, n);
}

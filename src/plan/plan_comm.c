/* plan_comm — the bytes a layout's first rank (world rank 0: pipeline
 * stage 0, rank 0 of tp, sp and dp×sp) hands each group's collectives in a
 * step, as the runtime's counters count them (payload per rank), and the
 * compute of that rank. The formulas are doc/design.md's, the ones the
 * counters are checked against (tests/comm_bytes.sh, tests/plan_predictions.sh);
 * the element counts come from the stage laid out by the run's own code
 * (plan_stage.h), so the parameter and vocabulary shards are the run's.
 */
#include <string.h>

#include "plan_stage.h"
#include "sp_attention.h"

typedef struct op_list {
  plan_comm_op *ops;
  int n, max;
  const plan_layout *l;
} op_list;

static int group_size(const plan_layout *l, plan_group g) {
  switch (g) {
    case PLAN_TP: return l->tp;
    case PLAN_SP: return l->sp;
    case PLAN_DP: return l->dp;
    case PLAN_DP_SP: return l->dp * l->sp;
    case PLAN_WORLD: return l->world;
    default: return l->pp;
  }
}

static void add(op_list *list, plan_group g, plan_op_kind kind, uint64_t bytes, uint64_t count, plan_overlap overlap,
                const char *what) {
  if (count == 0 || bytes == 0 || group_size(list->l, g) == 1) return;
  if (list->n < list->max)
    list->ops[list->n] = (plan_comm_op){.group = g,
                                        .group_size = group_size(list->l, g),
                                        .kind = kind,
                                        .bytes = bytes,
                                        .count = count,
                                        .overlap = overlap,
                                        .what = what};
  list->n++;
}

/* Megatron's f and g over tp, or with --tp-seq-shard their all-gather and
 * reduce-scatter halves (each counted at the whole N·h: the same bytes on
 * the wire as the all-reduce), per micro-batch of N rows. */
static void tp_ops(op_list *list, const plan_layout *l, const plan_stage *st) {
  const uint64_t m = (uint64_t)st->micro_batches, L = (uint64_t)st->n_layers;
  const uint64_t N = (uint64_t)l->micro_batch * st->T_local, h = (uint64_t)st->C_local * l->tp;
  const uint64_t rows = N * h * st->act_bytes, emb = st->has_embedding, head = st->has_head;
  /* full recomputation runs each block's forward again, sums included */
  const uint64_t again = l->recompute == RECOMPUTE_CHOICE_FULL ? 1 : 0;
  if (!l->tp_seq_shard) {
    add(list, PLAN_TP, PLAN_ALLREDUCE, rows, m * (emb + 2 * L), PLAN_EXPOSED,
        "tp all-reduce: embedding output, attention and MLP outputs (forward)");
    add(list, PLAN_TP, PLAN_ALLREDUCE, rows, m * (head + 2 * L), PLAN_EXPOSED,
        "tp all-reduce: head and column-parallel input gradients (backward)");
    add(list, PLAN_TP, PLAN_ALLREDUCE, rows, m * 2 * L * again, PLAN_EXPOSED, "tp all-reduce: recomputed forward");
  } else {
    add(list, PLAN_TP, PLAN_REDUCE_SCATTER, rows, m * (emb + 2 * L), PLAN_EXPOSED,
        "tp reduce-scatter: embedding, attention and MLP outputs (forward)");
    add(list, PLAN_TP, PLAN_ALLGATHER, rows, m * (2 * L + head), PLAN_EXPOSED,
        "tp all-gather: norm outputs into column-parallel products, final norm (forward)");
    add(list, PLAN_TP, PLAN_REDUCE_SCATTER, rows, m * (head + 2 * L), PLAN_EXPOSED,
        "tp reduce-scatter: head and column-parallel input gradients (backward)");
    add(list, PLAN_TP, PLAN_ALLGATHER, rows, m * (2 * L + emb), PLAN_EXPOSED,
        "tp all-gather: row-parallel output gradients, embedding (backward)");
    add(list, PLAN_TP, PLAN_REDUCE_SCATTER, rows, m * 2 * L * again, PLAN_EXPOSED,
        "tp reduce-scatter: recomputed forward");
    add(list, PLAN_TP, PLAN_ALLGATHER, rows, m * 2 * L * again, PLAN_EXPOSED, "tp all-gather: recomputed forward");
    const uint64_t norm_params = (st->norm_bias ? 2 : 1) * h * st->act_bytes;
    add(list, PLAN_TP, PLAN_ALLREDUCE, norm_params, m * (2 * L + head), PLAN_EXPOSED,
        "tp all-reduce: norm weight gradients of sharded rows");
  }
  add(list, PLAN_TP, PLAN_ALLREDUCE, N * sizeof(float), 3 * m * head, PLAN_EXPOSED,
      "tp all-reduce: cross-entropy row maxima, sums, target logits");
  add(list, PLAN_TP, PLAN_ALLREDUCE, sizeof(double), 1, PLAN_EXPOSED, "tp all-reduce: gradient norm");
}

/* LASP's chain of states on rank 0 (a state s per layer and micro-batch):
 * on contiguous chunks rank 0 starts the chain, so it sends its state
 * forward and receives the gradient; on zig-zag chunks it holds the first
 * and the last chunk, so it also sends the last chunk's state gradient
 * back — a state per piece. Full recomputation reruns the forward: one
 * state more. */
static void lasp_ring_ops(op_list *list, const plan_stage *st, uint64_t S, uint64_t lin, uint64_t again_lin) {
  add(list, PLAN_SP, PLAN_SENDRECV, S * (uint64_t)st->sp_pieces, lin, PLAN_EXPOSED,
      "sp LASP ring: linear attention state forward (and, zig-zag, its gradient back)");
  add(list, PLAN_SP, PLAN_SENDRECV, S, lin * again_lin, PLAN_EXPOSED,
      "sp LASP ring: the state forward again (full recomputation)");
}

/* Attention across the sequence chunks of sp ranks, per micro-batch and
 * layer (parallel/sequence, doc/design.md "Sequence parallelism"). */
static void sp_ops(op_list *list, const plan_layout *l, const plan_stage *st) {
  const uint64_t m = (uint64_t)st->micro_batches, P = (uint64_t)l->sp, B = (uint64_t)l->micro_batch;
  const uint64_t rows = B * st->T_local, Cl = (uint64_t)st->C_local, ab = st->act_bytes;
  const uint64_t S = B * st->NH_local * (uint64_t)st->head_size * st->head_size * sizeof(float);
  const uint64_t soft = m * st->softmax_layers, lin = m * st->linear_layers, kv = rows * 2 * Cl * ab;
  /* recomputing the attention core (selective or full) runs its forward
   * communication again before the backward; linear attention's states
   * entering each piece are kept under selective (only full recomputes
   * them), but Ulysses must re-shard Q|K|V to heads either way */
  const uint64_t again = l->recompute != RECOMPUTE_CHOICE_NONE ? 1 : 0;
  const uint64_t again_lin = l->recompute == RECOMPUTE_CHOICE_FULL ? 1 : 0;
  switch (l->sp_kind) {
    case SP_KIND_CHOICE_RING:
      add(list, PLAN_SP, PLAN_SENDRECV, kv, soft * (3 * P - 2 + again * (P - 1)), PLAN_BEHIND_ATTENTION,
          "sp ring attention: K|V blocks forward (again when recomputed) and backward, dK|dV home");
      lasp_ring_ops(list, st, S, lin, again_lin);
      break;
    case SP_KIND_CHOICE_TOKENRING: {
      /* rank 0's keys are seen by 2P−2 query pieces of half its rows each:
       * (P−1)·rows rows of results, f32 outputs and lse (dQ in act_t) */
      const uint64_t NHl = (uint64_t)st->NH_local, hops = soft * (P - 1);
      add(list, PLAN_SP, PLAN_SENDRECV, rows * Cl * ab, hops * (1 + again), PLAN_BEHIND_ATTENTION,
          "sp TokenRing: queries forward (again when recomputed)");
      add(list, PLAN_SP, PLAN_SENDRECV, rows * (Cl + NHl) * sizeof(float), hops * (1 + again), PLAN_BEHIND_ATTENTION,
          "sp TokenRing: partial outputs and lse home");
      add(list, PLAN_SP, PLAN_SENDRECV, rows * (2 * Cl * ab + 2 * NHl * sizeof(float)), hops, PLAN_BEHIND_ATTENTION,
          "sp TokenRing: Q|dO, lse and delta forward (backward)");
      add(list, PLAN_SP, PLAN_SENDRECV, rows * Cl * ab, hops, PLAN_BEHIND_ATTENTION,
          "sp TokenRing: partial dQ home (backward)");
      lasp_ring_ops(list, st, S, lin, again_lin);
      break;
    }
    case SP_KIND_CHOICE_ULYSSES:
      add(list, PLAN_SP, PLAN_ALLTOALL, rows * Cl * ab, soft * (12 + 4 * again) + lin * (11 + 4 * again), PLAN_EXPOSED,
          "sp Ulysses all-to-all: Q|K|V to head shards and back");
      break;
    default: /* allgather; allscan gathers K|V of its softmax layers alike */
      add(list, PLAN_SP, PLAN_ALLGATHER, P * kv, soft * (3 + again), PLAN_EXPOSED,
          "sp K|V all-gather (forward, backward) and dK|dV reduce-scatter");
      if (l->sp_kind == SP_KIND_CHOICE_ALLSCAN)
        add(list, PLAN_SP, PLAN_SENDRECV, S, lin * (1 + again_lin), PLAN_EXPOSED,
            "sp All-Scan: linear attention state blocks");
      else
        add(list, PLAN_SP, PLAN_ALLGATHER, P * S, (2 + again_lin) * lin, PLAN_EXPOSED,
            "sp LASP-2 all-gather of chunk states (forward, backward)");
  }
}

/* Gradients and weights over dp×sp as ZeRO's stage moves them. */
static void dp_ops(op_list *list, const plan_layout *l, const plan_stage *st) {
  const uint64_t ab = st->act_bytes, psi = st->params_local, m = (uint64_t)st->micro_batches;
  const uint64_t L = (uint64_t)st->n_layers, block = st->block_elems * ab, outer = (psi - L * st->block_elems) * ab;
  if (l->zero_stage <= 1) {
    add(list, PLAN_DP_SP, PLAN_ALLREDUCE, psi * ab, 1, PLAN_BEHIND_BACKWARD, "dp all-reduce: gradients (bucketed)");
    if (l->zero_stage == 1)
      add(list, PLAN_DP_SP, PLAN_ALLGATHER, psi * ab, 1, PLAN_EXPOSED, "ZeRO-1 all-gather: updated weights");
  } else {
    add(list, PLAN_DP_SP, PLAN_REDUCE_SCATTER, block, m * L, PLAN_BEHIND_BACKWARD,
        "ZeRO reduce-scatter: each block's gradients, every micro-batch");
    add(list, PLAN_DP_SP, PLAN_REDUCE_SCATTER, outer, 1, PLAN_EXPOSED,
        "ZeRO reduce-scatter: embedding and final-norm gradients");
    if (l->zero_stage == 2)
      add(list, PLAN_DP_SP, PLAN_ALLGATHER, psi * ab, 1, PLAN_EXPOSED, "ZeRO-2 all-gather: updated weights");
    else {
      /* the first forward gathers every block; later passes all but the
       * two the windows still hold */
      const uint64_t later = L > 2 ? L - 2 : 0;
      add(list, PLAN_DP_SP, PLAN_ALLGATHER, block, L + (2 * m - 1) * later, PLAN_BEHIND_FORWARD,
          "ZeRO-3 all-gather: each block's weights before use (prefetched)");
      add(list, PLAN_DP_SP, PLAN_ALLGATHER, outer, 1, PLAN_EXPOSED,
          "ZeRO-3 all-gather: embedding and final-norm weights");
    }
    add(list, PLAN_DP_SP, PLAN_ALLREDUCE, 2 * sizeof(double), 1, PLAN_EXPOSED, "dp all-reduce: gradient norm");
  }
  add(list, PLAN_DP_SP, PLAN_ALLREDUCE, sizeof(double), 2, PLAN_EXPOSED, "dp all-reduce: loss sum, token check");
}

/* Stage 0's activations and gradients across its chunk boundaries. */
static void pp_ops(op_list *list, const plan_layout *l, const plan_stage *st) {
  const uint64_t m = (uint64_t)st->micro_batches;
  uint64_t rows = (uint64_t)l->micro_batch * st->T_local;
  if (l->tp_seq_shard && l->tp > 1) rows /= (uint64_t)l->tp;
  const uint64_t act = rows * (uint64_t)st->C_local * l->tp * st->act_bytes;
  uint64_t sends = 0;
  for (int c = 0; c < st->n_chunks; c++)
    sends += (st->chunk_global[c] < st->n_global_chunks - 1) + (st->chunk_global[c] > 0);
  add(list, PLAN_PP, PLAN_SENDRECV, act, m * sends, PLAN_EXPOSED, "pp send: activations and input gradients");
  add(list, PLAN_PP, PLAN_SENDRECV, st->tied_elems * st->act_bytes, 1, PLAN_EXPOSED,
      "pp tied embedding gradient between the ends");
  add(list, PLAN_PP, PLAN_ALLREDUCE, sizeof(double), 4, PLAN_EXPOSED, "pp all-reduce: loss, gradient norm, bubble");
}

int plan_predict_comm(const config *cfg, const plan_layout *l, plan_comm_op *ops, int max_ops) {
  plan_stage st;
  plan_stage_size(cfg, l, 0, &st);
  op_list list = {.ops = ops, .max = ops ? max_ops : 0, .l = l};
  add(&list, PLAN_WORLD, PLAN_ALLREDUCE, sizeof(int64_t), 1, PLAN_EXPOSED, "world all-reduce: data files unchanged");
  tp_ops(&list, l, &st);
  sp_ops(&list, l, &st);
  dp_ops(&list, l, &st);
  pp_ops(&list, l, &st);
  return list.n;
}

uint64_t plan_group_bytes(const plan_comm_op *ops, int n, plan_group g) {
  uint64_t total = 0;
  for (int i = 0; i < n; i++)
    if (ops[i].group == g) total += ops[i].bytes * ops[i].count;
  return total;
}

plan_compute plan_predict_compute(const config *cfg_in, const plan_layout *l) {
  config cfg = *cfg_in;
  plan_layout_apply(&cfg, l);
  const model_shape shape = config_model_shape(&cfg);
  plan_compute c = {.pipeline_stages = l->pp, .micro_batches = l->n_micro, .virtual_stages = l->virtual_stages,
                    .schedule = l->schedule};
  /* one replica's tokens per step, shared by its tp·sp·pp ranks */
  const double tokens = (double)l->micro_batch * l->n_micro * cfg.seq_len, share = (double)l->tp * l->sp * l->pp;
  const double C = shape.d_model, T = cfg.seq_len;
  double matrices = 2.0 * shape.vocab_size * C, attention = 0;
  for (int i = 0; i < shape.n_layer; i++) {
    const double block = model_block_flops(&shape, i, cfg.seq_len);
    const double core = model_layer_is_linear(&shape, i) ? block - model_block_flops(&shape, i, 1) + 2.0 * C
                                                          : 2.0 * T * C;
    matrices += block - core;
    attention += core;
  }
  /* forward + backward = 3 forwards; selective recomputes the attention
   * core's forward, full every block's forward */
  const double attention_passes = l->recompute == RECOMPUTE_CHOICE_NONE ? 3.0 : 4.0;
  const double matrix_passes = l->recompute == RECOMPUTE_CHOICE_FULL ? 4.0 : 3.0;
  c.gemm_flops = matrix_passes * matrices * tokens / share;
  c.attention_flops = attention_passes * attention * tokens / share;
  /* activations read and written by norms and elementwise ops: about 16
   * values of width C per block and token, forward and backward */
  c.other_bytes = 16.0 * 2.0 * C * shape.n_layer * tokens / share * plan_backend(&cfg)->act_elem_bytes;
  return c;
}

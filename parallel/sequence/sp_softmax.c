/* sp_softmax — causal softmax attention over the sp group: K/V all-gathered
 * or passed around a ring (sp_attention.h); the ulysses and tokenring kinds
 * hand over to sp_ulysses.c and sp_tokenring.c.
 *
 * Per query piece p of this rank and key piece p' of a block's owner, one
 * call of attention_block_forward gives the attention of p's queries to
 * p''s keys alone and its log-sum-exp; attention_merge folds it into the
 * piece's fp32 accumulator. Pieces entirely in a query piece's future are
 * skipped (causal). The own diagonal block is computed first, straight into
 * the accumulator, so every accumulator row starts with a visible key. The
 * backward recomputes each block's probabilities from the final
 * log-sum-exp (saved) and delta = rowsum(dO ⊙ O). K|V blocks move through
 * parallel/comm/device_comm, so the same code runs on host and device buffers;
 * each ring step's send and receive are one exchange (NCCL would deadlock on
 * a receive queued ahead of its own send). */
#include "sp_attention.h"

#include "device_comm.h"
#include "fail.h"

enum { TAG_KV = 1, TAG_DKV = 2 };

/* K|V of this rank's rows: in a qkv row [q | k | v] they are one span of 2·Cl */
static void pack_kv(const sp_attention *a, act_t *kv, const act_t *qkv, int rows) {
  const backend *be = a->be;
  const int Cl = a->C_local;
  be->copy_rows(kv, 2 * Cl, act_at(be, qkv, (size_t)Cl), 3 * Cl, rows, 2 * Cl);
}

/* Attention of every local query piece to the pieces of rank src held in kv;
 * `first` marks the call that holds the own diagonal blocks (written, not
 * merged). */
static void forward_block(sp_attention *a, const sp_layout *l, f32_t *lse, const act_t *qkv, const act_t *kv, int src,
                          int B, bool first) {
  const backend *be = a->be;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len;
  for (int pass = 0; pass < 2; pass++) /* the diagonal first, then the rest */
    for (int p = 0; p < l->n_pieces; p++)
      for (int q = 0; q < l->n_pieces; q++) {
        const bool diagonal = first && q == p;
        if ((pass == 0) != diagonal) continue;
        const int q0 = l->piece_pos0[p], k0 = sp_layout_pos0_of(l, src, q);
        if (k0 > q0 + n - 1) continue; /* entirely in the future */
        const size_t q_rows = (size_t)p * B * n, k_rows = (size_t)q * B * n;
        const act_t *Q = act_at(be, qkv, q_rows * 3 * Cl), *K = act_at(be, kv, k_rows * 2 * Cl);
        f32_t *acc = f32_at(a->acc, q_rows * Cl), *lse_p = f32_at(lse, (size_t)p * B * NHl * n);
        if (diagonal) {
          be->attention_block_forward(acc, lse_p, Q, K, act_at(be, K, (size_t)Cl), 3 * Cl, 2 * Cl, B, n, n, Cl, NHl,
                                      q0, k0);
        } else {
          be->attention_block_forward(a->out_b, a->lse_b, Q, K, act_at(be, K, (size_t)Cl), 3 * Cl, 2 * Cl, B, n, n,
                                      Cl, NHl, q0, k0);
          be->attention_merge(acc, lse_p, a->out_b, a->lse_b, B, n, Cl, NHl);
        }
      }
}

/* dQ (into dqkv's q part) and dK|dV (into dkv) of the blocks of rank src */
static void backward_block(sp_attention *a, const sp_layout *l, act_t *dqkv, act_t *dkv, const act_t *dout,
                           const f32_t *lse, const act_t *qkv, const act_t *kv, int src, int B) {
  const backend *be = a->be;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len;
  for (int p = 0; p < l->n_pieces; p++)
    for (int q = 0; q < l->n_pieces; q++) {
      const int q0 = l->piece_pos0[p], k0 = sp_layout_pos0_of(l, src, q);
      if (k0 > q0 + n - 1) continue;
      const size_t q_rows = (size_t)p * B * n, k_rows = (size_t)q * B * n;
      const act_t *K = act_at(be, kv, k_rows * 2 * Cl);
      act_t *dK = act_at(be, dkv, k_rows * 2 * Cl);
      be->attention_block_backward(act_at(be, dqkv, q_rows * 3 * Cl), dK, act_at(be, dK, (size_t)Cl), 3 * Cl, 2 * Cl,
                                   act_at(be, dout, q_rows * Cl), f32_at(a->delta, (size_t)p * B * NHl * n),
                                   f32_at(lse, (size_t)p * B * NHl * n), act_at(be, qkv, q_rows * 3 * Cl), K,
                                   act_at(be, K, (size_t)Cl), 3 * Cl, 2 * Cl, B, n, n, Cl, NHl, q0, k0);
    }
}

void sp_softmax_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *lse, const act_t *qkv, int B) {
  if (a->kind == SP_ULYSSES) {
    sp_ulysses_softmax_forward(a, l, out, lse, qkv, B);
    return;
  }
  if (a->kind == SP_TOKENRING) {
    sp_tokenring_softmax_forward(a, l, out, lse, qkv, B);
    return;
  }
  const backend *be = a->be;
  comm *g = a->group;
  const int P = g->size, me = g->rank, Cl = a->C_local;
  const int rows = B * sp_layout_local_tokens(l);
  const size_t kv_elems = (size_t)rows * 2 * Cl;
  if (a->kind != SP_RING) { /* allgather, and allscan's softmax layers */
    pack_kv(a, a->kv_own, qkv, rows);
    dcomm_allgather_act(g, be, a->kv_own, a->kv_all, kv_elems);
    forward_block(a, l, lse, qkv, act_at(be, a->kv_all, (size_t)me * kv_elems), me, B, true);
    for (int src = 0; src < P; src++)
      if (src != me) forward_block(a, l, lse, qkv, act_at(be, a->kv_all, (size_t)src * kv_elems), src, B, false);
  } else {
    act_t *cur = a->kv_a, *next = a->kv_b;
    pack_kv(a, cur, qkv, rows);
    for (int j = 0; j < P; j++) {
      dcomm_request step;
      if (j < P - 1) /* the next block travels while this one is used */
        dcomm_exchange_act_start(g, be, cur, (me + 1) % P, next, (me - 1 + P) % P, kv_elems, TAG_KV, &step);
      forward_block(a, l, lse, qkv, cur, (me - j + P) % P, B, j == 0);
      if (j < P - 1) {
        dcomm_wait(&step);
        act_t *t = cur;
        cur = next, next = t;
      }
    }
  }
  be->cast_f32_to_act(out, a->acc, (size_t)rows * Cl);
}

void sp_softmax_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *out,
                         const f32_t *lse, const act_t *qkv, int B) {
  if (a->kind == SP_ULYSSES) {
    sp_ulysses_softmax_backward(a, l, dqkv, dout, out, lse, qkv, B);
    return;
  }
  if (a->kind == SP_TOKENRING) {
    sp_tokenring_softmax_backward(a, l, dqkv, dout, out, lse, qkv, B);
    return;
  }
  const backend *be = a->be;
  comm *g = a->group;
  const int P = g->size, me = g->rank, Cl = a->C_local, NHl = a->NH_local, n = l->piece_len;
  const int rows = B * sp_layout_local_tokens(l);
  const size_t kv_elems = (size_t)rows * 2 * Cl;
  be->zero_act(dqkv, (size_t)rows * 3 * Cl);
  for (int p = 0; p < l->n_pieces; p++) {
    const size_t q_rows = (size_t)p * B * n;
    be->attention_delta(f32_at(a->delta, (size_t)p * B * NHl * n), act_at(be, dout, q_rows * Cl),
                        act_at(be, out, q_rows * Cl), B, n, Cl, NHl);
  }
  act_t *home; /* this rank's keys' dK|dV, summed over every query */
  if (a->kind != SP_RING) { /* allgather, and allscan's softmax layers */
    pack_kv(a, a->kv_own, qkv, rows);
    dcomm_allgather_act(g, be, a->kv_own, a->kv_all, kv_elems);
    be->zero_act(a->dkv_all, kv_elems * (size_t)P);
    for (int src = 0; src < P; src++)
      backward_block(a, l, dqkv, act_at(be, a->dkv_all, (size_t)src * kv_elems), dout, lse, qkv,
                     act_at(be, a->kv_all, (size_t)src * kv_elems), src, B);
    dcomm_reduce_scatter_sum_act(g, be, a->dkv_all, a->dkv_a, kv_elems);
    home = a->dkv_a;
  } else {
    act_t *cur = a->kv_a, *next = a->kv_b, *dcur = a->dkv_a, *dnext = a->dkv_b;
    pack_kv(a, cur, qkv, rows);
    be->zero_act(dcur, kv_elems);
    for (int j = 0; j < P; j++) {
      dcomm_request kv_step, d_step;
      if (j < P - 1)
        dcomm_exchange_act_start(g, be, cur, (me + 1) % P, next, (me - 1 + P) % P, kv_elems, TAG_KV, &kv_step);
      backward_block(a, l, dqkv, dcur, dout, lse, qkv, cur, (me - j + P) % P, B);
      /* the block's dK|dV follow it; after P steps each is home */
      dcomm_exchange_act_start(g, be, dcur, (me + 1) % P, dnext, (me - 1 + P) % P, kv_elems, TAG_DKV, &d_step);
      dcomm_wait(&d_step);
      act_t *t = dcur;
      dcur = dnext, dnext = t;
      if (j < P - 1) {
        dcomm_wait(&kv_step);
        t = cur, cur = next, next = t;
      }
    }
    home = dcur;
  }
  be->copy_rows(act_at(be, dqkv, (size_t)Cl), 3 * Cl, home, 2 * Cl, rows, 2 * Cl);
}

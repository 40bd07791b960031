/* sp_tokenring — TokenRing for causal softmax attention (sp_attention.h):
 * the keys and values stay home and the queries travel.
 *
 * Forward, P ranks: rank r's query rows travel r → r+1, one hop per step.
 * At step j rank r holds the queries of s = r−j and attends them to its own
 * K|V (per piece pair, skipping pairs entirely in the future, as ring
 * attention does; two blocks one query piece sees here are merged here),
 * and sends the partial output and log-sum-exp of every query piece that
 * saw a key straight back to s; s merges them into its fp32 accumulator (attention_merge). So the
 * links carry queries one way and results the other. Backward: Q, dO, lse
 * and delta travel the same way, partial dQ goes back to its owner, and
 * dK|dV accumulate at home — nothing of K|V ever moves.
 *
 * Overlap: step j+1's queries are sent while step j computes, and step j's
 * results travel while step j+1 computes; they are merged one step late.
 * The rank's own queries need no message, so their work is split to cover
 * both ends: the diagonal blocks (which start every accumulator row) while
 * the first queries arrive, the other own blocks while the last results
 * come home.
 * Message order is the same on every rank (queries of j+1, then results of
 * j, each one send/receive exchange), as NCCL, pairing by order, needs.
 *
 * With the zig-zag placement (pieces r and 2P−1−r) and s ≠ r, s's late
 * piece sees r's early piece always and r's late piece when r > s; s's early
 * piece sees r's early piece when r < s. So every step costs each rank two
 * blocks, and a result message holds one or two pieces: which ones is a
 * function both ends compute (seen_pieces). Each piece result is
 * [B·n, Cl] outputs then [B, NHl, n] lse (forward) or [B·n, Cl] dQ. */
#include "sp_attention.h"

#include "device_comm.h"

enum { TAG_Q = 7, TAG_OUT = 8, TAG_QDO = 9, TAG_LSE = 10, TAG_DELTA = 11, TAG_DQ = 12 };

/* whether piece p of rank s's queries sees a key of piece q of rank r */
static bool block_visible(const sp_layout *l, int s, int p, int r, int q) {
  return sp_layout_pos0_of(l, r, q) <= sp_layout_pos0_of(l, s, p) + l->piece_len - 1;
}

/* The pieces of rank s's queries that see a key of rank r, in piece order;
 * returns how many (the pieces of a result message from r to s). */
static int seen_pieces(const sp_layout *l, int s, int r, int pieces[2]) {
  int k = 0;
  for (int p = 0; p < l->n_pieces; p++) {
    bool seen = false;
    for (int q = 0; q < l->n_pieces; q++) seen = seen || block_visible(l, s, p, r, q);
    if (seen) pieces[k++] = p;
  }
  return k;
}

/* Attention of piece p of rank s's queries (Q, rows ld_q apart) to this
 * rank's key pieces q_lo .. q_hi−1 into o [B·n, Cl] and ls [B, NHl, n]:
 * `fresh` OVERWRITES them with the first visible block (merging the rest),
 * else every block is merged into what they hold. */
static void attend_blocks(sp_attention *a, const sp_layout *l, f32_t *o, f32_t *ls, const act_t *Q, int ld_q,
                          const act_t *qkv, int s, int p, int q_lo, int q_hi, bool fresh, int B) {
  const backend *be = a->be;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len, me = a->group->rank;
  bool first = fresh;
  for (int q = q_lo; q < q_hi; q++) {
    if (!block_visible(l, s, p, me, q)) continue;
    const act_t *K = act_at(be, qkv, (size_t)q * B * n * 3 * Cl + Cl);
    be->attention_block_forward(first ? o : a->out_b, first ? ls : a->lse_b, Q, K, act_at(be, K, (size_t)Cl), ld_q,
                                3 * Cl, B, n, n, Cl, NHl, sp_layout_pos0_of(l, s, p), sp_layout_pos0_of(l, me, q));
    if (!first) be->attention_merge(o, ls, a->out_b, a->lse_b, B, n, Cl, NHl);
    first = false;
  }
}

/* This rank's queries against its own keys: the diagonal blocks (fresh:
 * each piece's own block starts its rows) or the others (merged). */
static void attend_own(sp_attention *a, const sp_layout *l, f32_t *lse, const act_t *qkv, bool diagonal, int B) {
  const int Cl = a->C_local, NHl = a->NH_local, me = a->group->rank;
  const size_t piece_rows = (size_t)B * l->piece_len;
  for (int p = 0; p < l->n_pieces; p++)
    for (int q = 0; q < l->n_pieces; q++)
      if ((q == p) == diagonal)
        attend_blocks(a, l, f32_at(a->acc, p * piece_rows * Cl), f32_at(lse, p * piece_rows * NHl),
                      act_at(a->be, qkv, p * piece_rows * 3 * Cl), 3 * Cl, qkv, me, p, q, q + 1, diagonal, B);
}

/* Waits for the results of step j (from rank me+j) and merges them into
 * this rank's accumulator and lse. */
static void merge_outputs(sp_attention *a, const sp_layout *l, f32_t *lse, int j, dcomm_request *req, int B) {
  const backend *be = a->be;
  const int P = a->group->size, me = a->group->rank, Cl = a->C_local, NHl = a->NH_local;
  const size_t piece_rows = (size_t)B * l->piece_len, unit = piece_rows * (Cl + NHl);
  dcomm_wait(req);
  int pieces[2];
  const int k = seen_pieces(l, me, (me + j) % P, pieces);
  for (int i = 0; i < k; i++) {
    const f32_t *o = f32_at(a->t_out_recv[j % 2], i * unit);
    be->attention_merge(f32_at(a->acc, pieces[i] * piece_rows * Cl), f32_at(lse, pieces[i] * piece_rows * NHl), o,
                        f32_at(o, piece_rows * Cl), B, l->piece_len, Cl, NHl);
  }
}

void sp_tokenring_softmax_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *lse, const act_t *qkv,
                                  int B) {
  const backend *be = a->be;
  comm *g = a->group;
  const int P = g->size, me = g->rank, Cl = a->C_local, NHl = a->NH_local;
  const int rows = B * sp_layout_local_tokens(l);
  const size_t piece_rows = (size_t)B * l->piece_len, unit = piece_rows * (Cl + NHl);
  act_t *cur = a->kv_a, *next = a->kv_b; /* the queries at hand, [rows, Cl] */
  be->copy_rows(cur, Cl, qkv, 3 * Cl, rows, Cl);
  dcomm_request q_step, out_step[2];
  for (int j = 0; j < P; j++) {
    if (j < P - 1) /* the next queries travel while these are used */
      dcomm_exchange_act_start(g, be, cur, (me + 1) % P, next, (me - 1 + P) % P, (size_t)rows * Cl, TAG_Q, &q_step);
    if (j == 0) {
      attend_own(a, l, lse, qkv, true, B);
    } else {
      const int s = (me - j + P) % P, t = (me + j) % P;
      int mine[2], theirs[2];
      const int n_send = seen_pieces(l, s, me, mine), n_recv = seen_pieces(l, me, t, theirs);
      f32_t *send = a->t_out_send[j % 2];
      for (int i = 0; i < n_send; i++) {
        f32_t *o = f32_at(send, i * unit);
        attend_blocks(a, l, o, f32_at(o, piece_rows * Cl), act_at(be, cur, mine[i] * piece_rows * Cl), Cl, qkv, s,
                      mine[i], 0, l->n_pieces, true, B);
      }
      dcomm_sendrecv_f32_start(g, be, send, n_send * unit, s, a->t_out_recv[j % 2], n_recv * unit, t, TAG_OUT,
                               &out_step[j % 2]);
    }
    if (j >= 2) merge_outputs(a, l, lse, j - 1, &out_step[(j - 1) % 2], B);
    if (j < P - 1) {
      dcomm_wait(&q_step);
      act_t *swap = cur;
      cur = next, next = swap;
    }
  }
  attend_own(a, l, lse, qkv, false, B); /* while the last results come home */
  if (P >= 2) merge_outputs(a, l, lse, P - 1, &out_step[(P - 1) % 2], B);
  be->cast_f32_to_act(out, a->acc, (size_t)rows * Cl);
}

/* The queries of a backward step, in their owner's row order: Q (rows
 * ld_q apart), dO [rows, Cl], lse and delta. Travelling, Q and dO are one
 * message, [rows, Cl] of Q then [rows, Cl] of dO; this rank's own are read
 * where they lie (qkv, dout), since the travel buffers are reused. */
typedef struct travel {
  const act_t *q, *dout;
  int ld_q;
  const f32_t *lse, *delta;
} travel;

static travel travelling(const sp_attention *a, const act_t *q_do, const f32_t *lse, const f32_t *delta, size_t rows) {
  return (travel){q_do, act_at(a->be, q_do, rows * a->C_local), a->C_local, lse, delta};
}

/* dQ of piece p of rank s's queries against this rank's key pieces
 * q_lo .. q_hi−1 (ACCUMULATED into dq, [B·n, Cl]) and those keys' dK|dV
 * (accumulated into dqkv's k|v columns) */
static void backward_blocks(sp_attention *a, const sp_layout *l, act_t *dq, act_t *dqkv, const travel *t,
                            const act_t *qkv, int s, int p, int q_lo, int q_hi, int B) {
  const backend *be = a->be;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len, me = a->group->rank;
  const size_t piece_rows = (size_t)B * n;
  const act_t *Q = act_at(be, t->q, p * piece_rows * t->ld_q), *dO = act_at(be, t->dout, p * piece_rows * Cl);
  const f32_t *lse = f32_at(t->lse, p * piece_rows * NHl), *delta = f32_at(t->delta, p * piece_rows * NHl);
  for (int q = q_lo; q < q_hi; q++) {
    if (!block_visible(l, s, p, me, q)) continue;
    const size_t k_at = (size_t)q * piece_rows * 3 * Cl + Cl;
    const act_t *K = act_at(be, qkv, k_at);
    act_t *dK = act_at(be, dqkv, k_at);
    be->attention_block_backward(dq, dK, act_at(be, dK, (size_t)Cl), Cl, 3 * Cl, dO, delta, lse, Q, K,
                                 act_at(be, K, (size_t)Cl), t->ld_q, 3 * Cl, B, n, n, Cl, NHl, sp_layout_pos0_of(l, s, p),
                                 sp_layout_pos0_of(l, me, q));
  }
}

/* This rank's queries (in t) against its own keys: the diagonal blocks or
 * the others, as in the forward */
static void backward_own(sp_attention *a, const sp_layout *l, act_t *dqkv, const travel *t, const act_t *qkv,
                         bool diagonal, int B) {
  const size_t piece_elems = (size_t)B * l->piece_len * a->C_local;
  for (int p = 0; p < l->n_pieces; p++)
    for (int q = 0; q < l->n_pieces; q++)
      if ((q == p) == diagonal)
        backward_blocks(a, l, act_at(a->be, a->t_dq, p * piece_elems), dqkv, t, qkv, a->group->rank, p, q, q + 1, B);
}

/* Waits for the partial dQ of step j (from rank me+j) and adds it to t_dq. */
static void merge_dq(sp_attention *a, const sp_layout *l, int j, dcomm_request *req, int B) {
  const backend *be = a->be;
  const int P = a->group->size, me = a->group->rank;
  const size_t piece_elems = (size_t)B * l->piece_len * a->C_local;
  dcomm_wait(req);
  int pieces[2];
  const int k = seen_pieces(l, me, (me + j) % P, pieces);
  for (int i = 0; i < k; i++)
    be->accumulate(act_at(be, a->t_dq, pieces[i] * piece_elems), act_at(be, a->t_dq_recv[j % 2], i * piece_elems),
                   piece_elems);
}

/* Starts the hop of the travelling queries to me+1 and the arrival of the
 * next ones from me−1: three exchanges, in the same order on every rank. */
static void travel_start(sp_attention *a, const travel *cur, act_t *q_do_next, f32_t *lse_next, f32_t *delta_next,
                         size_t rows, dcomm_request req[3]) {
  comm *g = a->group;
  const int P = g->size, to = (g->rank + 1) % P, from = (g->rank - 1 + P) % P;
  const size_t stats = rows * a->NH_local;
  /* a travelling cur->q starts the [Q | dO] message */
  dcomm_exchange_act_start(g, a->be, cur->q, to, q_do_next, from, rows * 2 * a->C_local, TAG_QDO, &req[0]);
  dcomm_sendrecv_f32_start(g, a->be, cur->lse, stats, to, lse_next, stats, from, TAG_LSE, &req[1]);
  dcomm_sendrecv_f32_start(g, a->be, cur->delta, stats, to, delta_next, stats, from, TAG_DELTA, &req[2]);
}

void sp_tokenring_softmax_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout,
                                   const act_t *out, const f32_t *lse, const act_t *qkv, int B) {
  const backend *be = a->be;
  comm *g = a->group;
  const int P = g->size, me = g->rank, Cl = a->C_local, NHl = a->NH_local, n = l->piece_len;
  const int rows = B * sp_layout_local_tokens(l);
  const size_t piece_rows = (size_t)B * n, piece_elems = piece_rows * Cl;
  be->zero_act(dqkv, (size_t)rows * 3 * Cl);
  be->zero_act(a->t_dq, (size_t)rows * Cl);
  for (int p = 0; p < l->n_pieces; p++)
    be->attention_delta(f32_at(a->delta, p * piece_rows * NHl), act_at(be, dout, p * piece_elems),
                        act_at(be, out, p * piece_elems), B, n, Cl, NHl);
  act_t *q_do[2] = {a->kv_a, a->kv_b};
  be->copy_rows(q_do[0], Cl, qkv, 3 * Cl, rows, Cl);
  be->copy_rows(act_at(be, q_do[0], (size_t)rows * Cl), Cl, dout, Cl, rows, Cl);
  const travel own = {qkv, dout, 3 * Cl, lse, a->delta};
  travel cur = travelling(a, q_do[0], lse, a->delta, (size_t)rows);
  dcomm_request hop[3], dq_step[2];
  for (int j = 0; j < P; j++) {
    /* the buffers this hop lands in: not the ones being sent (the other parity) */
    act_t *q_do_next = q_do[(j + 1) % 2];
    f32_t *lse_next = a->t_lse[j % 2], *delta_next = a->t_delta[j % 2];
    if (j < P - 1) travel_start(a, &cur, q_do_next, lse_next, delta_next, (size_t)rows, hop);
    if (j == 0) {
      backward_own(a, l, dqkv, &own, qkv, true, B);
    } else {
      const int s = (me - j + P) % P, t = (me + j) % P;
      int mine[2], theirs[2];
      const int n_send = seen_pieces(l, s, me, mine), n_recv = seen_pieces(l, me, t, theirs);
      act_t *send = a->t_dq_send[j % 2];
      be->zero_act(send, n_send * piece_elems);
      for (int i = 0; i < n_send; i++)
        backward_blocks(a, l, act_at(be, send, i * piece_elems), dqkv, &cur, qkv, s, mine[i], 0, l->n_pieces, B);
      dcomm_sendrecv_act_start(g, be, send, n_send * piece_elems, s, a->t_dq_recv[j % 2], n_recv * piece_elems, t,
                               TAG_DQ, &dq_step[j % 2]);
    }
    if (j >= 2) merge_dq(a, l, j - 1, &dq_step[(j - 1) % 2], B);
    if (j < P - 1) {
      for (int i = 0; i < 3; i++) dcomm_wait(&hop[i]);
      cur = travelling(a, q_do_next, lse_next, delta_next, (size_t)rows);
    }
  }
  backward_own(a, l, dqkv, &own, qkv, false, B); /* while the last dQ comes home */
  if (P >= 2) merge_dq(a, l, P - 1, &dq_step[(P - 1) % 2], B);
  be->copy_rows(dqkv, 3 * Cl, a->t_dq, Cl, rows, Cl);
}

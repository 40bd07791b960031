/* sp_linear — causal linear attention with decay over the sp group: LASP's
 * ring and LASP-2's all-gather of chunk states (sp_attention.h).
 *
 * The sequence is the chain of its chunks c = 0 .. n_chunks−1 (each of n
 * tokens, owned by one rank as one of its pieces). Per piece, the backend
 * computes the output from a zero state and the piece's own final state M_c
 * (linear_attention_forward); the state entering chunk c is
 *     S_c^in = Σ_{u<c} λ^{(c−1−u)·n} M_u,  i.e.  S_{c+1}^in = λ^n S_c^in + M_c,
 * and adds diag(λ^{i+1}) Q S_c^in (linear_attention_state_forward). In the
 * backward, with Dl_c = Σ_i λ^{i+1} q_iᵀ do_i (from state_backward, which
 * also gives dQ's state term), the gradient of the state leaving chunk c is
 *     G_c = Σ_{u>c} λ^{(u−c−1)·n} Dl_u,  i.e.  G_{c−1} = λ^n G_c + Dl_c,
 * which linear_attention_backward turns into the K and V terms. Both
 * recurrences are one linear_attention_state_combine per step (a copy is a
 * combine with n = 0 into zeros). In the ring, the heavy per-piece work is
 * done before waiting, so only a combine sits on the chain's critical path.
 * States are f32_t on every backend and move through parallel/comm/device_comm.
 * All-Scan (sp_scan.h) runs the same two recurrences on the contiguous
 * placement (chunk c = rank c), the state in pipelined blocks. */
#include "sp_attention.h"

#include "device_comm.h"
#include "fail.h"
#include "sp_scan.h"

enum { TAG_STATE = 3, TAG_DSTATE = 4, TAG_SCAN = 5, TAG_DSCAN = 6 };

static size_t state_elems(const sp_attention *a, int B) { return (size_t)B * a->NH_local * a->HS * a->HS; }

/* dst = λ^n·src + add (src, add may be NULL meaning zero) */
static void combine_into(sp_attention *a, f32_t *dst, const f32_t *src, const f32_t *add, const f32_t *decay, int n,
                         int B) {
  const backend *be = a->be;
  be->zero_f32(dst, state_elems(a, B));
  if (src) be->linear_attention_state_combine(dst, src, decay, 0, B, a->NH_local, a->HS);
  if (add) be->linear_attention_state_combine(dst, add, decay, n, B, a->NH_local, a->HS);
}

/* piece p's rows of a [rows, width] tensor */
static act_t *piece_rows(const sp_attention *a, const act_t *x, int p, int B, int n, int width) {
  return act_at(a->be, x, (size_t)p * B * n * width);
}

void sp_linear_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *state_in, const act_t *qkv,
                       const f32_t *decay, int B, int chunk) {
  if (a->kind == SP_ULYSSES) {
    sp_ulysses_linear_forward(a, l, out, qkv, decay, B, chunk);
    return;
  }
  const backend *be = a->be;
  comm *g = a->group;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len, me = g->rank;
  const size_t S = state_elems(a, B);
  /* each piece from a zero state: its output and its own final state M */
  for (int p = 0; p < l->n_pieces; p++)
    be->linear_attention_forward(piece_rows(a, out, p, B, n, Cl), f32_at(a->states, (size_t)p * S),
                                 piece_rows(a, qkv, p, B, n, 3 * Cl), decay, B, n, Cl, NHl, chunk);
  if (a->kind == SP_ALLGATHER) {
    dcomm_allgather_f32(g, be, a->states, a->states_all, (size_t)l->n_pieces * S);
    for (int p = 0; p < l->n_pieces; p++) {
      f32_t *in = f32_at(state_in, (size_t)p * S);
      be->zero_f32(in, S);
      for (int u = 0; u < l->piece_chunk[p]; u++) { /* Horner over the earlier chunks */
        int r, q;
        sp_layout_chunk_owner(l, u, &r, &q);
        be->linear_attention_state_combine(in, f32_at(a->states_all, ((size_t)r * l->n_pieces + q) * S), decay, n, B,
                                           NHl, a->HS);
      }
    }
  } else if (a->kind == SP_ALLSCAN) {
    ENSURE(l->n_pieces == 1, "all-scan needs the contiguous placement");
    sp_allscan(g, be, state_in, a->state_b, a->states, decay, n, B, NHl, a->HS, sp_scan_heads_per_block(a->HS),
               SP_SCAN_UP, TAG_SCAN);
  } else { /* the chain: S_in of chunk c from c−1's owner, S_out to c+1's */
    for (int c = 0; c < l->n_chunks; c++) {
      int owner, p;
      sp_layout_chunk_owner(l, c, &owner, &p);
      if (owner != me) continue;
      f32_t *in = f32_at(state_in, (size_t)p * S);
      int before = -1, before_piece = 0, after = -1, after_piece = 0;
      if (c > 0) sp_layout_chunk_owner(l, c - 1, &before, &before_piece);
      if (c + 1 < l->n_chunks) sp_layout_chunk_owner(l, c + 1, &after, &after_piece);
      if (c == 0) be->zero_f32(in, S);
      else if (before == me) combine_into(a, in, a->state_b, NULL, decay, n, B); /* S_out of our chunk c−1 */
      else dcomm_recv_f32(g, be, in, S, before, TAG_STATE);
      if (after >= 0) {
        combine_into(a, a->state_b, in, f32_at(a->states, (size_t)p * S), decay, n, B);
        if (after != me) dcomm_send_f32(g, be, a->state_b, S, after, TAG_STATE);
      }
    }
  }
  for (int p = 0; p < l->n_pieces; p++)
    be->linear_attention_state_forward(piece_rows(a, out, p, B, n, Cl), piece_rows(a, qkv, p, B, n, 3 * Cl),
                                       f32_at(state_in, (size_t)p * S), decay, B, n, Cl, NHl);
}

void sp_linear_recompute(sp_attention *a, const sp_layout *l, act_t *out, const f32_t *state_in, const act_t *qkv,
                         const f32_t *decay, int B, int chunk) {
  if (a->kind == SP_ULYSSES) { /* no saved state to start from: the forward again, all-to-alls included */
    sp_ulysses_linear_forward(a, l, out, qkv, decay, B, chunk);
    return;
  }
  const backend *be = a->be;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len;
  const size_t S = state_elems(a, B);
  for (int p = 0; p < l->n_pieces; p++) {
    be->linear_attention_forward(piece_rows(a, out, p, B, n, Cl), NULL, piece_rows(a, qkv, p, B, n, 3 * Cl), decay, B,
                                 n, Cl, NHl, chunk);
    be->linear_attention_state_forward(piece_rows(a, out, p, B, n, Cl), piece_rows(a, qkv, p, B, n, 3 * Cl),
                                       f32_at(state_in, (size_t)p * S), decay, B, n, Cl, NHl);
  }
}

void sp_linear_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *qkv,
                        const f32_t *state_in, const f32_t *decay, int B, int chunk) {
  if (a->kind == SP_ULYSSES) {
    sp_ulysses_linear_backward(a, l, dqkv, dout, qkv, decay, B, chunk);
    return;
  }
  const backend *be = a->be;
  comm *g = a->group;
  const int Cl = a->C_local, NHl = a->NH_local, n = l->piece_len, me = g->rank;
  const int rows = B * sp_layout_local_tokens(l);
  const size_t S = state_elems(a, B);
  /* per piece: dQ's state term (kept apart: the backward below overwrites
   * dqkv) and Dl, the gradient with respect to the state entering it */
  be->zero_act(a->dq_scratch, (size_t)rows * 3 * Cl);
  for (int p = 0; p < l->n_pieces; p++)
    be->linear_attention_state_backward(piece_rows(a, a->dq_scratch, p, B, n, 3 * Cl), f32_at(a->states, (size_t)p * S),
                                        piece_rows(a, dout, p, B, n, Cl), piece_rows(a, qkv, p, B, n, 3 * Cl),
                                        f32_at(state_in, (size_t)p * S), decay, B, n, Cl, NHl);
  /* G for each piece: the gradient of the state leaving it (NULL: the last chunk) */
  const f32_t *G[2] = {NULL, NULL};
  if (a->kind == SP_ALLGATHER) {
    dcomm_allgather_f32(g, be, a->states, a->states_all, (size_t)l->n_pieces * S);
    f32_t *out_of[2] = {a->state_a, a->state_b};
    for (int p = 0; p < l->n_pieces; p++) {
      if (l->piece_chunk[p] == l->n_chunks - 1) continue;
      be->zero_f32(out_of[p], S);
      for (int u = l->n_chunks - 1; u > l->piece_chunk[p]; u--) { /* Horner from the last chunk down */
        int r, q;
        sp_layout_chunk_owner(l, u, &r, &q);
        be->linear_attention_state_combine(out_of[p], f32_at(a->states_all, ((size_t)r * l->n_pieces + q) * S), decay,
                                           n, B, NHl, a->HS);
      }
      G[p] = out_of[p];
    }
    for (int p = 0; p < l->n_pieces; p++)
      be->linear_attention_backward(piece_rows(a, dqkv, p, B, n, 3 * Cl), piece_rows(a, dout, p, B, n, Cl),
                                    piece_rows(a, qkv, p, B, n, 3 * Cl), G[p], decay, B, n, Cl, NHl, chunk);
  } else if (a->kind == SP_ALLSCAN) { /* G of the last rank's chunk: none */
    ENSURE(l->n_pieces == 1, "all-scan needs the contiguous placement");
    sp_allscan(g, be, a->state_a, a->state_b, a->states, decay, n, B, NHl, a->HS, sp_scan_heads_per_block(a->HS),
               SP_SCAN_DOWN, TAG_DSCAN);
    be->linear_attention_backward(dqkv, dout, qkv, me == g->size - 1 ? NULL : a->state_a, decay, B, n, Cl, NHl, chunk);
  } else { /* the chain backwards: G_c from c+1's owner, G_{c−1} to c−1's */
    f32_t *g_in = a->state_a, *g_out = a->state_b;
    for (int c = l->n_chunks - 1; c >= 0; c--) {
      int owner, p;
      sp_layout_chunk_owner(l, c, &owner, &p);
      if (owner != me) continue;
      int before = -1, before_piece = 0, after = -1, after_piece = 0;
      if (c > 0) sp_layout_chunk_owner(l, c - 1, &before, &before_piece);
      if (c + 1 < l->n_chunks) sp_layout_chunk_owner(l, c + 1, &after, &after_piece);
      const f32_t *Gc = NULL;
      if (after >= 0) {
        if (after == me) { /* G_c is the G_{c} we computed at chunk c+1: swap it in */
          f32_t *t = g_in;
          g_in = g_out, g_out = t;
        } else {
          dcomm_recv_f32(g, be, g_in, S, after, TAG_DSTATE);
        }
        Gc = g_in;
      }
      if (before >= 0) {
        combine_into(a, g_out, Gc, f32_at(a->states, (size_t)p * S), decay, n, B);
        if (before != me) dcomm_send_f32(g, be, g_out, S, before, TAG_DSTATE);
      }
      be->linear_attention_backward(piece_rows(a, dqkv, p, B, n, 3 * Cl), piece_rows(a, dout, p, B, n, Cl),
                                    piece_rows(a, qkv, p, B, n, 3 * Cl), Gc, decay, B, n, Cl, NHl, chunk);
    }
  }
  be->accumulate(dqkv, a->dq_scratch, (size_t)rows * 3 * Cl);
}

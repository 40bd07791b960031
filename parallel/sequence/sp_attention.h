/* sp_attention — attention over a sequence split across the sp group
 * (DESIGN.md, "Attention kinds"; the maths: shared notes on linear attention
 * and sequence parallelism). Every rank holds its pieces of every sequence
 * (parallel/sequence/sp_layout.h: rows piece by piece); these calls compute the
 * attention of its query rows against the whole causal past, communicating
 * over the sp group, and their backwards. Compute goes through the backend
 * (kernels/backend.h); communication through parallel/comm/device_comm, on the
 * backend's buffers (host view, host copies or NCCL).
 *
 * Softmax attention (FlashAttention's decomposition: per key block an
 * output and a log-sum-exp row, merged in fp32):
 *   allgather  K and V of every rank are all-gathered once per layer in
 *              forward and again in backward; the backward's dK, dV of
 *              every rank's keys are reduce-scattered home (LASP-2H style).
 *   ring       K/V blocks travel r → r+1 for sp−1 steps while the current
 *              one is used; in backward each block's dK, dV travel with it
 *              and arrive home after sp steps (ring attention). With the
 *              zig-zag placement every step costs every rank the same.
 * Linear attention with decay (chunkwise; state S = Σ λ^{t−s} k_sᵀ v_s):
 *   ring       LASP-1: the state entering each chunk passes from the chunk
 *              before's owner to the next chunk's owner (the chain of chunks
 *              in sequence order; with zig-zag it runs up the ranks and back
 *              down); the gradient of the state passes the other way.
 *   allgather  LASP-2: every rank's chunk states (computed from zero) are
 *              all-gathered once per layer and combined with the decay
 *              (Horner: S = λ^n S + M_u over the earlier chunks); in
 *              backward the gradients' counterparts likewise. Bytes per
 *              layer do not depend on the sequence length.
 *   allscan    ZeCO's All-Scan (sp_scan.h): LASP's chain of states on the
 *              contiguous placement, each state pipelined in blocks of
 *              whole head matrices, up the ranks in forward and down in
 *              backward. Its softmax layers (hybrid models) use the
 *              all-gather above (the contiguous placement is allscan's,
 *              and ring attention would need zig-zag to balance).
 *   tokenring  TokenRing (sp_tokenring.c): K|V stay home; the query rows
 *              travel r → r+1, one hop per step, and at step j rank r
 *              attends rank r−j's queries to its own keys and sends the
 *              partial output and log-sum-exp straight back to their
 *              owner, which merges them: both directions of the links carry
 *              data. Backward: Q, dO, lse and delta travel, partial dQ goes
 *              back, dK|dV accumulate at home. Zig-zag placement, as ring;
 *              linear layers use LASP's ring (as ring does).
 * Either attention:
 *   ulysses    DeepSpeed-Ulysses: an all-to-all turns this rank's rows of
 *              every local head into the whole sequence of NHl/P heads,
 *              the single-rank kernel runs on them, an all-to-all brings
 *              the output back (sp_ulysses.c). NHl must divide by P.
 * Bytes per rank and layer (w bytes per value, n tokens per piece, P ranks,
 * P·pieces chunks; doc/design.md states them and tests/comm_bytes.sh
 * checks them): see the functions' comments.
 */
#ifndef TESSERA_SP_ATTENTION_H
#define TESSERA_SP_ATTENTION_H

#include <stdbool.h>

#include "backend.h"
#include "comm.h"
#include "sp_layout.h"

/* the order of config's sp_kind_choice */
typedef enum sp_kind { SP_RING, SP_ALLGATHER, SP_ALLSCAN, SP_ULYSSES, SP_TOKENRING } sp_kind;

/* Where each rank's tokens lie under `kind`: ring attention and TokenRing
 * over softmax layers balance their causal work with the zig-zag placement,
 * which then
 * holds for every layer of the model (linear layers chain their pieces in
 * sequence order); everything else is contiguous. */
sp_placement sp_attention_placement(sp_kind kind, bool model_has_softmax);

typedef struct sp_attention {
  const backend *be;
  comm *group;  /* the sp group */
  sp_kind kind;
  int max_B, max_T_local, C_local, NH_local, HS;
  /* workspaces, sized for the largest micro-batch */
  act_t *kv_own, *kv_a, *kv_b, *dkv_a, *dkv_b; /* [rows, 2·Cl]: one block of K|V rows */
  act_t *kv_all, *dkv_all;                     /* allgather: [P, rows, 2·Cl] */
  f32_t *acc, *out_b, *lse_b, *delta;
  act_t *dq_scratch;                           /* linear: the state term of dQ */
  f32_t *states, *states_all, *state_a, *state_b; /* linear: per piece [B, NHl, HS, HS] */
  act_t *u_send, *u_recv, *u_qkv, *u_dqkv;        /* ulysses: [rows, 3·Cl] each */
  act_t *u_out, *u_dout;                          /* ulysses: [rows, Cl] each */
  /* tokenring (the travelling queries use kv_a, kv_b): results going home
   * and arriving, double-buffered by step parity */
  f32_t *t_out_send[2], *t_out_recv[2]; /* [rows, Cl + NHl]: partial outputs and lse, piece by piece */
  act_t *t_dq_send[2], *t_dq_recv[2];   /* [rows, Cl]: partial dQ, piece by piece */
  act_t *t_dq;                          /* [rows, Cl]: this rank's dQ, summed */
  f32_t *t_lse[2], *t_delta[2];         /* [rows·NHl]: the travelling queries' lse and delta */
} sp_attention;

void sp_attention_create(sp_attention *a, const backend *be, comm *group, sp_kind kind, int max_B,
                         int max_T_local, int C_local, int NH_local);
void sp_attention_free(sp_attention *a);

/* ---- softmax ----
 * qkv [rows, 3·Cl] this rank's rows (layout order); out [rows, Cl]. `lse`
 * (saved for the backward, f32, sp_softmax_saved_elems) holds each query
 * row's log-sum-exp over its whole past. Backward OVERWRITES dqkv.
 * Bytes: allgather forward P·rows·2Cl·w gathered (P−1 of them received),
 * backward the same gather plus a reduce-scatter of P·rows·2Cl·w; ring
 * forward (P−1)·rows·2Cl·w sent, backward (P−1)·rows·2Cl·w of K|V plus
 * P·rows·2Cl·w of dK|dV. */
size_t sp_softmax_saved_elems(int B, int T_local, int NH_local);
void sp_softmax_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *lse, const act_t *qkv, int B);
void sp_softmax_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *out,
                         const f32_t *lse, const act_t *qkv, int B);

/* ---- linear ----
 * out [rows, Cl] the attention output before the output norm. `state_in`
 * (saved, f32, sp_linear_saved_elems) holds the state entering each of
 * this rank's pieces. Backward OVERWRITES dqkv.
 * Bytes (state s = B·NHl·HS²·4): ring: each chunk's owner sends one state
 * forward and one state gradient backward (none past the ends); allscan
 * the same bytes, in blocks; allgather:
 * P·pieces·s gathered in forward and again in backward. */
size_t sp_linear_saved_elems(int B, int NH_local, int HS, int n_pieces);
void sp_linear_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *state_in, const act_t *qkv,
                       const f32_t *decay, int B, int chunk);
/* The forward again from the saved entering states, without communicating
 * (selective recomputation). */
void sp_linear_recompute(sp_attention *a, const sp_layout *l, act_t *out, const f32_t *state_in, const act_t *qkv,
                         const f32_t *decay, int B, int chunk);
void sp_linear_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *qkv,
                        const f32_t *state_in, const f32_t *decay, int B, int chunk);

/* ---- ulysses (sp_ulysses.c; the calls above hand over to these) ----
 * Counted bytes (all-to-all: the input, rows·width·w; (P−1)/P of it crosses
 * the wire): forward 3 + 1 units of rows·Cl·w (qkv out, output back);
 * backward softmax 3 + 1 + 1 + 3 (qkv, output, its gradient out, dqkv
 * back), linear 3 + 1 + 3. lse as sp_softmax_saved_elems; linear saves
 * nothing (each rank holds whole sequences: no entering state). */
void sp_ulysses_softmax_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *lse, const act_t *qkv, int B);
void sp_ulysses_softmax_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *out,
                                 const f32_t *lse, const act_t *qkv, int B);
void sp_ulysses_linear_forward(sp_attention *a, const sp_layout *l, act_t *out, const act_t *qkv, const f32_t *decay,
                               int B, int chunk);
void sp_ulysses_linear_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout, const act_t *qkv,
                                const f32_t *decay, int B, int chunk);

/* ---- tokenring (sp_tokenring.c; sp_softmax_* hand over to these) ----
 * Counted bytes, rank r (rows = B·T/P, half = rows/2 a piece's rows, h = Cl,
 * w bytes per act_t value, f32 4; r's keys are seen by piece 1 of every
 * other rank's queries and by piece 0 of the P−1−r ranks above it, so r
 * returns u_r = 2P−2−r pieces of results per pass):
 *   forward   (P−1)·rows·h·w queries + u_r·half·(h + NHl)·4 outputs and lse
 *   backward  (P−1)·(2·rows·h·w + 2·rows·NHl·4) Q|dO, lse, delta
 *             + u_r·half·h·w partial dQ
 * lse as sp_softmax_saved_elems. */
void sp_tokenring_softmax_forward(sp_attention *a, const sp_layout *l, act_t *out, f32_t *lse, const act_t *qkv,
                                  int B);
void sp_tokenring_softmax_backward(sp_attention *a, const sp_layout *l, act_t *dqkv, const act_t *dout,
                                   const act_t *out, const f32_t *lse, const act_t *qkv, int B);

#endif

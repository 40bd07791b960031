/* sp_attention — see sp_attention.h. This file owns the workspaces; the
 * algorithms are in sp_softmax.c, sp_linear.c, sp_scan.c, sp_ulysses.c and
 * sp_tokenring.c. */
#include "sp_attention.h"

#include <string.h>

#include "fail.h"

void sp_attention_create(sp_attention *a, const backend *be, comm *group, sp_kind kind, int max_B,
                         int max_T_local, int C_local, int NH_local) {
  memset(a, 0, sizeof *a);
  a->be = be, a->group = group, a->kind = kind;
  a->max_B = max_B, a->max_T_local = max_T_local, a->C_local = C_local, a->NH_local = NH_local;
  a->HS = C_local / NH_local;
  const int P = group->size;
  const size_t rows = (size_t)max_B * max_T_local, kv = rows * 2 * (size_t)C_local;
  a->kv_own = be->alloc_act(kv, "sequence-parallel K|V");
  a->dq_scratch = be->alloc_act(rows * 3 * (size_t)C_local, "sequence-parallel dQ");
  if (kind == SP_RING) {
    a->kv_b = be->alloc_act(kv, "ring K|V");
    a->dkv_b = be->alloc_act(kv, "ring dK|dV");
  } else if (kind == SP_TOKENRING) {
    a->kv_b = be->alloc_act(kv, "TokenRing queries");
    for (int i = 0; i < 2; i++) {
      a->t_out_send[i] = be->alloc_f32(rows * (size_t)(C_local + NH_local), "TokenRing outputs sent");
      a->t_out_recv[i] = be->alloc_f32(rows * (size_t)(C_local + NH_local), "TokenRing outputs received");
      a->t_dq_send[i] = be->alloc_act(rows * (size_t)C_local, "TokenRing dQ sent");
      a->t_dq_recv[i] = be->alloc_act(rows * (size_t)C_local, "TokenRing dQ received");
      a->t_lse[i] = be->alloc_f32(rows * (size_t)NH_local, "TokenRing log-sum-exp");
      a->t_delta[i] = be->alloc_f32(rows * (size_t)NH_local, "TokenRing delta");
    }
    a->t_dq = be->alloc_act(rows * (size_t)C_local, "TokenRing dQ");
  } else { /* allgather, and allscan's softmax layers */
    a->kv_all = be->alloc_act(kv * (size_t)P, "gathered K|V");
    a->dkv_all = be->alloc_act(kv * (size_t)P, "gathered dK|dV");
  }
  a->kv_a = be->alloc_act(kv, "ring K|V");
  a->dkv_a = be->alloc_act(kv, "ring dK|dV");
  a->acc = be->alloc_f32(rows * (size_t)C_local, "attention accumulator");
  a->out_b = be->alloc_f32(rows * (size_t)C_local, "attention block output");
  a->lse_b = be->alloc_f32(rows * (size_t)NH_local, "attention block log-sum-exp");
  a->delta = be->alloc_f32(rows * (size_t)NH_local, "attention delta");
  if (kind == SP_ULYSSES) {
    a->u_send = be->alloc_act(rows * 3 * (size_t)C_local, "all-to-all send");
    a->u_recv = be->alloc_act(rows * 3 * (size_t)C_local, "all-to-all receive");
    a->u_qkv = be->alloc_act(rows * 3 * (size_t)C_local, "head-sharded Q|K|V");
    a->u_dqkv = be->alloc_act(rows * 3 * (size_t)C_local, "head-sharded dQ|dK|dV");
    a->u_out = be->alloc_act(rows * (size_t)C_local, "head-sharded attention output");
    a->u_dout = be->alloc_act(rows * (size_t)C_local, "head-sharded output gradient");
  }
  const size_t state = (size_t)max_B * NH_local * a->HS * a->HS; /* one piece, every head */
  a->states = be->alloc_f32(2 * state, "linear attention chunk states");
  a->states_all = be->alloc_f32(2 * state * (size_t)P, "gathered chunk states");
  a->state_a = be->alloc_f32(state, "linear attention state");
  a->state_b = be->alloc_f32(state, "linear attention state");
}

void sp_attention_free(sp_attention *a) {
  const backend *be = a->be;
  void *buffers[] = {a->kv_own, a->kv_a, a->kv_b, a->dkv_a, a->dkv_b, a->kv_all, a->dkv_all, a->acc, a->out_b,
                     a->lse_b, a->delta, a->dq_scratch, a->states, a->states_all, a->state_a, a->state_b,
                     a->u_send, a->u_recv, a->u_qkv, a->u_dqkv, a->u_out, a->u_dout,
                     a->t_out_send[0], a->t_out_send[1], a->t_out_recv[0], a->t_out_recv[1],
                     a->t_dq_send[0], a->t_dq_send[1], a->t_dq_recv[0], a->t_dq_recv[1], a->t_dq,
                     a->t_lse[0], a->t_lse[1], a->t_delta[0], a->t_delta[1]};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++)
    if (buffers[i]) be->free_buffer(buffers[i]);
  memset(a, 0, sizeof *a);
}

size_t sp_softmax_saved_elems(int B, int T_local, int NH_local) { return (size_t)B * T_local * NH_local; }

sp_placement sp_attention_placement(sp_kind kind, bool model_has_softmax) {
  return (kind == SP_RING || kind == SP_TOKENRING) && model_has_softmax ? SP_ZIGZAG : SP_CONTIGUOUS;
}

size_t sp_linear_saved_elems(int B, int NH_local, int HS, int n_pieces) {
  return (size_t)n_pieces * B * NH_local * HS * HS;
}

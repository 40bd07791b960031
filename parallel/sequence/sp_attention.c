/* sp_attention — see sp_attention.h. This file owns the workspaces; the
 * algorithms are in sp_softmax.c, sp_linear.c, sp_scan.c, sp_ulysses.c and
 * sp_tokenring.c. */
#include "sp_attention.h"

#include <string.h>

#include "fail.h"

void sp_attention_create(sp_attention *a, buffer_sizer *sizer, comm *group, sp_kind kind, int max_B,
                         int max_T_local, int C_local, int NH_local) {
  const backend *be = sizer->be;
  memset(a, 0, sizeof *a);
  a->be = be, a->group = group, a->kind = kind;
  a->max_B = max_B, a->max_T_local = max_T_local, a->C_local = C_local, a->NH_local = NH_local;
  a->HS = C_local / NH_local;
  const int P = group->size;
  const size_t rows = (size_t)max_B * max_T_local, kv = rows * 2 * (size_t)C_local;
  a->kv_own = sizer_act(sizer, kv, MEMORY_OTHER, "sequence-parallel K|V");
  a->dq_scratch = sizer_act(sizer, rows * 3 * (size_t)C_local, MEMORY_OTHER, "sequence-parallel dQ");
  if (kind == SP_RING) {
    a->kv_b = sizer_act(sizer, kv, MEMORY_OTHER, "ring K|V");
    a->dkv_b = sizer_act(sizer, kv, MEMORY_OTHER, "ring dK|dV");
  } else if (kind == SP_TOKENRING) {
    a->kv_b = sizer_act(sizer, kv, MEMORY_OTHER, "TokenRing queries");
    for (int i = 0; i < 2; i++) {
      a->t_out_send[i] = sizer_f32(sizer, rows * (size_t)(C_local + NH_local), MEMORY_OTHER, "TokenRing outputs sent");
      a->t_out_recv[i] =
          sizer_f32(sizer, rows * (size_t)(C_local + NH_local), MEMORY_OTHER, "TokenRing outputs received");
      a->t_dq_send[i] = sizer_act(sizer, rows * (size_t)C_local, MEMORY_OTHER, "TokenRing dQ sent");
      a->t_dq_recv[i] = sizer_act(sizer, rows * (size_t)C_local, MEMORY_OTHER, "TokenRing dQ received");
      a->t_lse[i] = sizer_f32(sizer, rows * (size_t)NH_local, MEMORY_OTHER, "TokenRing log-sum-exp");
      a->t_delta[i] = sizer_f32(sizer, rows * (size_t)NH_local, MEMORY_OTHER, "TokenRing delta");
    }
    a->t_dq = sizer_act(sizer, rows * (size_t)C_local, MEMORY_OTHER, "TokenRing dQ");
  } else { /* allgather, and allscan's softmax layers */
    a->kv_all = sizer_act(sizer, kv * (size_t)P, MEMORY_OTHER, "gathered K|V");
    a->dkv_all = sizer_act(sizer, kv * (size_t)P, MEMORY_OTHER, "gathered dK|dV");
  }
  a->kv_a = sizer_act(sizer, kv, MEMORY_OTHER, "ring K|V");
  a->dkv_a = sizer_act(sizer, kv, MEMORY_OTHER, "ring dK|dV");
  a->acc = sizer_f32(sizer, rows * (size_t)C_local, MEMORY_OTHER, "attention accumulator");
  a->out_b = sizer_f32(sizer, rows * (size_t)C_local, MEMORY_OTHER, "attention block output");
  a->lse_b = sizer_f32(sizer, rows * (size_t)NH_local, MEMORY_OTHER, "attention block log-sum-exp");
  a->delta = sizer_f32(sizer, rows * (size_t)NH_local, MEMORY_OTHER, "attention delta");
  if (kind == SP_ULYSSES) {
    a->u_send = sizer_act(sizer, rows * 3 * (size_t)C_local, MEMORY_OTHER, "all-to-all send");
    a->u_recv = sizer_act(sizer, rows * 3 * (size_t)C_local, MEMORY_OTHER, "all-to-all receive");
    a->u_qkv = sizer_act(sizer, rows * 3 * (size_t)C_local, MEMORY_OTHER, "head-sharded Q|K|V");
    a->u_dqkv = sizer_act(sizer, rows * 3 * (size_t)C_local, MEMORY_OTHER, "head-sharded dQ|dK|dV");
    a->u_out = sizer_act(sizer, rows * (size_t)C_local, MEMORY_OTHER, "head-sharded attention output");
    a->u_dout = sizer_act(sizer, rows * (size_t)C_local, MEMORY_OTHER, "head-sharded output gradient");
  }
  const size_t state = (size_t)max_B * NH_local * a->HS * a->HS; /* one piece, every head */
  a->states = sizer_f32(sizer, 2 * state, MEMORY_OTHER, "linear attention chunk states");
  a->states_all = sizer_f32(sizer, 2 * state * (size_t)P, MEMORY_OTHER, "gathered chunk states");
  a->state_a = sizer_f32(sizer, state, MEMORY_OTHER, "linear attention state");
  a->state_b = sizer_f32(sizer, state, MEMORY_OTHER, "linear attention state");
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

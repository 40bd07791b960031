/* sp_scan — see sp_scan.h. */
#include "sp_scan.h"

#include <stdbool.h>
#include <stdlib.h>

#include "device_comm.h"
#include "fail.h"

int sp_scan_heads_per_block(int HS) {
  const size_t head_bytes = (size_t)HS * HS * sizeof(float);
  return head_bytes >= SP_SCAN_BLOCK_BYTES ? 1 : (int)((SP_SCAN_BLOCK_BYTES + head_bytes - 1) / head_bytes);
}

/* out = λ^n in + local over the head matrices [first, first + count) of
 * the flat (b, h) order; one backend call per run of one sequence's heads
 * (the decay is per head, so the call starts at the run's first head). */
static void combine_block(const backend *be, f32_t *out, const f32_t *in, const f32_t *local, const f32_t *decay,
                          int n, int NH, int HS, int first, int count) {
  const size_t per_head = (size_t)HS * HS;
  for (int i = first; i < first + count;) {
    const int h = i % NH, run = h + (first + count - i) < NH ? first + count - i : NH - h;
    const size_t at = (size_t)i * per_head;
    const f32_t *d = decay ? f32_at(decay, (size_t)h) : NULL;
    be->zero_f32(f32_at(out, at), (size_t)run * per_head);
    be->linear_attention_state_combine(f32_at(out, at), f32_at(in, at), d, 0, 1, run, HS);    /* out = in */
    be->linear_attention_state_combine(f32_at(out, at), f32_at(local, at), d, n, 1, run, HS); /* λ^n out + local */
    i += run;
  }
}

void sp_allscan(comm *g, const backend *be, f32_t *in, f32_t *out, const f32_t *local, const f32_t *decay, int n,
                int B, int NH, int HS, int heads_per_block, sp_scan_direction direction, int tag) {
  ENSURE(heads_per_block > 0, "sp_allscan: %d heads per block", heads_per_block);
  const int P = g->size, r = g->rank, step = direction == SP_SCAN_UP ? 1 : -1;
  const int from = r - step, to = r + step; /* outside [0, P): none */
  const bool receives = from >= 0 && from < P, sends = to >= 0 && to < P;
  const int heads = B * NH, K = (heads + heads_per_block - 1) / heads_per_block;
  const size_t per_head = (size_t)HS * HS;
  if (!receives) be->zero_f32(in, (size_t)heads * per_head);
  dcomm_request *got = xmalloc((size_t)K * sizeof *got, "all-scan requests");
  dcomm_request *sent = xmalloc((size_t)K * sizeof *sent, "all-scan requests");
  /* block k's receive is posted before block k−1 is worked on, so it is in
   * flight while this rank combines and forwards the one before */
  for (int k = 0; k < K; k++) {
    const int first = k * heads_per_block, count = first + heads_per_block <= heads ? heads_per_block : heads - first;
    const size_t at = (size_t)first * per_head, elems = (size_t)count * per_head;
    if (receives && k == 0) dcomm_recv_f32_start(g, be, f32_at(in, at), elems, from, tag, &got[0]);
    if (receives && k + 1 < K) {
      const int next = first + heads_per_block, next_count = next + heads_per_block <= heads ? heads_per_block : heads - next;
      dcomm_recv_f32_start(g, be, f32_at(in, (size_t)next * per_head), (size_t)next_count * per_head, from, tag,
                           &got[k + 1]);
    }
    if (receives) dcomm_wait(&got[k]);
    if (!sends) continue;
    combine_block(be, out, in, local, decay, n, NH, HS, first, count);
    dcomm_send_f32_start(g, be, f32_at(out, at), elems, to, tag, &sent[k]);
  }
  if (sends)
    for (int k = 0; k < K; k++) dcomm_wait(&sent[k]);
  free(got);
  free(sent);
}

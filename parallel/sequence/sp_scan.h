/* sp_scan — ZeCO's All-Scan: the pipelined scan of linear-attention states
 * along the sp group (sp_attention.h, kind allscan; the maths: the shared
 * notes on linear attention and sequence parallelism).
 *
 * Rank r of the P ranks of group g holds `local`, one state per head
 * ([B, NH, HS, HS], f32), and needs `in`, the decayed sum of the earlier
 * ranks' ones (n tokens per rank, per-head decay λ):
 *   up (forward):   in_0 = 0, in_r = λ^n in_{r−1} + local_{r−1}
 *   down (backward): the same with the ranks in the other order
 *                   (in_{P−1} = 0, in_r from r+1).
 * Each rank receives in_r from its predecessor, computes
 * out_r = λ^n in_r + local_r and sends it to its successor: one state in,
 * one out per rank, the ring's bytes. Unlike the ring (LASP), the state
 * travels in blocks (sp_scan_heads_per_block whole head matrices each),
 * so a rank combines and forwards block k while block k+1 is still on its
 * way to it: the last rank has its state after (P − 1) block hops plus the
 * K blocks, not (P − 1) whole-state hops.
 * Communication: non-blocking f32 sends and receives of
 * parallel/comm/device_comm (checked, counted as sendrecv, watchdog-aware);
 * compute: the backend's linear_attention_state_combine per block. */
#ifndef TESSERA_SP_SCAN_H
#define TESSERA_SP_SCAN_H

#include "backend.h"
#include "comm.h"

typedef enum sp_scan_direction { SP_SCAN_UP, SP_SCAN_DOWN } sp_scan_direction;

/* Bytes a block reaches at least: below it, per-message costs (a few µs
 * in MPI) would outweigh what pipelining saves. */
#define SP_SCAN_BLOCK_BYTES 1024

/* Head matrices (HS × HS f32 each) per block: 1 when one reaches
 * SP_SCAN_BLOCK_BYTES (HS ≥ 16), else the fewest that together do. */
int sp_scan_heads_per_block(int HS);

/* The scan on group g (every rank calls it). in (OUT) gets this rank's
 * entering state, zeros at the first rank of the direction; out is
 * scratch of the same size (λ^n in + local, what is sent on); tag pairs
 * the messages. heads_per_block > 0. */
void sp_allscan(comm *g, const backend *be, f32_t *in, f32_t *out, const f32_t *local, const f32_t *decay, int n,
                int B, int NH, int HS, int heads_per_block, sp_scan_direction direction, int tag);

#endif

/* plan_stage — one pipeline stage of a layout laid out as the run lays it
 * out (model_create, zero_create, optimizer_buffers with a counting sizer):
 * its buffers' bytes by kind and the element counts the communication
 * formulas need. Private to src/plan.
 */
#ifndef TESSERA_PLAN_STAGE_H
#define TESSERA_PLAN_STAGE_H

#include "buffer_sizer.h"
#include "param_layout.h"
#include "plan.h"

typedef struct plan_stage {
  buffer_sizer sizer;          /* bytes by memory kind */
  size_t params_local;         /* the stage's parameter elements on a tp rank */
  size_t block_elems, outer_elems, tied_elems, n_own;
  int n_layers, n_chunks, softmax_layers, linear_layers;
  int chunk_global[MODEL_MAX_CHUNKS]; /* global index g = c·p + s of local chunk c */
  int n_global_chunks;
  bool has_embedding, has_head, norm_bias;
  int n_slots, micro_batches;
  int sp_pieces;               /* sequence pieces per sp rank (2: zig-zag) */
  int C_local, NH_local, head_size, ffn_local, mlp_in_local, V_local, T_local;
  size_t act_bytes;            /* bytes of one act_t element on the backend sized for */
} plan_stage;

/* The backend whose sizes a layout is planned with (config key backend:
 * cpu; cuda; auto = cuda when this build has it, else cpu). */
const backend *plan_backend(const config *cfg);

/* Stage pp_rank of layout l (checked valid), rank 0 of its other groups. */
void plan_stage_size(const config *cfg, const plan_layout *l, int pp_rank, plan_stage *out);

#endif

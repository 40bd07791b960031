/* model_internal — what the model's files share (model.c builds and drives,
 * model_block.c computes one transformer block); not for the rest of tessera.
 *
 * Row conventions: N = B·T rows per micro-batch; with sequence sharding a tp
 * rank holds N_local = N/t rows of the residual stream and the norms, and
 * every row of the tensors between a column- and a row-parallel product. */
#ifndef TESSERA_MODEL_INTERNAL_H
#define TESSERA_MODEL_INTERNAL_H

#include "model.h"

struct block_params {
  act_t *ln1_w, *ln1_b, *wqkv, *bqkv, *wo, *bo, *ln2_w, *ln2_b, *w1, *b1, *w2, *b2;
};

#define BLOCK_N_PARAMS 12
extern const char *const block_param_names[BLOCK_N_PARAMS];

/* What one block's backward needs from its forward (one micro-batch). Under
 * recomputation some of these point into shared scratch and are recomputed
 * before the backward (model.h). */
struct block_acts {
  act_t *ln1, *qkv, *atty, *res2, *ln2, *fch, *fch_gelu, *res3;
  f32_t *ln1_mean, *ln1_rstd, *ln2_mean, *ln2_rstd;
  /* the attention core: softmax keeps att_saved (the backend's, or the
   * log-sum-exp rows under sequence parallelism); linear keeps its output
   * before the per-head norm (att_raw), the norm's rstd, and under
   * sequence parallelism the states entering its pieces (att_state) */
  f32_t *att_saved;
  act_t *att_raw;
  f32_t *att_rstd, *att_state;
};

/* One micro-batch in flight through one chunk. */
struct model_slot {
  act_t *input;     /* the chunk's input: embedding output or received activation */
  act_t *d_output;  /* gradient of the chunk's output */
  ids_t *tokens;    /* the micro-batch's tokens, for the embedding's backward */
  block_acts *acts; /* one per layer of the largest chunk */
};

/* ---- model_block.c ---- */
int model_local_rows(const model *m, int N);
/* Elements of the softmax and linear attention's saved state per block, for
 * B sequences of T_local tokens on this rank. */
size_t model_softmax_saved_elems(const model *m, int B, int T_local);
size_t model_linear_state_elems(const model *m, int B);
/* Megatron's f and g operators over tp (no-ops without tp): */
void model_sum_rows(model *m, act_t *local, act_t *partial, int N_local, int C);
void model_gather_rows(model *m, act_t *full, const act_t *local, int N_local, int C);
/* The model's norm (LayerNorm or RMSNorm, which ignores mean and bias) over
 * d_model; the backward accumulates, and under sequence sharding sums the
 * weight and bias gradients over tp. */
void model_norm_forward(const model *m, act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp, const act_t *weight,
                        const act_t *bias, int N_local);
void model_norm_backward(model *m, act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                         const act_t *inp, const act_t *weight, const f32_t *mean, const f32_t *rstd,
                         int N_local);
/* Block j (local index) on activations a, from res_in. */
void block_forward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T);
/* On entry m->d_resid holds dL/d(block output) for this rank's rows; on exit
 * dL/d(block input). Recomputes what the recompute mode did not keep. */
void block_backward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T);

#endif

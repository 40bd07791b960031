/* model_internal — what the model's files share; not for the rest of
 * tessera (model.h is the model's interface).
 *
 * Row conventions: N = B·T rows per micro-batch, T this rank's tokens per
 * sequence; with sequence sharding a tp rank holds N_local = N/t rows of
 * the residual stream and the norms, and every row of the tensors between a
 * column- and a row-parallel product. */
#ifndef TESSERA_MODEL_INTERNAL_H
#define TESSERA_MODEL_INTERNAL_H

#include "model.h"

/* One block's tensors, in block_param_names order (NULL where the model
 * has no such tensor). */
struct block_params {
  act_t *ln1_w, *ln1_b, *wqkv, *bqkv, *wo, *bo, *ln2_w, *ln2_b, *w1, *b1, *w2, *b2;
};

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

/* ---- weights.c ---- */
void weights_create(model *m, buffer_sizer *sizer, bool windowed_grads, bool windowed_params);
void weights_free(model *m);
/* An embedding or final-norm tensor in the weights or the gradients; NULL
 * when this stage, or this model, has no such tensor (wpe without learned
 * positions, lnf.bias without LayerNorm). */
act_t *outer_param_at(const model *m, const char *name);
act_t *outer_grad_at(const model *m, const char *name);

/* ---- activations.c ---- */
/* The slots, the scratch and the workspace, in one arena per element type. */
void activations_create(model *m, buffer_sizer *sizer, int n_slots, int head_chunk_rows);
void activations_free(model *m);

/* ---- tensor_parallel.c ---- */
int model_local_rows(const model *m, int N);
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

/* ---- block.c ---- */
/* Elements of the softmax and linear attention's saved state per block, for
 * B sequences of T_local tokens on this rank. */
size_t model_softmax_saved_elems(const model *m, int B, int T_local);
size_t model_linear_state_elems(const model *m, int B);
/* Block j (local index) on activations a, from res_in. */
void block_forward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T);
/* On entry ws.d_resid holds dL/d(block output) for this rank's rows; on exit
 * dL/d(block input). Recomputes what the recompute mode did not keep. */
void block_backward(model *m, int j, block_acts *a, const act_t *res_in, int B, int T);

/* ---- embedding_head.c ---- */
/* Vocabulary-parallel lookup of this rank's rows into the slot's input. */
void embedding_forward(model *m, model_slot *s, const int32_t *inputs, int B, int T_local);
/* From ws.d_resid, dL/d(the embedding's output) of this rank's rows. */
void embedding_backward(model *m, model_slot *s, int B, int T_local);
/* Final norm, output head, loss (and for PASS_TRAIN the head's backward into
 * d_x) from x, this rank's rows of the last block's output. */
double head_forward(model *m, const act_t *x, act_t *d_x, const int32_t *targets, int B, int T_local,
                    float dloss_scale, model_pass pass);

/* ---- model.c ---- */
/* This rank's pieces of sequences of T tokens and the position of every
 * row, for micro-batches of B sequences (uploaded once per shape). */
void model_set_sequence_layout(model *m, int B, int T);

#endif

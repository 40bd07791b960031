/* param_layout — which parameters a pipeline stage holds and where each
 * lives in its flat buffer (DESIGN.md principle 1).
 *
 * Logical parameter shapes (tp splits noted; io/registry.h keeps them):
 *   wte [V, C] (split 0)             wpe [T_max, C] (learned positions)
 *   layers.i.ln1.{weight,bias} [C]   layers.i.attn.wqkv [3, NH, HS, C] (split 1)
 *   layers.i.attn.bqkv [3, NH, HS] (split 1)
 *   layers.i.attn.wo [C, NH, HS] (split 1)   layers.i.attn.bo [C]
 *   layers.i.ln2.{weight,bias} [C]   layers.i.mlp.w1 [F, C] (split 0) — SwiGLU: [2, F, C] (split 1)
 *   layers.i.mlp.b1 [F] (split 0)    layers.i.mlp.w2 [C, F] (split 1)
 *   layers.i.mlp.b2 [C]              lnf.{weight,bias} [C]
 *   lm_head [V, C] (split 0; only with an untied head)
 * Biases are left out without `bias`, norm biases under RMSNorm. The flat
 * order is block by block, embeddings first and final norm (then lm_head)
 * last, so one
 * block's parameters are one contiguous range of block_elems elements
 * (every block of a model has the same tensors), which is what gradient
 * buckets, ZeRO windows and pipeline stages cut along.
 *
 * Pipeline stages (issue 7): a stage holds V local chunks of consecutive
 * layers (model_stage; chunk c of stage s is global chunk c·p + s,
 * Megatron's interleaved placement). The first stage's chunk 0 begins with
 * the embedding; the last stage's last chunk ends with the final norm and
 * the head. A stage registers only what it holds: wte on the first stage
 * and, when the head is tied, on the last (the head's copy), wpe, its
 * blocks, lnf and an untied head's lm_head. "Outer" tensors are the
 * embeddings and everything after the last block (lnf, lm_head).
 */
#ifndef TESSERA_PARAM_LAYOUT_H
#define TESSERA_PARAM_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model_shape.h"
#include "registry.h"

#define MODEL_MAX_CHUNKS 64

/* The layers one pipeline stage holds. */
typedef struct model_stage {
  int n_chunks;                              /* local chunks V */
  int chunk_first_layer[MODEL_MAX_CHUNKS];   /* global index of local chunk c's first layer */
  int chunk_n_layers[MODEL_MAX_CHUNKS];      /* layers in local chunk c (>= 1) */
  bool has_embedding;                        /* local chunk 0 begins with the embedding */
  bool has_head;                             /* the last local chunk ends with the head and loss */
} model_stage;

/* The whole model on one stage (no pipeline). */
model_stage model_stage_whole(int n_layer);

/* Adds the parameters a stage holds (all of them for stage NULL), in their
 * flat order, to reg (whose tp rank and size decide the shards). */
void model_register(registry *reg, const model_shape *shape, const model_stage *stage);

/* Parameter count of the logical model (what a checkpoint holds). */
int64_t model_n_params(const model_shape *shape);

/* A block's tensors, in the order of block_param_names (block j's
 * "layers.<layer>.<name>"); a model without biases lacks some. */
#define BLOCK_N_PARAMS 12
extern const char *const block_param_names[BLOCK_N_PARAMS];

typedef struct param_layout {
  registry reg;          /* what this stage holds, this rank's tp shards, flat order */
  model_stage stage;
  int n_layers;          /* local blocks, over all chunks */
  int *layer_ids;        /* global layer of local block j */
  int chunk_start[MODEL_MAX_CHUNKS]; /* local block index of chunk c's first layer */
  int max_chunk_layers;
  bool any_linear, any_softmax; /* attention kinds among this stage's layers */
  size_t block_start0, block_elems; /* flat range of local block 0, elements per block */
  size_t outer_elems;    /* embeddings + final norm (and lm_head) */
} param_layout;

/* Fails (internal error) on a stage without layers or with too many chunks. */
void param_layout_create(param_layout *pl, const model_shape *shape, const model_stage *stage, int tp_rank,
                         int tp_size);
void param_layout_free(param_layout *pl);

/* Flat offset of local block j's first element. */
size_t param_layout_block_start(const param_layout *pl, int j);
/* The outer tensors' flat ranges: the embeddings [0, embeddings_end) and
 * the final norm, then an untied head's lm_head [final_norm_start, n). */
void param_layout_outer_ranges(const param_layout *pl, size_t *embeddings_end, size_t *final_norm_start);
/* Where an outer tensor (embedding, final norm, lm_head) starts in a
 * buffer: its flat offset, or (windowed) in a buffer of the outer tensors
 * only, the embeddings at their flat offsets and the rest right after them. */
size_t param_layout_outer_offset(const param_layout *pl, const char *name, bool windowed);

/* The registry of the whole model (every stage's parameters) with the
 * same tp shards, in flat order. */
void param_layout_whole_registry(const param_layout *pl, const model_shape *shape, registry *whole);

#endif

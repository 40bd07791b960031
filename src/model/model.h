/* model — a GPT-2 language model as explicit forward and backward passes.
 *
 * Architecture (GPT-2): token + learned position embeddings; n_layer pre-norm
 * blocks, each  x += attn(LN1(x));  x += mlp(LN2(x))  with causal multi-head
 * softmax attention (fused QKV) and a 4·d_model GELU MLP; a final LayerNorm;
 * the output head tied to the token embedding. There is no autograd: each
 * block's forward saves what its backward needs in an activation arena, in
 * the style of llm.c. Parameter gradients accumulate (+=) into one flat
 * buffer, so micro-batches of a step add up until the optimizer consumes and
 * zeroes them.
 *
 * Logical parameter shapes (DESIGN.md principle 1; tp splits noted):
 *   wte [V, C] (split 0)             wpe [T_max, C]
 *   layers.i.ln1.{weight,bias} [C]   layers.i.attn.wqkv [3, NH, HS, C] (split 1)
 *   layers.i.attn.bqkv [3, NH, HS] (split 1)
 *   layers.i.attn.wo [C, NH, HS] (split 1)   layers.i.attn.bo [C]
 *   layers.i.ln2.{weight,bias} [C]   layers.i.mlp.w1 [4C, C] (split 0)
 *   layers.i.mlp.b1 [4C] (split 0)   layers.i.mlp.w2 [C, 4C] (split 1)
 *   layers.i.mlp.b2 [C]              lnf.{weight,bias} [C]
 * Parameters are laid out block by block (embeddings first, final norm last)
 * so that one block's parameters are one contiguous range.
 *
 * Pipeline stages (issue 7). A model object holds one pipeline stage: V local
 * chunks of consecutive layers (model_stage; chunk c of stage s is global
 * chunk c·p + s, Megatron's interleaved placement). The first stage's chunk
 * 0 begins with the embedding; the last stage's last chunk ends with the
 * final norm, the tied head and the loss. A stage registers only what it
 * holds: wte (first and last stage — the tied copy; its gradient is summed
 * between the two, model_sum_tied_grads), wpe, its blocks, lnf. A chunk's
 * forward and backward run on a *slot*: the activations of one micro-batch
 * in flight through one chunk (a pipeline schedule holds several). The head
 * computes the loss and its own backward already in the forward, so a slot
 * keeps the gradient entering the chunk's last block (d_output) instead of
 * the vocabulary-sized logits (Megatron-LM does the same).
 *
 * Activation recomputation: `none` keeps every block activation in the slot;
 * `selective` keeps all but the attention core's (the probabilities or
 * log-sum-exp rows and the attention output), recomputed from the saved QKV
 * in the backward (Korthikanti et al.); `full` keeps only each block's
 * output and recomputes the whole block's forward before its backward. What
 * is not kept lives once, in shared scratch.
 *
 * Tensor parallelism (Megatron-LM): with a tp group of t ranks each rank holds
 * NH/t heads of the fused QKV (column-parallel) and the matching input
 * columns of the attention projection (row-parallel), 4C/t rows of the first
 * MLP matrix and columns of the second, and V/t rows (padded) of the token
 * embedding. Forward: one all-reduce after each row-parallel projection and
 * one after the vocabulary-parallel embedding; backward: one all-reduce of
 * the gradient entering each column-parallel block. The cross-entropy is
 * vocabulary-parallel (kernels/backend.h): the full logits never exist.
 *
 * With seq_shard (Megatron-LM's sequence parallelism, `--tp-seq-shard`) the
 * residual stream and the norms live sharded along the tokens: tp rank r
 * holds rows [r·N/t, (r+1)·N/t) of the N = B·T rows. Each all-reduce becomes
 * an all-gather entering a column-parallel block and a reduce-scatter leaving
 * a row-parallel one; norm parameters, whose gradients now come from a
 * rank's own rows, sum theirs over tp.
 */
#ifndef TESSERA_MODEL_H
#define TESSERA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "profile.h"
#include "comm.h"
#include "registry.h"
#include "sp_attention.h"
#include "sp_layout.h"

typedef enum norm_kind { NORM_LAYERNORM, NORM_RMSNORM } norm_kind;
typedef enum mlp_kind { MLP_GELU, MLP_SWIGLU } mlp_kind;
typedef enum position_kind { POSITION_LEARNED, POSITION_ROPE, POSITION_NONE } position_kind;

#define MODEL_PATTERN_BYTES 64

/* The logical model: sizes and the choices that change its function (a
 * checkpoint records all of them; doc/checkpoint-format.md). A zeroed
 * struct with the five sizes set is GPT-2 (model_shape_gpt2). */
typedef struct model_shape {
  int n_layer, n_head, d_model, vocab_size, seq_len;
  int ffn_hidden;          /* MLP hidden width F (0: 4·d_model for GELU, model_default_ffn for SwiGLU) */
  norm_kind norm;
  mlp_kind mlp;
  position_kind position;
  bool no_bias;            /* drop every bias (Llama); GPT-2 has them */
  /* attention of layer l: pattern[l mod strlen] is 'S' (softmax) or 'L'
   * (linear with decay); "" means all softmax */
  char layer_pattern[MODEL_PATTERN_BYTES];
  double decay_base;       /* linear attention: λ_h = exp(−2^(−base·(h+1)/n_head)); 0: no decay */
  double rope_theta;       /* RoPE base (0: 10000) */
  int linear_chunk;        /* chunk size of the chunkwise linear attention (0: 64); compute only */
} model_shape;

/* GPT-2 of the given sizes. */
model_shape model_shape_gpt2(int n_layer, int n_head, int d_model, int vocab_size, int seq_len);
/* Whether layer l is linear attention. */
bool model_layer_is_linear(const model_shape *shape, int l);
/* The MLP hidden width F in effect. */
int model_ffn_hidden(const model_shape *shape);

typedef enum recompute_kind { RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL } recompute_kind;

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

/* Called during the backward pass each time the gradients of every parameter
 * at flat offset >= `offset` are final for this micro-batch, so gradient
 * communication can start while the backward goes on (flat gradients). */
typedef void (*grads_ready_fn)(void *context, size_t offset);

/* Windowed gradients (ZeRO-2): a block's gradients live in one of two
 * block-sized windows only while its backward runs. `block_done` hands the
 * window over (the block's flat range [start, start + n_elems)); before the
 * window is written again `window_reuse` must have finished with it. The
 * embeddings' and final norm's gradients stay in a small persistent buffer
 * (model_outer_grads). */
typedef struct grad_window_hooks {
  void *context;
  void (*block_done)(void *context, int window, const act_t *grads, size_t start, size_t n_elems);
  void (*window_reuse)(void *context, int window);
} grad_window_hooks;

/* Windowed parameters (ZeRO-3): a block's weights are in one of two windows
 * only when needed. Before block `layer` (local index) is used `need_block`
 * must fill `window_buf` with the flat range [start, start + n_elems) (or
 * find it there already); `next_layer` is the block used after it (−1:
 * none), which the hook may start fetching into the other window. */
typedef struct param_window_hooks {
  void *context;
  void (*need_block)(void *context, int layer, int window, act_t *window_buf, size_t start,
                     size_t n_elems, int next_layer);
} param_window_hooks;

typedef struct model_options {
  comm *tp;             /* tensor-parallel group, or NULL */
  bool seq_shard;       /* --tp-seq-shard */
  bool windowed_grads;  /* ZeRO-2: no full gradient buffer */
  bool windowed_params; /* ZeRO-3: no full weights either (implies windowed_grads) */
  const model_stage *stage; /* NULL: the whole model */
  comm *pp;             /* pipeline group (the tied embedding), or NULL */
  int n_slots;          /* micro-batches in flight at once (0 means 1) */
  recompute_kind recompute;
  comm *sp;             /* sequence-parallel group, or NULL */
  sp_kind sp_algorithm; /* how attention crosses it: ring or all-gather */
  int head_chunk_rows;  /* rows of logits at a time at the head (0: all) */
} model_options;

typedef struct block_params block_params;
typedef struct block_acts block_acts;
typedef struct model_slot model_slot;

/* What a chunk's forward computes at the head (the last chunk of the last
 * stage): the loss and its backward (training), the loss only, or only
 * the final norm, from which model_copy_last_logits computes the one row of
 * logits generation needs. */
typedef enum model_pass { PASS_TRAIN, PASS_LOSS, PASS_LOGITS } model_pass;

typedef struct model {
  const backend *be;
  model_shape shape;
  registry reg;        /* what this stage holds */
  model_stage stage;
  int n_local_layers;  /* over all local chunks */
  int *layer_ids;      /* global layer of local block j */
  int chunk_start[MODEL_MAX_CHUNKS]; /* local block index of chunk c's first layer */
  comm *tp;            /* tensor-parallel group, or NULL for one rank */
  int tp_size;
  comm *pp;            /* pipeline group, or NULL for one stage */
  bool tied_copy;      /* holds wte for the head only; the first stage holds it too */
  int C_local, NH_local; /* this rank's share of d_model and heads */
  int ffn_local;         /* this rank's share of the MLP hidden width F */
  int mlp_in_local;      /* width of the first MLP product: F/tp (GELU) or 2F/tp (SwiGLU gate|up) */
  bool any_linear, any_softmax; /* attention kinds among this stage's layers */
  f32_t *decay;          /* linear attention: λ of this rank's heads, or NULL (no decay) */
  comm *sp;              /* sequence-parallel group, or NULL for one rank */
  int sp_size;
  sp_placement placement; /* contiguous, or zig-zag (ring attention over softmax layers) */
  sp_attention spa;      /* its workspaces */
  sp_layout layout;      /* this rank's pieces for the current sequence length */
  int V_local;         /* vocabulary rows held here (padded: the logits' row stride) */
  int V_valid;         /* of those, real vocabulary entries */
  int vocab_start;     /* first vocabulary id held here */
  int head_rows;       /* rows whose logits exist at once (the head works in chunks of them) */
  bool seq_shard;      /* norm regions sharded along the tokens over tp */
  recompute_kind recompute;
  act_t *params; /* compute weights, flat, registry order */
  act_t *grads;  /* same layout; with windowed gradients only the embeddings and
                  * final norm live here (model_outer_grads) */
  bool windowed_grads;
  act_t *grad_windows[2];
  size_t block_start0, block_elems; /* flat range of local block 0, elements per block */
  size_t outer_elems;               /* embeddings + final norm */
  const grad_window_hooks *window_hooks;
  bool windowed_params;
  act_t *param_windows[2];
  const param_window_hooks *param_hooks;
  int max_B, max_T;
  size_t activation_bytes;      /* every arena, for the memory report */
  size_t slot_activation_bytes; /* of that, one slot */
  /* internal: pointers into params, grads and the arena */
  block_params *blocks, *block_grads; /* per local block */
  int n_slots, max_chunk_layers;
  model_slot *slots;
  block_acts *scratch_acts; /* what recomputation does not keep, shared by the slots */
  void *arena[2];
  act_t *lnf, *logits, *d_resid, *d_btc, *d_qkv, *d_atty, *d_bt4c;
  act_t *d_full, *d_ln, *ln_grad_scratch; /* sequence sharding: gathered / local / 2C */
  act_t *d_ffn_act, *d_att_raw;           /* SwiGLU's activation gradient; linear attention's pre-norm one */
  f32_t *lnf_mean, *lnf_rstd, *losses, *ce_max, *ce_stats;
  ids_t *targets;
  ids_t *positions;            /* position id of each row, for the embedding */
  int positions_B, positions_T; /* the micro-batch shape `positions` was filled for */
  float *host_losses;
  act_t *tied_peer_grad; /* the other end's wte gradient (pipelines: first and last stage), or NULL */
  profile *profile;      /* per-region timing (--profile), or NULL; set by the caller */
  bool recomputing;      /* inside a backward's recomputation: its time is backward time */
} model;

/* The head's chunk of `rows` rows: `asked` (at most all), or all when 0. */
int model_head_chunk_rows(int rows, int asked);

/* Builds the registry and allocates parameters, gradients and activation
 * arenas for micro-batches of up to max_B sequences of up to max_T tokens.
 * options may be NULL (one rank holds the whole model, flat gradients, one
 * slot); seq_shard needs tp to divide max_T. */
void model_create(model *m, const backend *be, model_shape shape, int max_B, int max_T,
                  const model_options *options);

/* Sets the weights from a host copy of the whole flat buffer (with windowed
 * parameters, only the embeddings and final norm are kept). */
void model_load_params(model *m, const float *host);

/* Adds the parameters a stage holds (all of them for stage NULL), in their
 * flat order, to reg (whose tp rank and size decide the shards). */
void model_register(registry *reg, const model_shape *shape, const model_stage *stage);

/* The registry of the whole model (every stage's parameters) with this
 * rank's tp shards, in flat order; and, collectively over the pp group, the
 * pipeline stage that owns each of its parameters (the first stage for the
 * tied embedding). owner has whole->n_params entries. */
void model_whole_registry(const model *m, registry *whole);
void model_owner_stages(const model *m, const registry *whole, int *owner);

/* Zeroes every gradient the model keeps between micro-batches. */
void model_zero_grads(model *m);

/* Windowed gradients: the flat ranges the persistent buffer holds — the
 * embeddings [0, first) and the final norm [last, n) — and the buffer
 * (embeddings first, then the final norm). */
void model_outer_ranges(const model *m, size_t *embeddings_end, size_t *final_norm_start);
void model_free(model *m);

/* Parameter count of the logical model (what a checkpoint would hold). */
int64_t model_n_params(const model *m);

/* ---- one chunk on one slot (the pipeline runtime's calls) ----
 * Rows held per micro-batch: model_boundary_elems() = (B·T/t with sequence
 * sharding, else B·T) × C activations cross a stage boundary. */
size_t model_boundary_elems(const model *m, int B, int T);
/* Where the activation entering a chunk goes (a chunk that does not begin
 * with the embedding receives it here before its forward). */
act_t *model_slot_input(model *m, int slot);
/* The chunk's output after its forward (sent to the next chunk). */
const act_t *model_slot_output(const model *m, int slot, int chunk);
/* Where the gradient of the chunk's output goes before its backward
 * (received from the next chunk; the head chunk fills it itself). */
act_t *model_slot_output_grad(model *m, int slot);
/* After a chunk's backward: the gradient of its input (sent to the chunk
 * before). Valid until the next backward. */
const act_t *model_input_grad(const model *m);

/* Forward of local chunk `chunk` for one micro-batch on `slot`. The first
 * chunk of the first stage reads inputs (B×T host ids); the head chunk
 * reads targets and, for PASS_TRAIN, scales the loss gradient by dloss_scale
 * and leaves dL/d(its last block's output) in the slot. Returns the sum of
 * the B·T token losses at the head (0 elsewhere, and for PASS_LOGITS). */
double model_chunk_forward(model *m, int slot, int chunk, const int32_t *inputs,
                           const int32_t *targets, int B, int T, float dloss_scale, model_pass pass);
/* Backward of the same; gradients accumulate into m->grads. `ready` (may be
 * NULL) is told as each block's gradients become final; the embedding's are
 * final when the first chunk's backward returns. */
void model_chunk_backward(model *m, int slot, int chunk, int B, int T, grads_ready_fn ready,
                          void *ready_context);
/* The tied embedding: the first and last stage add their wte gradients
 * (collective over the pp group's ends; nothing with one stage). */
void model_sum_tied_grads(model *m);
/* After a PASS_LOGITS forward at the head over B sequences: the logits of
 * position t of sequence 0 (computed here), gathered over the tp group and handed from the
 * sp rank that holds that position to the others (vocab_size floats). */
void model_copy_last_logits(model *m, int B, int t, float *host_logits);

/* ---- sequence parallelism: which tokens this rank computes ----
 * Model calls take T, the whole sequence length, and this rank's
 * B·model_local_tokens(T) token ids in its row order (parallel/sp_layout.h);
 * model_take_local picks them from B whole sequences. A sequence length
 * must be a multiple of model_sequence_quantum (the sp chunks, each
 * divisible by tp under sequence sharding); model_padded_length rounds up. */
int model_local_tokens(const model *m, int T);
void model_take_local(model *m, int B, int T, const int32_t *full, int32_t *local);
int model_sequence_quantum(const model *m);
int model_padded_length(const model *m, int T);

/* ---- the whole model on one stage ---- */

/* Training pass over one micro-batch: forward, loss and backward.
 * inputs/targets are B×T host token ids. Gradients of the loss
 * dloss_scale · Σ_tokens(-log p) accumulate into m->grads. Returns the sum of
 * the B·T token losses (not the mean). `ready` may be NULL. */
double model_forward_backward(model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                              float dloss_scale, grads_ready_fn ready, void *ready_context);

/* Forward only: returns the sum of token losses. */
double model_forward_loss(model *m, const int32_t *inputs, const int32_t *targets, int B, int T);

/* Forward only, for generation: the logits of position T-1 of sequence 0 are
 * copied to host (vocab_size floats; gathered over the tp group, whose ranks
 * must all call this together). */
void model_forward_last_logits(model *m, const int32_t *inputs, int T, float *host_logits);

/* Model FLOPs per token for one forward+backward: three times the forward
 * (GPT-2: 6N + 6·L·T·C, the matmuls over parameters plus causal attention's
 * QKᵀ and PV, as in the PaLM appendix with the causal half; linear layers
 * count their chunk and state products instead). */
double model_flops_per_token(const model_shape *shape, int T);

/* Forward FLOPs per token of block l and of the head with its loss, for
 * balancing pipeline stages. */
double model_block_flops(const model_shape *shape, int l, int T);
double model_head_flops(const model_shape *shape);

#endif

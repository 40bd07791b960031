/* model — a decoder-only language model as explicit forward and backward
 * passes (DESIGN.md principle 3), one pipeline stage of it on this rank.
 *
 * Architecture: token (+ learned position) embeddings; n_layer pre-norm
 * blocks, each  x += attn(norm1(x));  x += mlp(norm2(x)),  the attention
 * softmax or linear per layer, the MLP GELU or SwiGLU, the norm LayerNorm
 * or RMSNorm (model_shape.h); a final norm; the output head tied to the
 * token embedding (GPT-2) or its own matrix lm_head (untied_head). No autograd: each block's forward saves what its
 * backward needs in a per-micro-batch activation slot, in the style of
 * llm.c. Parameter gradients accumulate (+=) into one flat buffer, so the
 * micro-batches of a step add up until the optimizer consumes them.
 *
 * The parts, one file each:
 *   model_shape     the logical model and its FLOPs
 *   param_layout    which parameters this stage holds, where in the flat buffer
 *   weights         the weight and gradient buffers (and ZeRO's windows)
 *   activations     the slots, the recomputation scratch, the backward's and the head's buffers
 *   tensor_parallel Megatron's f and g over tp; the norms under sequence sharding
 *   block           one transformer block, forward and backward
 *   embedding_head  the embedding, the final norm, the head and the loss
 *   chunk           a chunk of consecutive blocks on a slot: what the pipeline runs
 *   model           creating and freeing; the sequence layout; the whole model on one stage
 *
 * A chunk's forward and backward run on a *slot*: the activations of one
 * micro-batch in flight through one chunk (a pipeline schedule holds
 * several). The head computes the loss and its own backward already in the
 * forward, so a slot keeps the gradient entering the chunk's last block
 * (d_output) instead of the vocabulary-sized logits (Megatron-LM does the
 * same).
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
 * columns of the attention projection (row-parallel), F/t rows of the first
 * MLP matrix and columns of the second, and V/t rows (padded) of the token
 * embedding. Forward: one all-reduce after each row-parallel projection and
 * one after the vocabulary-parallel embedding; backward: one all-reduce of
 * the gradient entering each column-parallel block. The cross-entropy is
 * vocabulary-parallel (kernels/backend.h): the full logits never exist.
 * With seq_shard (Megatron-LM's sequence parallelism, `--tp-seq-shard`) the
 * residual stream and the norms live sharded along the tokens: tp rank r
 * holds rows [r·N/t, (r+1)·N/t) of the N = B·T rows; each all-reduce becomes
 * an all-gather entering a column-parallel block and a reduce-scatter leaving
 * a row-parallel one.
 *
 * Sequence parallelism: each sp rank holds pieces of every sequence
 * (parallel/sequence/sp_layout.h) and the attention core crosses the group
 * (sp_attention.h); every other op is per token.
 *
 * Data parallelism and ZeRO are not the model's: it calls parallel/zero
 * (m->zero, when set) before a block runs and after its backward, and
 * otherwise leaves its gradients as they are.
 */
#ifndef TESSERA_MODEL_H
#define TESSERA_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "comm.h"
#include "model_shape.h"
#include "param_layout.h"
#include "profile.h"
#include "registry.h"
#include "sp_attention.h"
#include "sp_layout.h"
#include "zero.h"

typedef enum recompute_kind { RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL } recompute_kind;

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
  sp_kind sp_algorithm; /* how attention crosses it: ring, all-gather, Ulysses all-to-all or TokenRing */
  int head_chunk_rows;  /* rows of logits at a time at the head (0: all) */
} model_options;

/* This rank's part of the model: the groups it shares the model with and
 * the sizes of its shards. */
typedef struct model_parallel {
  comm *tp;               /* tensor-parallel group, or NULL for one rank */
  int tp_size;
  bool seq_shard;         /* norm regions sharded along the tokens over tp */
  comm *pp;               /* pipeline group, or NULL for one stage */
  bool tied_copy;         /* holds wte for the tied head only; the first stage holds it too */
  comm *sp;               /* sequence-parallel group, or NULL for one rank */
  int sp_size;
  sp_placement placement; /* contiguous, or zig-zag (ring attention over softmax layers) */
  sp_attention spa;       /* its workspaces */
  sp_layout seq;          /* this rank's pieces for the current sequence length */
  int C_local, NH_local;  /* this rank's share of d_model and heads */
  int ffn_local;          /* this rank's share of the MLP hidden width F */
  int mlp_in_local;       /* width of the first MLP product: F/tp (GELU) or 2F/tp (SwiGLU gate|up) */
  int V_local;            /* vocabulary rows held here (padded: the logits' row stride) */
  int V_valid;            /* of those, real vocabulary entries */
  int vocab_start;        /* first vocabulary id held here */
} model_parallel;

typedef struct block_params block_params;
typedef struct block_acts block_acts;
typedef struct model_slot model_slot;

/* The weights and gradients (weights.c): flat buffers in registry order,
 * or under ZeRO only the embeddings and final norm with the blocks in two
 * windows each (block j in window j mod 2). */
typedef struct model_weights {
  act_t *params;        /* compute weights */
  act_t *grads;         /* their gradients */
  bool windowed_params, windowed_grads;
  act_t *param_windows[2], *grad_windows[2];
  block_params *blocks, *block_grads; /* block j's tensors, wherever they are */
  f32_t *decay;         /* linear attention: λ of this rank's heads, or NULL (no decay) */
} model_weights;

/* The activation slots and what recomputation shares (activations.c). */
typedef struct model_activations {
  int max_B, max_T;             /* the largest micro-batch */
  int n_slots;
  model_slot *slots;
  block_acts *scratch;          /* what recomputation does not keep, shared by the slots */
  void *arena[2];               /* act_t and f32_t storage of everything below */
  size_t activation_bytes;      /* every arena, for the memory report */
  size_t slot_activation_bytes; /* of that, one slot */
} model_activations;

/* Buffers of one block's backward and of the head, reused by every block
 * and micro-batch (activations.c; the forward borrows some as scratch). */
typedef struct model_workspace {
  act_t *d_resid, *d_btc, *d_qkv, *d_atty, *d_bt4c;
  act_t *d_full, *d_ln, *ln_grad_scratch; /* sequence sharding: gathered / local / 2C */
  act_t *d_ffn_act, *d_att_raw;           /* SwiGLU's activation gradient; linear attention's pre-norm one */
  act_t *lnf, *logits;                    /* the head: final norm output, one chunk of logits */
  f32_t *lnf_mean, *lnf_rstd, *losses, *ce_max, *ce_stats;
  int head_rows;                          /* rows whose logits exist at once */
  ids_t *targets;
  ids_t *positions;             /* position id of each row, for the embedding and RoPE */
  int positions_B, positions_T; /* the micro-batch shape `positions` was filled for */
  float *host_losses;           /* the head's loss of each row of the last forward */
} model_workspace;

/* What a chunk's forward computes at the head (the last chunk of the last
 * stage): the loss and its backward (training), the loss only, or only
 * the final norm, from which model_copy_last_logits computes the one row of
 * logits generation needs. */
typedef enum model_pass { PASS_TRAIN, PASS_LOSS, PASS_LOGITS } model_pass;

typedef struct model {
  const backend *be;
  model_shape shape;
  model_parallel par;       /* groups and this rank's shares */
  param_layout layout;      /* the stage's parameters in the flat buffer */
  model_weights w;
  model_activations acts;
  model_workspace ws;
  recompute_kind recompute;
  bool recomputing;         /* inside a backward's recomputation: its time is backward time */
  zero *zero;               /* data-parallel sync (parallel/zero), or NULL: gradients stay local */
  profile *profile;         /* per-region timing (--profile), or NULL; the caller's */
} model;

/* Builds the layout and allocates weights, gradients and activation
 * arenas for micro-batches of up to max_B sequences of up to max_T tokens.
 * options may be NULL (one rank holds the whole model, flat gradients, one
 * slot); seq_shard needs tp to divide max_T. */
void model_create(model *m, const backend *be, model_shape shape, int max_B, int max_T,
                  const model_options *options);
void model_free(model *m);

/* Sets the weights from a host copy of the whole flat buffer (with windowed
 * parameters, only the embeddings and final norm are kept). */
void model_load_params(model *m, const float *host);
/* Zeroes every gradient the model keeps between micro-batches. */
void model_zero_grads(model *m);

/* The stage's flat buffer as parallel/zero needs it (with the tied
 * embedding's range and peer when the pipeline shares it: a tied head on
 * more than one stage). */
flat_layout model_flat_layout(const model *m);

/* The registry of the whole model (every stage's parameters) with this
 * rank's tp shards, in flat order; and, collectively over the pp group, the
 * pipeline stage that owns each of its parameters (the first stage for the
 * tied embedding). owner has whole->n_params entries. */
void model_whole_registry(const model *m, registry *whole);
void model_owner_stages(const model *m, const registry *whole, int *owner);

/* ---- one chunk on one slot (the pipeline runtime's calls; chunk.c) ----
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
/* Backward of the same; gradients accumulate into the model's buffers.
 * `final`: the step's last backward through this chunk, after which its
 * gradients are complete (m->zero may start reducing them). */
void model_chunk_backward(model *m, int slot, int chunk, int B, int T, bool final);
/* After a PASS_LOGITS forward at the head over B sequences: the logits of
 * position t of sequence 0 (computed here), gathered over the tp group and handed from the
 * sp rank that holds that position to the others (vocab_size floats). */
void model_copy_last_logits(model *m, int B, int t, float *host_logits);

/* After a PASS_LOSS forward at the head over B sequences of T tokens: the
 * loss of every position, losses[b·T + t] = −log p(target of position t of
 * sequence b), on every rank of the stage (collective over the sp group;
 * each tp rank holds them already). Training's numbers are unchanged: they
 * are the values the loss sum adds up. */
void model_copy_token_losses(model *m, int B, int T, float *losses);

/* The head's chunk of `rows` rows: `asked` (at most all), or all when 0. */
int model_head_chunk_rows(int rows, int asked);

/* ---- sequence parallelism: which tokens this rank computes ----
 * Model calls take T, the whole sequence length, and this rank's
 * B·model_local_tokens(T) token ids in its row order (parallel/sequence/sp_layout.h);
 * model_take_local picks them from B whole sequences. A sequence length
 * must be a multiple of model_sequence_quantum (the sp chunks, each
 * divisible by tp under sequence sharding); model_padded_length rounds up. */
int model_local_tokens(const model *m, int T);
void model_take_local(model *m, int B, int T, const int32_t *full, int32_t *local);
int model_sequence_quantum(const model *m);
int model_padded_length(const model *m, int T);
/* A prompt of T tokens as this rank's rows of one sequence padded to
 * *T_run = model_padded_length(T) (allocated; the caller frees it). */
int32_t *model_prompt_rows(model *m, const int32_t *tokens, int T, int *T_run);

/* ---- the whole model on one stage ---- */

/* Training pass over one micro-batch: forward, loss and backward.
 * inputs/targets are B×T host token ids. Gradients of the loss
 * dloss_scale · Σ_tokens(-log p) accumulate into the gradient buffer (with
 * m->zero set, the caller finishes the reduction: zero_finish_gradients).
 * Returns the sum of the B·T token losses. */
double model_forward_backward(model *m, const int32_t *inputs, const int32_t *targets, int B, int T,
                              float dloss_scale);

/* Forward only: returns the sum of token losses. */
double model_forward_loss(model *m, const int32_t *inputs, const int32_t *targets, int B, int T);

/* Forward only, for generation: the logits of position T-1 of sequence 0 are
 * copied to host (vocab_size floats; gathered over the tp group, whose ranks
 * must all call this together). */
void model_forward_last_logits(model *m, const int32_t *inputs, int T, float *host_logits);

#endif

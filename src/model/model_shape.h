/* model_shape — the logical model: its sizes and the choices that change
 * its function, independent of any layout. A checkpoint records all of them
 * (doc/checkpoint-format.md); the configuration derives one
 * (config_model_shape), once per run, and every part of tessera that needs
 * the model's shape is handed that one.
 *
 * Also here: what follows from a shape alone — the MLP width in effect, the
 * attention kind of each layer, the names of the choices as checkpoints and
 * reports spell them, the FLOPs that MFU and pipeline balancing count.
 */
#ifndef TESSERA_MODEL_SHAPE_H
#define TESSERA_MODEL_SHAPE_H

#include <stdbool.h>
#include <stddef.h>

typedef enum norm_kind { NORM_LAYERNORM, NORM_RMSNORM } norm_kind;
typedef enum mlp_kind { MLP_GELU, MLP_SWIGLU } mlp_kind;
typedef enum position_kind { POSITION_LEARNED, POSITION_ROPE, POSITION_NONE } position_kind;

#define MODEL_PATTERN_BYTES 64

/* A zeroed struct with the five sizes set is GPT-2 (model_shape_gpt2). */
typedef struct model_shape {
  int n_layer, n_head, d_model, vocab_size, seq_len;
  int ffn_hidden;          /* MLP hidden width F (0: 4·d_model for GELU, the SwiGLU default otherwise) */
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
  /* the output head: false, the token embedding wte (GPT-2's tie); true,
   * its own matrix lm_head [vocab_size, d_model] (Llama) */
  bool untied_head;
  double norm_eps;         /* ε of the blocks' and final norm (0: 1e-5) */
} model_shape;

/* GPT-2 of the given sizes. */
model_shape model_shape_gpt2(int n_layer, int n_head, int d_model, int vocab_size, int seq_len);

/* ---- what follows from the shape ---- */
bool model_layer_is_linear(const model_shape *shape, int l);
bool model_has_linear(const model_shape *shape);  /* some layer is linear attention */
bool model_has_softmax(const model_shape *shape); /* some layer is softmax attention */
int model_ffn_hidden(const model_shape *shape);   /* the MLP hidden width F in effect */
int model_head_size(const model_shape *shape);    /* d_model / n_head */
double model_rope_theta(const model_shape *shape);
int model_linear_chunk(const model_shape *shape);
double model_norm_eps(const model_shape *shape);  /* the norms' ε in effect */
/* The norms carry a bias only as LayerNorm. */
bool model_norm_has_bias(const model_shape *shape);

/* ---- names, as checkpoints and the configuration spell them ---- */
const char *model_norm_name(norm_kind kind);         /* "layernorm", "rmsnorm" */
const char *model_mlp_name(mlp_kind kind);           /* "gelu", "swiglu" */
const char *model_position_name(position_kind kind); /* "learned", "rope", "none" */
/* The kind a name stands for, or −1. */
int model_norm_from_name(const char *name);
int model_mlp_from_name(const char *name);
int model_position_from_name(const char *name);
/* The pattern written out per layer, "SSLL..." (out_bytes > n_layer). */
void model_expanded_pattern(const model_shape *shape, char *out, size_t out_bytes);

/* One line: "layernorm (eps 1e-05), GELU MLP (width 3072), learned
 * positions, biases, tied head, softmax attention" and the like. */
void model_shape_describe(const model_shape *shape, char *out, size_t out_bytes);

/* The differences that change the model's function, as "name A in the
 * checkpoint, B now; ..." (empty when none). The chunk size of linear
 * attention changes only the order of additions: not a difference. */
void model_shape_differences(const model_shape *saved, const model_shape *now, char *out, size_t out_bytes);

/* ---- FLOPs ---- */
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

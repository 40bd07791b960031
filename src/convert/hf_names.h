/* hf_names — where each of tessera's logical tensors lives in a Hugging
 * Face model's safetensors, for the two architectures tessera converts.
 *
 * A tessera tensor is one or more pieces of HF tensors, each a row-major
 * block of rows × cols elements at an offset of tessera's tensor:
 *   GPT2LMHeadModel ([transformer.]h.i.*): GPT-2's Conv1D stores weights
 *     [in, out], tessera [out, in]: c_attn, c_proj, c_fc, mlp.c_proj are
 *     transposed; c_attn's columns q|k|v, head after head, are tessera's
 *     [3, NH, HS, C] rows as they are.
 *   LlamaForCausalLM (model.layers.i.*): nn.Linear is [out, in] as tessera;
 *     q_proj, k_proj, v_proj are the three thirds of wqkv, gate_proj and
 *     up_proj the two halves of the SwiGLU w1 [2, F, C] (gate first, as
 *     kernels/cpu/swiglu.c reads them). RoPE is the half-split convention
 *     of both, so q and k need no permutation.
 * An untied head is lm_head.weight [V, C] in both.
 */
#ifndef TESSERA_HF_NAMES_H
#define TESSERA_HF_NAMES_H

#include <stdbool.h>
#include <stdint.h>

#include "model_shape.h"
#include "safetensors.h"

typedef enum hf_arch { HF_GPT2, HF_LLAMA } hf_arch;

typedef struct hf_piece {
  char name[ST_NAME_BYTES];
  int64_t rows, cols;   /* the block in tessera's tensor (a vector: cols = 1) */
  bool vector;          /* 1-D in the HF file */
  bool transposed;      /* stored [cols, rows] in the HF file (Conv1D) */
  int64_t offset;       /* its first element in tessera's tensor */
} hf_piece;

#define HF_MAX_PIECES 3

/* The pieces of tessera tensor `name`; prefix: GPT-2's "transformer." or
 * "" (the hub's files lack it). Returns their number, 0 for a name the
 * architecture does not have. */
int hf_pieces(hf_arch arch, const char *prefix, const model_shape *shape, const char *name,
              hf_piece out[HF_MAX_PIECES]);
/* The piece's shape in the HF file; returns the number of dimensions. */
int hf_piece_shape(const hf_piece *p, int64_t shape[2]);

/* "GPT2LMHeadModel", "LlamaForCausalLM". */
const char *hf_arch_name(hf_arch arch);

#endif

/* backend — the one table of compute ops that the model calls.
 *
 * tessera computes through a `backend`: a struct of function pointers filled in
 * by kernels/cpu (fp32, OpenBLAS: the reference every test trusts) or
 * kernels/cuda (bf16 storage, fp32 accumulation). The model never touches the
 * numbers: buffers are opaque handles that may live on a device.
 *
 *   act_t  — compute precision (fp32 on the CPU, bf16 on CUDA): activations,
 *            compute weights, gradients.
 *   f32_t  — always fp32: master weights, Adam moments, norm statistics, losses.
 *   ids_t  — int32 token ids.
 *
 * Conventions (as in llm.c):
 *   - All tensors are row-major and contiguous unless a leading dimension says
 *     otherwise.
 *   - Forward ops overwrite their outputs.
 *   - Backward ops ACCUMULATE (+=) into parameter gradients and into the input
 *     gradient on the residual stream (`dinp` of layernorm and of a residual
 *     add); other input gradients are overwritten (=). Each op's comment says
 *     which.
 * Arithmetic on handles goes through act_at()/f32_at(), never through casts.
 */
#ifndef TESSERA_BACKEND_H
#define TESSERA_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct act_t act_t;
typedef struct f32_t f32_t;
typedef struct ids_t ids_t;

typedef enum backend_kind { BACKEND_CPU = 0, BACKEND_CUDA = 1 } backend_kind;

typedef struct backend {
  const char *name;
  backend_kind kind;
  size_t act_elem_bytes; /* bytes of one act_t element: 4 (fp32) or 2 (bf16) */

  /* ---- memory ---- */
  act_t *(*alloc_act)(size_t n_elems, const char *what);
  f32_t *(*alloc_f32)(size_t n_elems, const char *what);
  ids_t *(*alloc_ids)(size_t n_elems, const char *what);
  void (*free_buffer)(void *buffer);
  void (*zero_act)(act_t *x, size_t n_elems);
  void (*zero_f32)(f32_t *x, size_t n_elems);
  void (*act_from_host)(act_t *dst, const float *src, size_t n_elems);
  void (*act_to_host)(float *dst, const act_t *src, size_t n_elems);
  void (*f32_from_host)(f32_t *dst, const float *src, size_t n_elems);
  void (*f32_to_host)(float *dst, const f32_t *src, size_t n_elems);
  void (*ids_from_host)(ids_t *dst, const int32_t *src, size_t n_elems);
  /* Host view of a buffer for communication, or NULL when the backend's
   * memory is not host-addressable (then comm stages through the host). */
  void *(*host_pointer)(void *buffer);
  void (*cast_f32_to_act)(act_t *dst, const f32_t *src, size_t n_elems);
  void (*synchronize)(void);

  /* ---- linear algebra ---- */
  /* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op(X) = X or Xᵀ.
   * lda/ldb/ldc are row strides in elements of the matrices as stored. */
  void (*gemm)(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const act_t *A,
               int lda, const act_t *B, int ldb, float beta, act_t *C, int ldc);
  /* out[n, c] += bias[c] for n < N */
  void (*bias_add)(act_t *out, const act_t *bias, int N, int C);
  /* dbias[c] += sum_n dout[n, c] */
  void (*bias_backward)(act_t *dbias, const act_t *dout, int N, int C);

  /* ---- elementwise ---- */
  void (*add)(act_t *out, const act_t *a, const act_t *b, size_t n_elems);   /* out = a + b */
  void (*accumulate)(act_t *dst, const act_t *src, size_t n_elems);          /* dst += src */
  void (*scale)(act_t *x, float factor, size_t n_elems);                     /* x *= factor */
  /* tanh-approximated GELU (GPT-2); backward overwrites dinp */
  void (*gelu_forward)(act_t *out, const act_t *inp, size_t n_elems);
  void (*gelu_backward)(act_t *dinp, const act_t *inp, const act_t *dout, size_t n_elems);

  /* ---- embedding: out[n,:] = wte[tokens[n] − vocab_start,:] + wpe[positions[n],:] ----
   * N rows (tokens), each with its own position id, so a sequence-parallel
   * rank holding positions [t0, t0 + T) of each sequence passes t0 + t.
   * wte holds the n_vocab rows [vocab_start, vocab_start + n_vocab) of the
   * vocabulary (a tensor-parallel shard); a token outside them contributes a
   * zero row, so the sum over shards is the full lookup. Backward
   * accumulates into dwte (own rows only) and dwpe (rows positions[n]; a
   * position may repeat). wpe/dwpe may be NULL, and positions is read only
   * when wpe (dwpe) is not NULL. */
  void (*embedding_forward)(act_t *out, const ids_t *tokens, const ids_t *positions,
                            const act_t *wte, const act_t *wpe, int N, int C, int vocab_start,
                            int n_vocab);
  void (*embedding_backward)(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens,
                             const ids_t *positions, int N, int C, int vocab_start, int n_vocab);

  /* ---- LayerNorm over the last dimension C of N rows (eps 1e-5) ----
   * mean and rstd (N each) are saved for the backward. Backward accumulates
   * into dinp, dweight and dbias. */
  void (*layernorm_forward)(act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp,
                            const act_t *weight, const act_t *bias, int N, int C);
  void (*layernorm_backward)(act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                             const act_t *inp, const act_t *weight, const f32_t *mean,
                             const f32_t *rstd, int N, int C);

  /* ---- causal multi-head softmax attention ----
   * qkv is [B, T, 3, NH, HS] (C = NH*HS); out is [B, T, NH, HS].
   * `saved` holds what the backward needs; its size in f32 elements is
   * attention_saved_elems(B, T, NH) (the CPU backend keeps probabilities,
   * a flash kernel keeps log-sum-exp rows). The backward also gets the
   * forward's `out` (a flash backward needs rowsum(dout ⊙ out)); it
   * overwrites dqkv. */
  size_t (*attention_saved_elems)(int B, int T, int NH);
  void (*attention_forward)(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C,
                            int NH);
  void (*attention_backward)(act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,
                             const f32_t *saved, int B, int T, int C, int NH);

  /* ---- softmax cross-entropy over a vocabulary split in shards ----
   * logits[N, V_stride] holds this shard's columns: vocabulary ids
   * [vocab_start, vocab_start + V); columns V..V_stride−1 are padding. Three
   * phases, with a reduction over the shards between them (none when there
   * is one shard), so the full logits are never gathered:
   *   1. row_max[n]   = max over the shard's columns             (then MAX)
   *   2. stats[2n]    = Σ exp(logit − row_max[n]) over the shard,
   *      stats[2n+1]  = the target's logit if this shard holds it, else 0 (then SUM)
   *   3. losses[n] = log(stats[2n]) + row_max[n] − stats[2n+1]; if
   *      dlogits_scale ≠ 0 the logits become IN PLACE
   *      (softmax − onehot)·dlogits_scale, padding columns 0.
   * Targets < 0 are ignored: loss 0, zero gradient. */
  void (*crossentropy_max)(f32_t *row_max, const act_t *logits, int N, int V, int V_stride);
  void (*crossentropy_sumexp)(f32_t *stats, const act_t *logits, const f32_t *row_max,
                              const ids_t *targets, int N, int V, int V_stride, int vocab_start);
  void (*crossentropy_finish)(f32_t *losses, act_t *logits, const f32_t *row_max,
                              const f32_t *stats, const ids_t *targets, int N, int V, int V_stride,
                              int vocab_start, float dlogits_scale);

  /* ---- optimizer ----
   * AdamW on one contiguous range: master (fp32) is updated from grad * grad_scale;
   * m and v are the moments; step_t counts from 1 for bias correction.
   * The compute copy of the weights is refreshed with cast_f32_to_act after. */
  void (*adamw)(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n_elems, float lr,
                float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                int64_t step_t);
  /* sum of squares in double, for the global gradient norm */
  double (*sum_squares)(const act_t *x, size_t n_elems);
} backend;

static inline act_t *act_at(const backend *be, const act_t *base, size_t n_elems) {
  return (act_t *)((char *)base + n_elems * be->act_elem_bytes);
}
static inline f32_t *f32_at(const f32_t *base, size_t n_elems) {
  return (f32_t *)((char *)base + n_elems * sizeof(float));
}
static inline ids_t *ids_at(const ids_t *base, size_t n_elems) {
  return (ids_t *)((char *)base + n_elems * sizeof(int32_t));
}

/* The CPU backend; always present. */
const backend *backend_cpu(void);
/* The CUDA backend, or NULL in a build without CUDA or on a machine without a GPU. */
const backend *backend_cuda(void);

#endif

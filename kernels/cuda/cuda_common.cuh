/* cuda_common — what every CUDA kernel file shares: the checking macros (a
 * failed CUDA or cuBLAS call prints rank, file, line and the library's
 * message and aborts the job, like every other library call in tessera;
 * cuBLASLt returns cuBLAS's status type and goes through CUBLAS_CHECK),
 * bf16 <-> fp32 helpers, the backend's one stream, cuBLAS and cuBLASLt
 * handles and cuBLASLt workspace, and a grow-only device scratch buffer for
 * reductions.
 *
 * Storage: act_t is __nv_bfloat16, f32_t is float, ids_t is int32_t; all
 * device memory. Arithmetic is fp32 throughout (loads widen, stores round).
 */
#ifndef TESSERA_CUDA_COMMON_CUH
#define TESSERA_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "backend.h"
#include "fail.h"
}
#include "cuda_check.h" /* CUDA_CHECK */

#define CUBLAS_CHECK(call)                                                                    \
  do {                                                                                        \
    cublasStatus_t cublas_status_ = (call);                                                   \
    if (cublas_status_ != CUBLAS_STATUS_SUCCESS)                                              \
      fail_local(EXIT_INTERNAL_ERROR, "cuBLAS: %s failed: %s", #call,                         \
                 cublasGetStatusString(cublas_status_));                                      \
  } while (0)

/* after a kernel launch: launch errors are reported where they happen */
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

typedef __nv_bfloat16 bf16;

static inline bf16 *as_bf16(const act_t *x) { return (bf16 *)x; }
static inline float *as_f32(const f32_t *x) { return (float *)x; }
static inline int32_t *as_ids(const ids_t *x) { return (int32_t *)x; }

__device__ __forceinline__ float load(const bf16 *p, size_t i) { return __bfloat162float(p[i]); }
__device__ __forceinline__ void store(bf16 *p, size_t i, float v) { p[i] = __float2bfloat16(v); }

static inline unsigned blocks_for(size_t n, unsigned threads) {
  size_t b = (n + threads - 1) / threads;
  return (unsigned)(b > 65535u * 16u ? 65535u * 16u : b); /* grid-stride loops cover the rest */
}

/* warp-level sum and max (all 32 lanes take part) */
__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

/* The backend's stream, cuBLAS and cuBLASLt handles, and the cuBLASLt
 * workspace of CUDA_LT_WORKSPACE_BYTES (all created by backend_cuda()). */
#define CUDA_LT_WORKSPACE_BYTES ((size_t)32 << 20)
cudaStream_t cuda_stream(void);
cublasHandle_t cuda_blas(void);
cublasLtHandle_t cuda_blas_lt(void);
void *cuda_lt_workspace(void);
/* A device buffer of at least n_bytes, reused between calls (stream-ordered). */
void *cuda_scratch(size_t n_bytes);

/* the ops, one file each family */
void cuda_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const act_t *A, int lda,
               const act_t *B, int ldb, float beta, act_t *C, int ldc);
void cuda_gemm_bias(act_t *out, const act_t *inp, const act_t *weight, const act_t *bias, int N, int IC, int OC);
void cuda_gemm_bias_gelu(act_t *out, act_t *pre, const act_t *inp, const act_t *weight, const act_t *bias, int N,
                         int IC, int OC);
void cuda_bias_add(act_t *out, const act_t *bias, int N, int C);
void cuda_bias_backward(act_t *dbias, const act_t *dout, int N, int C);
void cuda_add(act_t *out, const act_t *a, const act_t *b, size_t n);
void cuda_accumulate(act_t *dst, const act_t *src, size_t n);
void cuda_scale(act_t *x, float factor, size_t n);
void cuda_copy_rows(act_t *dst, int ld_dst, const act_t *src, int ld_src, int rows, int cols);
void cuda_gelu_forward(act_t *out, const act_t *inp, size_t n);
void cuda_gelu_backward(act_t *dinp, const act_t *inp, const act_t *dout, size_t n);
void cuda_swiglu_forward(act_t *out, const act_t *inp, int N, int H);
void cuda_swiglu_backward(act_t *dinp, const act_t *inp, const act_t *dout, int N, int H);
void cuda_cast_f32_to_act(act_t *dst, const f32_t *src, size_t n);
void cuda_embedding_forward(act_t *out, const ids_t *tokens, const ids_t *positions, const act_t *wte,
                            const act_t *wpe, int N, int C, int vocab_start, int n_vocab);
void cuda_embedding_backward(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens,
                             const ids_t *positions, int N, int C, int vocab_start, int n_vocab);
void cuda_layernorm_forward(act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp, const act_t *weight,
                            const act_t *bias, int N, int C);
void cuda_layernorm_backward(act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                             const act_t *inp, const act_t *weight, const f32_t *mean,
                             const f32_t *rstd, int N, int C);
void cuda_rmsnorm_forward(act_t *out, f32_t *rstd, const act_t *inp, const act_t *weight, int N, int C);
void cuda_rmsnorm_backward(act_t *dinp, act_t *dweight, const act_t *dout, const act_t *inp, const act_t *weight,
                           const f32_t *rstd, int N, int C);
size_t cuda_attention_saved_elems(int B, int T, int NH);
void cuda_attention_forward(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C, int NH);
void cuda_attention_backward(act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,
                             const f32_t *saved, int B, int T, int C, int NH);
void cuda_rope_forward(act_t *qkv, const ids_t *positions, int N, int C, int NH, float theta);
void cuda_rope_backward(act_t *dqkv, const ids_t *positions, int N, int C, int NH, float theta);
void cuda_attention_block_forward(f32_t *out, f32_t *lse, const act_t *q, const act_t *k, const act_t *v, int ld_q,
                                  int ld_kv, int B, int Tq, int Tk, int C, int NH, int q_pos0, int k_pos0);
void cuda_attention_merge(f32_t *out, f32_t *lse, const f32_t *out_b, const f32_t *lse_b, int B, int Tq, int C,
                          int NH);
void cuda_attention_delta(f32_t *delta, const act_t *dout, const act_t *out, int B, int T, int C, int NH);
void cuda_attention_block_backward(act_t *dq, act_t *dk, act_t *dv, int ld_dq, int ld_dkv, const act_t *dout,
                                   const f32_t *delta, const f32_t *lse, const act_t *q, const act_t *k,
                                   const act_t *v, int ld_q, int ld_kv, int B, int Tq, int Tk, int C, int NH,
                                   int q_pos0, int k_pos0);
void cuda_linear_attention_forward(act_t *out, f32_t *state, const act_t *qkv, const f32_t *decay, int B, int T,
                                   int C, int NH, int chunk);
void cuda_linear_attention_state_forward(act_t *out, const act_t *qkv, const f32_t *state_in, const f32_t *decay,
                                         int B, int T, int C, int NH);
void cuda_linear_attention_backward(act_t *dqkv, const act_t *dout, const act_t *qkv, const f32_t *dstate,
                                    const f32_t *decay, int B, int T, int C, int NH, int chunk);
void cuda_linear_attention_state_backward(act_t *dqkv, f32_t *dstate_in, const act_t *dout, const act_t *qkv,
                                          const f32_t *state_in, const f32_t *decay, int B, int T, int C, int NH);
void cuda_linear_attention_state_combine(f32_t *state, const f32_t *piece_state, const f32_t *decay, int n_tokens,
                                         int B, int NH, int HS);
void cuda_crossentropy_max(f32_t *row_max, const act_t *logits, int N, int V, int V_stride);
void cuda_crossentropy_sumexp(f32_t *stats, const act_t *logits, const f32_t *row_max,
                              const ids_t *targets, int N, int V, int V_stride, int vocab_start);
void cuda_crossentropy_finish(f32_t *losses, act_t *logits, const f32_t *row_max, const f32_t *stats,
                              const ids_t *targets, int N, int V, int V_stride, int vocab_start,
                              float dlogits_scale);
void cuda_adamw(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, float grad_scale, int64_t step_t);
double cuda_sum_squares(const act_t *x, size_t n);
segment_table *cuda_segments_create(const tensor_segment *segments, int n_segments);
void cuda_segments_free(segment_table *table);
void cuda_adamw_multi(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, const segment_table *segments,
                      float lr, float beta1, float beta2, float eps, float grad_scale, int64_t step_t);
void cuda_sum_squares_multi(const act_t *x, const segment_table *segments, double *sums_by_group, int n_groups);

#endif

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
#include "memory_tally.h"
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

/* The table's compute ops (kernels/backend_ops.h: what each computes),
 * one file each family: cuda_gemm, cuda_gemm_bias, …, cuda_sum_squares_multi.
 * C++ linkage: only this backend's files call them. */
#define CUDA_OP_PROTOTYPE(ret, op, params) ret cuda_##op params;
BACKEND_COMPUTE_OPS(CUDA_OP_PROTOTYPE)

#endif

/* cublas_v2.h for the emulator (run.sh): a plain-loop cublasGemmEx on bf16
 * (cuBLASLt: cublasLt.h and emu_cublaslt.cpp) */
#pragma once
typedef int cublasStatus_t;
/* the values of the real cublas_api.h */
enum { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_INVALID_VALUE = 7, CUBLAS_STATUS_NOT_SUPPORTED = 15 };
typedef void *cublasHandle_t;
inline const char *cublasGetStatusString(cublasStatus_t s) {
  return s == CUBLAS_STATUS_SUCCESS         ? "success (emulated)"
         : s == CUBLAS_STATUS_INVALID_VALUE ? "an invalid value (emulated)"
         : s == CUBLAS_STATUS_NOT_SUPPORTED ? "not supported (emulated)"
                                            : "error (emulated)";
}
#include <cuda_bf16.h>
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
enum { CUDA_R_32F = 0, CUDA_R_16BF = 14 };
enum { CUBLAS_COMPUTE_32F = 68 };
enum { CUBLAS_GEMM_DEFAULT = -1 };
inline cublasStatus_t cublasCreate(cublasHandle_t *h) { *h = nullptr; return 0; }
inline cublasStatus_t cublasSetStream(cublasHandle_t, void *) { return 0; }
/* column-major C = alpha op(A) op(B) + beta C on bf16, fp32 accumulation */
inline cublasStatus_t cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                   const float *alpha, const void *A, int, int lda, const void *B, int, int ldb,
                                   const float *beta, void *C, int, int ldc, int, int) {
  const __nv_bfloat16 *a = (const __nv_bfloat16 *)A, *b = (const __nv_bfloat16 *)B;
  __nv_bfloat16 *c = (__nv_bfloat16 *)C;
  for (int j = 0; j < n; j++)
    for (int i = 0; i < m; i++) {
      float s = 0;
      for (int l = 0; l < k; l++)
        s += __bfloat162float(ta ? a[l + (size_t)i * lda] : a[i + (size_t)l * lda]) *
             __bfloat162float(tb ? b[j + (size_t)l * ldb] : b[l + (size_t)j * ldb]);
      float old = *beta != 0 ? __bfloat162float(c[i + (size_t)j * ldc]) : 0.0f;
      c[i + (size_t)j * ldc] = __float2bfloat16(*alpha * s + *beta * old);
    }
  return 0;
}

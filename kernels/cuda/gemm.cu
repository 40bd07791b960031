/* gemm — row-major C = alpha·op(A)·op(B) + beta·C through cuBLAS: bf16
 * inputs and output, fp32 accumulation (CUBLAS_COMPUTE_32F), tensor cores.
 * cuBLAS is column-major, and a row-major matrix read column-major is its
 * transpose, so Cᵀ = op(B)ᵀ·op(A)ᵀ is computed with the operands swapped
 * and no data moved. */
#include "cuda_common.cuh"

void cuda_gemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const act_t *A, int lda,
               const act_t *B, int ldb, float beta, act_t *C, int ldc) {
  if (M == 0 || N == 0) return;
  CUBLAS_CHECK(cublasGemmEx(cuda_blas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                            N, M, K, &alpha, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C, CUDA_R_16BF,
                            ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

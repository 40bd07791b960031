/* cuda_check — the checking macro for every CUDA runtime call, in C and C++
 * (one error path, kernels/fail.h): a failed call prints rank, file, line,
 * the call and CUDA's own message, then aborts the job. The kernels include
 * it through cuda_common.cuh; the NCCL code of parallel/ (CUDA builds only)
 * includes it for its streams and events. */
#ifndef TESSERA_CUDA_CHECK_H
#define TESSERA_CUDA_CHECK_H

#include <cuda_runtime.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "fail.h"
#ifdef __cplusplus
}
#endif

#define CUDA_CHECK(call)                                                                      \
  do {                                                                                        \
    cudaError_t cuda_status_ = (call);                                                        \
    if (cuda_status_ != cudaSuccess)                                                          \
      fail_local(EXIT_INTERNAL_ERROR, "CUDA: %s failed: %s", #call,                           \
                 cudaGetErrorString(cuda_status_));                                           \
  } while (0)

#endif

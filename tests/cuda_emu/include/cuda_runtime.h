/* A host emulation of the bits of the CUDA runtime the tessera kernels use:
 * blocks run one after another, the threads of a block as cooperative
 * fibers (ucontext) that switch at barriers, warp shuffles and __syncwarp. */
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <functional>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__

struct dim3 {
  unsigned x, y, z;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 { unsigned x, y, z; };
extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;
struct alignas(16) float4 { float x, y, z, w; };

typedef int cudaError_t;
enum {
  cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorMemoryAllocation = 2, cudaErrorInitializationError = 3,
  cudaErrorInsufficientDriver = 35, cudaErrorNoDevice = 100
};
typedef void *cudaStream_t;
enum cudaDeviceAttr { cudaDevAttrMaxSharedMemoryPerBlockOptin = 97 };
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2, cudaMemcpyDeviceToDevice = 3 };
inline const char *cudaGetErrorString(cudaError_t e) { return e ? "emulated error" : "no error"; }
inline const char *cudaGetErrorName(cudaError_t e) {
  return e == cudaErrorNoDevice ? "cudaErrorNoDevice" : e == cudaErrorInsufficientDriver ? "cudaErrorInsufficientDriver"
         : e ? "cudaErrorEmulated" : "cudaSuccess";
}
cudaError_t cudaGetLastError();
inline cudaError_t cudaGetDevice(int *d) { *d = 0; return cudaSuccess; }
cudaError_t cudaDeviceGetAttribute(int *value, cudaDeviceAttr attr, int device);
template <typename K> cudaError_t cudaFuncSetAttribute(K *, cudaFuncAttribute, int value);
inline cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t) { memset(p, v, n); return cudaSuccess; }
inline cudaError_t cudaMemcpyAsync(void *d, const void *s, size_t n, cudaMemcpyKind, cudaStream_t) {
  memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy2DAsync(void *d, size_t dpitch, const void *s, size_t spitch, size_t width, size_t height,
                                     cudaMemcpyKind, cudaStream_t) {
  if (width > dpitch || width > spitch) return cudaErrorInvalidValue; /* as the runtime refuses it */
  for (size_t r = 0; r < height; r++) memmove((char *)d + r * dpitch, (const char *)s + r * spitch, width);
  return cudaSuccess;
}
inline cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

/* math */
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline void sincos(double x, double *s, double *c) { *s = sin(x); *c = cos(x); }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline size_t min(size_t a, size_t b) { return a < b ? a : b; }

/* synchronisation and warp operations */
void __syncthreads();
void __syncwarp(unsigned mask = 0xffffffffu);
float __shfl_xor_sync(unsigned mask, float v, int lane_mask, int width = 32);
double __shfl_xor_sync(unsigned mask, double v, int lane_mask, int width = 32);
float __shfl_sync(unsigned mask, float v, int src, int width = 32);
inline float atomicAdd(float *p, float v) { float o = *p; *p = o + v; return o; }
inline double atomicAdd(double *p, double v) { double o = *p; *p = o + v; return o; }

/* launches: a <<<grid, block, smem, stream>>> rewritten by the build script */
extern void *emu_dynamic_smem;
extern size_t emu_dynamic_bytes;
void emu_launch(dim3 grid, dim3 block, size_t smem_bytes, const std::function<void()> &body);

template <typename K> cudaError_t cudaFuncSetAttribute(K *, cudaFuncAttribute, int value) {
  extern size_t emu_allowed_smem;
  emu_allowed_smem = (size_t)value;
  return cudaSuccess;
}

/* what backend_cuda.cu and gemm.cu call */
enum { cudaStreamNonBlocking = 1 };
inline cudaError_t cudaMalloc(void **p, size_t n) { *p = malloc(n); return *p ? cudaSuccess : cudaErrorMemoryAllocation; }
inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
inline cudaError_t cudaMallocAsync(void **p, size_t n, cudaStream_t) { return cudaMalloc(p, n); }
inline cudaError_t cudaFreeAsync(void *p, cudaStream_t) { return cudaFree(p); }
/* pinned host memory is plain host memory here */
inline cudaError_t cudaMallocHost(void **p, size_t n) { return cudaMalloc(p, n); }
inline cudaError_t cudaFreeHost(void *p) { return cudaFree(p); }
inline cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { *s = nullptr; return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
/* events: every op runs when it is issued here, so an event is the host
 * clock at its record */
struct emu_event { double ms; };
typedef emu_event *cudaEvent_t;
inline cudaError_t cudaEventCreate(cudaEvent_t *e) {
  *e = (cudaEvent_t)calloc(1, sizeof(emu_event));
  return *e ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t) {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  e->ms = (double)t.tv_sec * 1e3 + (double)t.tv_nsec * 1e-6;
  return cudaSuccess;
}
inline cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
inline cudaError_t cudaEventElapsedTime(float *ms, cudaEvent_t from, cudaEvent_t to) {
  *ms = (float)(to->ms - from->ms);
  return cudaSuccess;
}
inline cudaError_t cudaEventDestroy(cudaEvent_t e) { free(e); return cudaSuccess; }
/* TESSERA_EMU_DEVICE_COUNT_ERROR=CODE (tests only): the device count fails
 * with CODE, as on a machine without a GPU (100) or with a broken driver */
inline cudaError_t cudaGetDeviceCount(int *n) {
  const char *fault = getenv("TESSERA_EMU_DEVICE_COUNT_ERROR");
  *n = fault ? 0 : 1;
  return fault ? (cudaError_t)atoi(fault) : cudaSuccess;
}
/* the one emulated device: host memory, named so that a run's report says so */
struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
};
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int) {
  snprintf(p->name, sizeof p->name, "host emulation of CUDA (tests/cuda_emu)");
  p->totalGlobalMem = 0;
  return cudaSuccess;
}
/* every rank's emulated device is "the same GPU": ranks share it, as --comm mpi allows */
inline cudaError_t cudaDeviceGetPCIBusId(char *out, int n, int) {
  snprintf(out, (size_t)n, "emulated");
  return cudaSuccess;
}

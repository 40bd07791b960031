/* backend_cuda — the CUDA backend's table: bf16 activations, weights and
 * gradients (act_t), fp32 master weights, moments and statistics (f32_t),
 * every buffer in device memory and every op on one stream. Host transfers
 * of act_t convert on the device (fp32 <-> bf16), so the host only ever
 * sees fp32. host_pointer is NULL: parallel/comm/device_comm stages buffers
 * through the host (--comm mpi) or hands them to NCCL on a stream of its own
 * that waits for this backend's stream (--comm nccl).
 *
 * Device choice: each rank takes the GPU of its node-local rank (from the
 * launcher's environment: Open MPI, Slurm, MPICH/PMI), modulo the GPUs the
 * node has. The kernels layer makes no MPI calls, so the environment is the
 * source.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

static cudaStream_t op_stream; /* every op of the table runs on it; the table's stream() hands it out */
static cublasHandle_t blas;
static cublasLtHandle_t blas_lt;
static void *lt_workspace; /* CUDA_LT_WORKSPACE_BYTES, for every cuBLASLt matmul (one stream: no overlap) */
static void *scratch;
static size_t scratch_bytes;

cudaStream_t cuda_stream(void) { return op_stream; }
cublasHandle_t cuda_blas(void) { return blas; }
cublasLtHandle_t cuda_blas_lt(void) { return blas_lt; }
void *cuda_lt_workspace(void) { return lt_workspace; }

void *cuda_scratch(size_t n_bytes) {
  if (n_bytes > scratch_bytes) {
    if (scratch) CUDA_CHECK(cudaFreeAsync(scratch, op_stream));
    CUDA_CHECK(cudaMallocAsync(&scratch, n_bytes, op_stream));
    scratch_bytes = n_bytes;
  }
  return scratch;
}

static void *device_buffer(size_t n_bytes, const char *what) {
  void *p = NULL;
  cudaError_t status = cudaMalloc(&p, n_bytes ? n_bytes : 256);
  if (status == cudaErrorMemoryAllocation)
    fail_local(EXIT_USER_ERROR, "out of GPU memory allocating %.1f MiB for %s", (double)n_bytes / (1 << 20), what);
  CUDA_CHECK(status);
  memory_tally_add(p, n_bytes);
  return p;
}

static act_t *alloc_act(size_t n, const char *what) { return (act_t *)device_buffer(n * sizeof(bf16), what); }
static f32_t *alloc_f32(size_t n, const char *what) { return (f32_t *)device_buffer(n * sizeof(float), what); }
static ids_t *alloc_ids(size_t n, const char *what) { return (ids_t *)device_buffer(n * sizeof(int32_t), what); }
static void free_buffer(void *buffer) {
  memory_tally_remove(buffer);
  if (buffer) CUDA_CHECK(cudaFree(buffer));
}
/* pinned: the offloaded optimizer's copies run at the bus's speed, without
 * the driver's staging through a pinned bounce buffer */
static float *alloc_host(size_t n, const char *what) {
  void *p = NULL;
  const size_t n_bytes = n * sizeof(float);
  cudaError_t status = cudaMallocHost(&p, n_bytes ? n_bytes : 256);
  if (status == cudaErrorMemoryAllocation)
    fail_local(EXIT_USER_ERROR, "out of pinned host memory allocating %.1f MiB for %s", (double)n_bytes / (1 << 20),
               what);
  CUDA_CHECK(status);
  memory_tally_add(p, n_bytes);
  return (float *)p;
}
static void free_host(float *buffer) {
  memory_tally_remove(buffer);
  if (buffer) CUDA_CHECK(cudaFreeHost(buffer));
}
static void zero_act(act_t *x, size_t n) { CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(bf16), op_stream)); }
static void zero_f32(f32_t *x, size_t n) { CUDA_CHECK(cudaMemsetAsync(x, 0, n * sizeof(float), op_stream)); }

__global__ void widen_kernel(float *dst, const bf16 *src, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    dst[i] = load(src, i);
}
__global__ void narrow_kernel(bf16 *dst, const float *src, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    store(dst, i, src[i]);
}

void cuda_cast_f32_to_act(act_t *dst, const f32_t *src, size_t n) {
  if (!n) return;
  narrow_kernel<<<blocks_for(n, 256), 256, 0, op_stream>>>(as_bf16(dst), as_f32(src), n);
  CUDA_CHECK_LAUNCH();
}

static void act_from_host(act_t *dst, const float *src, size_t n) {
  if (!n) return;
  float *staging = (float *)cuda_scratch(n * sizeof(float));
  CUDA_CHECK(cudaMemcpyAsync(staging, src, n * sizeof(float), cudaMemcpyHostToDevice, op_stream));
  narrow_kernel<<<blocks_for(n, 256), 256, 0, op_stream>>>(as_bf16(dst), staging, n);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaStreamSynchronize(op_stream)); /* src may be reused at once */
}
static void act_to_host(float *dst, const act_t *src, size_t n) {
  if (!n) return;
  float *staging = (float *)cuda_scratch(n * sizeof(float));
  widen_kernel<<<blocks_for(n, 256), 256, 0, op_stream>>>(staging, as_bf16(src), n);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(dst, staging, n * sizeof(float), cudaMemcpyDeviceToHost, op_stream));
  CUDA_CHECK(cudaStreamSynchronize(op_stream));
}
static void f32_from_host(f32_t *dst, const float *src, size_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, op_stream));
  CUDA_CHECK(cudaStreamSynchronize(op_stream));
}
static void f32_to_host(float *dst, const f32_t *src, size_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, op_stream));
  CUDA_CHECK(cudaStreamSynchronize(op_stream));
}
static void ids_from_host(ids_t *dst, const int32_t *src, size_t n) {
  CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(int32_t), cudaMemcpyHostToDevice, op_stream));
  CUDA_CHECK(cudaStreamSynchronize(op_stream));
}
static void *host_pointer(void *buffer) {
  (void)buffer;
  return NULL;
}
static void synchronize(void) { CUDA_CHECK(cudaStreamSynchronize(op_stream)); }
static void *mark_create(void) {
  cudaEvent_t event;
  CUDA_CHECK(cudaEventCreate(&event));
  return (void *)event;
}
static void mark_record(void *mark) { CUDA_CHECK(cudaEventRecord((cudaEvent_t)mark, op_stream)); }
static double mark_elapsed_ms(void *from, void *to) {
  float ms = 0.0f;
  CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)to));
  CUDA_CHECK(cudaEventElapsedTime(&ms, (cudaEvent_t)from, (cudaEvent_t)to));
  return ms;
}
static void mark_destroy(void *mark) { CUDA_CHECK(cudaEventDestroy((cudaEvent_t)mark)); }
static int device_count(void) {
  int n = 0;
  CUDA_CHECK(cudaGetDeviceCount(&n));
  return n;
}
static void device_describe(char *out, size_t out_bytes) {
  int device = 0, n = 0;
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaGetDeviceCount(&n));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int used = snprintf(out, out_bytes, "%s, device %d of %d", prop.name, device, n);
  if (prop.totalGlobalMem > 0 && used > 0 && (size_t)used < out_bytes) /* the emulator has none to report */
    snprintf(out + used, out_bytes - (size_t)used, ", %.0f GiB", (double)prop.totalGlobalMem / (1 << 30));
}
static void device_id(char *out, size_t out_bytes) {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetPCIBusId(out, (int)out_bytes, device));
}
static void *stream(void) { return (void *)op_stream; }

/* the runtime ops are this file's statics; the compute ops cuda_<op> (cuda_common.cuh) */
#define CUDA_OP_ENTRY(ret, op, params) .op = cuda_##op,
static const backend cuda_backend = {
    .name = "cuda",
    .kind = BACKEND_CUDA,
    .act_elem_bytes = sizeof(bf16),
    BACKEND_RUNTIME_OPS(BACKEND_RUNTIME_ENTRY)
    BACKEND_COMPUTE_OPS(CUDA_OP_ENTRY)
};

/* the launcher's node-local rank, or 0 */
static int node_local_rank(void) {
  static const char *const names[] = {"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID",
                                      "PMI_LOCAL_RANK"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *value = getenv(names[i]);
    if (value && *value) return atoi(value);
  }
  return 0;
}

extern "C" void backend_cuda_probe(device_probe *out) {
  static bool probed = false;
  static device_probe result;
  if (!probed) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) cudaGetLastError(); /* clear the sticky error */
    const device_count_status status = e == cudaSuccess         ? DEVICE_COUNT_OK
                                       : e == cudaErrorNoDevice ? DEVICE_COUNT_NO_DEVICE
                                                                : DEVICE_COUNT_ERROR;
    const bool nodes = status == DEVICE_COUNT_ERROR && device_probe_nodes_present("/dev");
    result.verdict = device_probe_classify(status, n, nodes);
    result.n_devices = result.verdict == DEVICE_READY ? n : 0;
    if (e == cudaSuccess)
      snprintf(result.message, sizeof result.message, "the CUDA runtime counts %d devices", n);
    else
      snprintf(result.message, sizeof result.message, "cudaGetDeviceCount: %s (%s)%s", cudaGetErrorString(e),
               cudaGetErrorName(e), nodes ? ", yet /dev has NVIDIA device nodes" : "");
    probed = true;
  }
  *out = result;
}

extern "C" const backend *backend_cuda(void) {
  static int state = 0; /* 0: not tried, 1: ready, -1: no GPU */
  if (state == 0) {
    device_probe probe;
    backend_cuda_probe(&probe);
    const int n_devices = probe.n_devices;
    if (probe.verdict == DEVICE_BROKEN)
      fail_local(EXIT_USER_ERROR, "CUDA: this machine has a GPU the runtime cannot use: %s; check the driver "
                 "(nvidia-smi), or use --backend cpu", probe.message);
    if (probe.verdict == DEVICE_NONE) {
      state = -1;
    } else {
      CUDA_CHECK(cudaSetDevice(node_local_rank() % n_devices));
      CUDA_CHECK(cudaStreamCreateWithFlags(&op_stream, cudaStreamNonBlocking));
      CUBLAS_CHECK(cublasCreate(&blas));
      CUBLAS_CHECK(cublasSetStream(blas, op_stream));
      CUBLAS_CHECK(cublasLtCreate(&blas_lt));
      lt_workspace = device_buffer(CUDA_LT_WORKSPACE_BYTES, "the cuBLASLt workspace");
      state = 1;
    }
  }
  return state == 1 ? &cuda_backend : NULL;
}

extern "C" bool backend_cuda_built(void) { return true; }

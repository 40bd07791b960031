/* rmsnorm — RMSNorm over the last dimension (Llama's norm), one warp per
 * row, fp32 statistics (the CPU reference sums in double):
 *   r = 1/sqrt(mean(x²) + eps),  x̂ = x·r,  y = x̂·w        (w = 1 when weight is NULL)
 * Backward, g = dy·w:  dx += r·(g − x̂·mean(g·x̂)),  dw += Σ_rows dy·x̂.
 * dinp ACCUMULATES row by row (the residual stream's gradient). dweight is a
 * column sum over all rows, done as in layernorm.cu: each block sums its rows
 * into fp32 partials in shared memory (shared-memory atomics: the order
 * within a block varies, at fp32 rounding level), writes them to scratch,
 * and a second kernel adds the blocks' partials in block order into the bf16
 * gradient: one bf16 rounding per call, not one per row. */
#include "cuda_common.cuh"

#define RMS_WARPS 8 /* rows per block of the forward and of the backward pass */
#define RMS_BACKWARD_BLOCKS 256

__global__ void rmsnorm_forward_kernel(bf16 *out, float *rstd, const bf16 *inp, const bf16 *weight, int N, int C,
                                       float eps) {
  const int lane = threadIdx.x % 32, row = blockIdx.x * RMS_WARPS + threadIdx.x / 32;
  if (row >= N) return;
  const bf16 *x = inp + (size_t)row * C;
  float sum_sq = 0.0f;
  for (int c = lane; c < C; c += 32) {
    const float xc = load(x, c);
    sum_sq += xc * xc;
  }
  const float r = rsqrtf(warp_sum(sum_sq) / C + eps);
  bf16 *y = out + (size_t)row * C;
  for (int c = lane; c < C; c += 32) store(y, c, load(x, c) * r * (weight ? load(weight, c) : 1.0f));
  if (lane == 0) rstd[row] = r;
}

/* dynamic shared memory: C floats (dweight partials) when partials is not NULL */
__global__ void rmsnorm_backward_kernel(bf16 *dinp, float *partials, const bf16 *dout, const bf16 *inp,
                                        const bf16 *weight, const float *rstd, int N, int C) {
  extern __shared__ float dw[];
  if (partials) {
    for (int c = threadIdx.x; c < C; c += blockDim.x) dw[c] = 0.0f;
    __syncthreads();
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int row = blockIdx.x * RMS_WARPS + warp; row < N; row += gridDim.x * RMS_WARPS) {
    const bf16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    const float r = rstd[row];
    float sum_gx = 0.0f;
    for (int c = lane; c < C; c += 32) sum_gx += load(dy, c) * (weight ? load(weight, c) : 1.0f) * load(x, c) * r;
    const float mean_gx = warp_sum(sum_gx) / C;
    bf16 *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
      const float xhat = load(x, c) * r, g = load(dy, c);
      store(dx, c, load(dx, c) + r * (g * (weight ? load(weight, c) : 1.0f) - xhat * mean_gx));
      if (partials) atomicAdd(&dw[c], g * xhat);
    }
  }
  if (partials) {
    __syncthreads();
    float *mine = partials + (size_t)blockIdx.x * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) mine[c] = dw[c];
  }
}

__global__ void rmsnorm_weight_kernel(bf16 *dweight, const float *partials, int n_blocks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float sum = 0.0f;
  for (int k = 0; k < n_blocks; k++) sum += partials[(size_t)k * C + c];
  store(dweight, c, load(dweight, c) + sum);
}

void cuda_rmsnorm_forward(act_t *out, f32_t *rstd, const act_t *inp, const act_t *weight, int N, int C,
                          double eps) {
  if (!N || !C) return;
  /* ε in fp32, as in layernorm.cu */
  rmsnorm_forward_kernel<<<(N + RMS_WARPS - 1) / RMS_WARPS, 32 * RMS_WARPS, 0, cuda_stream()>>>(
      as_bf16(out), as_f32(rstd), as_bf16(inp), weight ? as_bf16(weight) : nullptr, N, C, (float)eps);
  CUDA_CHECK_LAUNCH();
}

void cuda_rmsnorm_backward(act_t *dinp, act_t *dweight, const act_t *dout, const act_t *inp, const act_t *weight,
                           const f32_t *rstd, int N, int C) {
  if (!N || !C) return;
  int blocks = (N + RMS_WARPS - 1) / RMS_WARPS;
  if (blocks > RMS_BACKWARD_BLOCKS) blocks = RMS_BACKWARD_BLOCKS;
  const size_t shared_bytes = dweight ? (size_t)C * sizeof(float) : 0;
  if (shared_bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(rmsnorm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)shared_bytes));
  float *partials = dweight ? (float *)cuda_scratch((size_t)blocks * shared_bytes) : nullptr;
  rmsnorm_backward_kernel<<<blocks, 32 * RMS_WARPS, shared_bytes, cuda_stream()>>>(
      as_bf16(dinp), partials, as_bf16(dout), as_bf16(inp), weight ? as_bf16(weight) : nullptr, as_f32(rstd), N, C);
  CUDA_CHECK_LAUNCH();
  if (dweight) {
    rmsnorm_weight_kernel<<<(C + 255) / 256, 256, 0, cuda_stream()>>>(as_bf16(dweight), partials, blocks, C);
    CUDA_CHECK_LAUNCH();
  }
}

/* layernorm — LayerNorm over the last dimension, one warp per row, fp32
 * statistics. The backward accumulates dinp row by row; dweight and dbias
 * are column sums over all rows: each block sums its rows into fp32 partials
 * in shared memory (shared-memory atomics: the order within a block varies,
 * at fp32 rounding level), writes them to a scratch buffer, and a second
 * kernel adds the blocks' partials in block order into the bf16 gradients:
 * one bf16 rounding per call, not one per row. */
#include "cuda_common.cuh"

#define LN_WARPS 8 /* rows per block of the forward and of the backward pass */
#define LN_BACKWARD_BLOCKS 256

__global__ void layernorm_forward_kernel(bf16 *out, float *mean, float *rstd, const bf16 *inp, const bf16 *weight,
                                         const bf16 *bias, int N, int C, float eps) {
  const int lane = threadIdx.x % 32, row = blockIdx.x * LN_WARPS + threadIdx.x / 32;
  if (row >= N) return;
  const bf16 *x = inp + (size_t)row * C;
  float sum = 0;
  for (int c = lane; c < C; c += 32) sum += load(x, c);
  const float mu = warp_sum(sum) / C;
  float sq = 0;
  for (int c = lane; c < C; c += 32) {
    float d = load(x, c) - mu;
    sq += d * d;
  }
  const float rs = rsqrtf(warp_sum(sq) / C + eps);
  bf16 *y = out + (size_t)row * C;
  for (int c = lane; c < C; c += 32) store(y, c, (load(x, c) - mu) * rs * load(weight, c) + load(bias, c));
  if (lane == 0) mean[row] = mu, rstd[row] = rs;
}

/* dynamic shared memory: 2·C floats (dweight and dbias partials) */
__global__ void layernorm_backward_kernel(bf16 *dinp, float *partials, const bf16 *dout, const bf16 *inp,
                                          const bf16 *weight, const float *mean, const float *rstd, int N, int C) {
  extern __shared__ float shared[];
  float *dw = shared, *db = shared + C;
  for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) shared[c] = 0;
  __syncthreads();
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  for (int row = blockIdx.x * LN_WARPS + warp; row < N; row += gridDim.x * LN_WARPS) {
    const bf16 *x = inp + (size_t)row * C, *dy = dout + (size_t)row * C;
    const float mu = mean[row], rs = rstd[row];
    float sum_dn = 0, sum_dn_xhat = 0;
    for (int c = lane; c < C; c += 32) {
      const float xhat = (load(x, c) - mu) * rs, dn = load(dy, c) * load(weight, c);
      sum_dn += dn;
      sum_dn_xhat += dn * xhat;
    }
    const float mean_dn = warp_sum(sum_dn) / C, mean_dn_xhat = warp_sum(sum_dn_xhat) / C;
    bf16 *dx = dinp + (size_t)row * C;
    for (int c = lane; c < C; c += 32) {
      const float xhat = (load(x, c) - mu) * rs, g = load(dy, c), dn = g * load(weight, c);
      store(dx, c, load(dx, c) + (dn - mean_dn - xhat * mean_dn_xhat) * rs);
      atomicAdd(&dw[c], g * xhat);
      atomicAdd(&db[c], g);
    }
  }
  __syncthreads();
  float *mine = partials + (size_t)blockIdx.x * 2 * C;
  for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) mine[c] = shared[c];
}

__global__ void layernorm_params_kernel(bf16 *dweight, bf16 *dbias, const float *partials, int n_blocks, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float w = 0, b = 0;
  for (int k = 0; k < n_blocks; k++) w += partials[(size_t)k * 2 * C + c], b += partials[(size_t)k * 2 * C + C + c];
  store(dweight, c, load(dweight, c) + w);
  store(dbias, c, load(dbias, c) + b);
}

void cuda_layernorm_forward(act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp, const act_t *weight,
                            const act_t *bias, int N, int C, double eps) {
  if (!N) return;
  /* ε in fp32, as the statistics: (float)1e-5 is the 1e-5f this kernel always used */
  layernorm_forward_kernel<<<(N + LN_WARPS - 1) / LN_WARPS, 32 * LN_WARPS, 0, cuda_stream()>>>(
      as_bf16(out), as_f32(mean), as_f32(rstd), as_bf16(inp), as_bf16(weight), as_bf16(bias), N, C, (float)eps);
  CUDA_CHECK_LAUNCH();
}

void cuda_layernorm_backward(act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout, const act_t *inp,
                             const act_t *weight, const f32_t *mean, const f32_t *rstd, int N, int C) {
  if (!N) return;
  int blocks = (N + LN_WARPS - 1) / LN_WARPS;
  if (blocks > LN_BACKWARD_BLOCKS) blocks = LN_BACKWARD_BLOCKS;
  const size_t shared_bytes = 2 * (size_t)C * sizeof(float);
  if (shared_bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(layernorm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)shared_bytes));
  float *partials = (float *)cuda_scratch((size_t)blocks * shared_bytes);
  layernorm_backward_kernel<<<blocks, 32 * LN_WARPS, shared_bytes, cuda_stream()>>>(
      as_bf16(dinp), partials, as_bf16(dout), as_bf16(inp), as_bf16(weight), as_f32(mean), as_f32(rstd), N, C);
  CUDA_CHECK_LAUNCH();
  layernorm_params_kernel<<<(C + 255) / 256, 256, 0, cuda_stream()>>>(as_bf16(dweight), as_bf16(dbias), partials,
                                                                       blocks, C);
  CUDA_CHECK_LAUNCH();
}

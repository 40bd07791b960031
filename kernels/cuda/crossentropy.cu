/* crossentropy — the three phases of vocabulary-parallel softmax
 * cross-entropy (see the CPU version for the maths): one block per row,
 * logits read as bf16, arithmetic in fp32, the exp-sum in fp32 per thread
 * and then reduced across the block. Phase 3 overwrites the logits with
 * their gradient in place, so the probabilities never need a buffer. */
#include "cuda_common.cuh"

#define CE_THREADS 256

/* block-wide reduction through shared memory; every thread gets the result */
template <bool IS_MAX>
__device__ float block_reduce(float v) {
  __shared__ float lanes[CE_THREADS / 32];
  v = IS_MAX ? warp_max(v) : warp_sum(v);
  if (threadIdx.x % 32 == 0) lanes[threadIdx.x / 32] = v;
  __syncthreads();
  float r = IS_MAX ? -INFINITY : 0.0f;
  for (int w = 0; w < CE_THREADS / 32; w++) r = IS_MAX ? fmaxf(r, lanes[w]) : r + lanes[w];
  __syncthreads(); /* lanes may be reused by the caller's next reduction */
  return r;
}

__global__ void ce_max_kernel(float *row_max, const bf16 *logits, int V, int V_stride) {
  const bf16 *row = logits + (size_t)blockIdx.x * V_stride;
  float m = -INFINITY;
  for (int v = threadIdx.x; v < V; v += CE_THREADS) m = fmaxf(m, load(row, v));
  m = block_reduce<true>(m);
  if (threadIdx.x == 0) row_max[blockIdx.x] = m;
}

__global__ void ce_sumexp_kernel(float *stats, const bf16 *logits, const float *row_max, const int32_t *targets,
                                 int V, int V_stride, int vocab_start) {
  const int n = blockIdx.x;
  const bf16 *row = logits + (size_t)n * V_stride;
  const float m = row_max[n];
  float sum = 0;
  for (int v = threadIdx.x; v < V; v += CE_THREADS) sum += __expf(load(row, v) - m);
  sum = block_reduce<false>(sum);
  if (threadIdx.x == 0) {
    const int32_t local = targets[n] - vocab_start;
    stats[2 * n] = sum;
    stats[2 * n + 1] = targets[n] >= 0 && local >= 0 && local < V ? load(row, local) : 0.0f;
  }
}

__global__ void ce_finish_kernel(float *losses, bf16 *logits, const float *row_max, const float *stats,
                                 const int32_t *targets, int V, int V_stride, int vocab_start, float scale) {
  const int n = blockIdx.x;
  bf16 *row = logits + (size_t)n * V_stride;
  const bool ignored = targets[n] < 0;
  const float log_sum = logf(stats[2 * n]) + row_max[n];
  if (threadIdx.x == 0) losses[n] = ignored ? 0.0f : log_sum - stats[2 * n + 1];
  if (scale == 0.0f) return;
  const int32_t local = targets[n] - vocab_start;
  for (int v = threadIdx.x; v < V_stride; v += CE_THREADS) {
    float g = 0.0f;
    if (!ignored && v < V) g = (__expf(load(row, v) - log_sum) - (v == local ? 1.0f : 0.0f)) * scale;
    store(row, v, g);
  }
}

void cuda_crossentropy_max(f32_t *row_max, const act_t *logits, int N, int V, int V_stride) {
  if (!N) return;
  ce_max_kernel<<<N, CE_THREADS, 0, cuda_stream()>>>(as_f32(row_max), as_bf16(logits), V, V_stride);
  CUDA_CHECK_LAUNCH();
}
void cuda_crossentropy_sumexp(f32_t *stats, const act_t *logits, const f32_t *row_max, const ids_t *targets,
                              int N, int V, int V_stride, int vocab_start) {
  if (!N) return;
  ce_sumexp_kernel<<<N, CE_THREADS, 0, cuda_stream()>>>(as_f32(stats), as_bf16(logits), as_f32(row_max),
                                                        as_ids(targets), V, V_stride, vocab_start);
  CUDA_CHECK_LAUNCH();
}
void cuda_crossentropy_finish(f32_t *losses, act_t *logits, const f32_t *row_max, const f32_t *stats,
                              const ids_t *targets, int N, int V, int V_stride, int vocab_start,
                              float dlogits_scale) {
  if (!N) return;
  ce_finish_kernel<<<N, CE_THREADS, 0, cuda_stream()>>>(as_f32(losses), as_bf16(logits), as_f32(row_max),
                                                        as_f32(stats), as_ids(targets), V, V_stride,
                                                        vocab_start, dlogits_scale);
  CUDA_CHECK_LAUNCH();
}

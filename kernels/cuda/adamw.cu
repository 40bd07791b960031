/* adamw — AdamW on fp32 master weights from bf16 gradients (the update of
 * the CPU version, same order of operations), and the sum of squares of a
 * gradient for the global norm: per-block partial sums in double, summed on
 * the host, so the result does not depend on timing.
 *
 * The multi-tensor forms (adamw_multi, sum_squares_multi) do the same over a
 * segment list (backend.h) in ONE launch: the optimizer's ~150 tensors per
 * rank were ~150 adamw launches and ~150 sum_squares calls per step, each of
 * the latter a device-to-host copy and a stream synchronisation. The
 * segments, concatenated in table order, form one index space j ∈ [0, total);
 * a block takes tiles of MT_TILE consecutive j, finds the tile's first
 * segment by binary search over the segments' starting indices, and each
 * thread walks forward from there (a tile spans few segments: GPT-2's
 * smallest tensors hold 768 elements). Threads of a warp touch consecutive
 * j, so loads and stores stay coalesced inside a segment. The table lives in
 * device memory from segments_create on; nothing is allocated or copied per
 * step except sum_squares_multi's one copy of its block partials.
 */
#include <stdlib.h>

#include "cuda_common.cuh"

/* one element of AdamW: both kernels call it, so they do the same arithmetic */
__device__ __forceinline__ void adamw_update(float *w, const bf16 *grad, float *mom, float *var, size_t i, float lr,
                                             float beta1, float beta2, float eps, float weight_decay,
                                             float grad_scale, float correction1, float correction2) {
  float g = load(grad, i) * grad_scale;
  float mi = beta1 * mom[i] + (1.0f - beta1) * g;
  float vi = beta2 * var[i] + (1.0f - beta2) * g * g;
  mom[i] = mi;
  var[i] = vi;
  float m_hat = mi / correction1, v_hat = vi / correction2;
  w[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * w[i]);
}

__global__ void adamw_kernel(float *w, const bf16 *grad, float *mom, float *var, size_t n, float lr, float beta1,
                             float beta2, float eps, float weight_decay, float grad_scale, float correction1,
                             float correction2) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
    adamw_update(w, grad, mom, var, i, lr, beta1, beta2, eps, weight_decay, grad_scale, correction1, correction2);
}

void cuda_adamw(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n, float lr, float beta1,
                float beta2, float eps, float weight_decay, float grad_scale, int64_t step_t) {
  if (!n) return;
  const float correction1 = 1.0f - powf(beta1, (float)step_t);
  const float correction2 = 1.0f - powf(beta2, (float)step_t);
  adamw_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(as_f32(master), as_bf16(grad), as_f32(m), as_f32(v),
                                                              n, lr, beta1, beta2, eps, weight_decay, grad_scale,
                                                              correction1, correction2);
  CUDA_CHECK_LAUNCH();
}

#define SQ_BLOCKS 512
#define SQ_THREADS 256

__global__ void sum_squares_kernel(double *partial, const bf16 *x, size_t n) {
  __shared__ double lanes[SQ_THREADS];
  double sum = 0;
  for (size_t i = blockIdx.x * (size_t)SQ_THREADS + threadIdx.x; i < n; i += (size_t)gridDim.x * SQ_THREADS) {
    double v = load(x, i);
    sum += v * v;
  }
  lanes[threadIdx.x] = sum;
  __syncthreads();
  for (int half = SQ_THREADS / 2; half > 0; half >>= 1) {
    if (threadIdx.x < half) lanes[threadIdx.x] += lanes[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = lanes[0];
}

double cuda_sum_squares(const act_t *x, size_t n) {
  if (!n) return 0;
  /* no more blocks than the tensor fills: most tensors (biases, norms) take one */
  const size_t fill = (n + SQ_THREADS - 1) / SQ_THREADS;
  const int blocks = fill < SQ_BLOCKS ? (int)fill : SQ_BLOCKS;
  double *partial = (double *)cuda_scratch(SQ_BLOCKS * sizeof(double)), host[SQ_BLOCKS];
  sum_squares_kernel<<<blocks, SQ_THREADS, 0, cuda_stream()>>>(partial, as_bf16(x), n);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(host, partial, (size_t)blocks * sizeof(double), cudaMemcpyDeviceToHost, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  double sum = 0;
  for (int b = 0; b < blocks; b++) sum += host[b];
  return sum;
}

/* ---- multi-tensor ops ---- */

#define MT_THREADS 256
#define MT_PER_THREAD 8
#define MT_TILE (MT_THREADS * MT_PER_THREAD) /* consecutive concatenated elements per block step */
/* sum_squares_multi's grid: an H100 holds 8 blocks of 256 threads on each
 * of its 132 SMs, so 1024 blocks keep it busy; fewer when the segments do
 * not fill them (tests, tiny models) */
#define SQ_MULTI_BLOCKS 1024

/* a segment as the kernels read it; the table ends with a sentinel whose
 * start is the total, so seg[s + 1].start is the end of segment s */
struct device_segment {
  size_t offset; /* in the buffers */
  size_t start;  /* its first index in the concatenation */
  float weight_decay;
  int group;
};

/* what segments_create returns on CUDA (a host struct holding device memory) */
struct cuda_segment_table {
  device_segment *device; /* n_segments + 1 entries, the sentinel last */
  int n_segments, n_groups;
  size_t total_elems;
  int sum_blocks;       /* sum_squares_multi's grid */
  double *partial;      /* device, [SEGMENT_MAX_GROUPS][sum_blocks]: per-block sums */
  double *partial_host; /* pinned host copy of partial */
};

/* the segment holding concatenated index j < total: the last s with
 * start ≤ j (it is not empty: the next start is > j) */
__device__ __forceinline__ int segment_of(const device_segment *seg, int n_segments, size_t j) {
  int lo = 0, hi = n_segments - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (seg[mid].start <= j) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/* A thread's current segment, in registers: the kernels' stores to the
 * weights could otherwise make the compiler reload the table every element. */
struct segment_cursor {
  int s;
  size_t start, end, offset;
  float weight_decay;
  int group;
};
__device__ __forceinline__ void cursor_at(segment_cursor &c, const device_segment *seg, int s) {
  c.s = s;
  c.start = seg[s].start;
  c.end = seg[s + 1].start;
  c.offset = seg[s].offset;
  c.weight_decay = seg[s].weight_decay;
  c.group = seg[s].group;
}
/* moves the cursor forward to the segment holding j (≥ its start) and
 * returns j's element in the buffers */
__device__ __forceinline__ size_t cursor_element(segment_cursor &c, const device_segment *seg, size_t j) {
  if (j >= c.end) {
    int s = c.s + 1;
    while (j >= seg[s + 1].start) s++; /* skips empty segments and ones the tile steps over */
    cursor_at(c, seg, s);
  }
  return c.offset + (j - c.start);
}

/* visit(i, c) for each of this thread's elements of the concatenation, i
 * its index in the buffers and c its segment: the block's tiles of MT_TILE
 * consecutive indices (grid-stride), in each the thread's elements
 * threadIdx.x + k·MT_THREADS, k < MT_PER_THREAD, in order */
template <typename Visit>
__device__ __forceinline__ void for_each_element(const device_segment *seg, int n_segments, size_t total,
                                                 Visit visit) {
  for (size_t tile = (size_t)blockIdx.x * MT_TILE; tile < total; tile += (size_t)gridDim.x * MT_TILE) {
    segment_cursor c;
    cursor_at(c, seg, segment_of(seg, n_segments, tile));
    for (int k = 0; k < MT_PER_THREAD; k++) {
      const size_t j = tile + (size_t)k * MT_THREADS + threadIdx.x;
      if (j >= total) break;
      visit(cursor_element(c, seg, j), c);
    }
  }
}

__global__ void adamw_multi_kernel(float *w, const bf16 *grad, float *mom, float *var, const device_segment *seg,
                                   int n_segments, size_t total, float lr, float beta1, float beta2, float eps,
                                   float grad_scale, float correction1, float correction2) {
  for_each_element(seg, n_segments, total, [&](size_t i, const segment_cursor &c) {
    adamw_update(w, grad, mom, var, i, lr, beta1, beta2, eps, c.weight_decay, grad_scale, correction1, correction2);
  });
}

/* partial[g·gridDim.x + block] = Σ x² of this block's elements of group g,
 * for g < n_groups. Each thread keeps one double per group (registers: the
 * group loop is unrolled, the other groups add an exact 0); warps reduce by
 * shuffles, then thread g adds the warps' sums of group g in warp order. */
__global__ void sum_squares_multi_kernel(double *partial, const bf16 *x, const device_segment *seg, int n_segments,
                                         size_t total, int n_groups) {
  __shared__ double warp_sums[SEGMENT_MAX_GROUPS][MT_THREADS / 32];
  double acc[SEGMENT_MAX_GROUPS];
#pragma unroll
  for (int g = 0; g < SEGMENT_MAX_GROUPS; g++) acc[g] = 0;
  for_each_element(seg, n_segments, total, [&](size_t i, const segment_cursor &c) {
    const double v = load(x, i);
    const double square = v * v;
#pragma unroll
    for (int g = 0; g < SEGMENT_MAX_GROUPS; g++) acc[g] += g == c.group ? square : 0.0;
  });
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll /* constant indices keep acc in registers */
  for (int g = 0; g < SEGMENT_MAX_GROUPS; g++) {
    if (g >= n_groups) break; /* the same for the whole block */
    double sum = acc[g];
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (lane == 0) warp_sums[g][warp] = sum;
  }
  __syncthreads();
  if (threadIdx.x < n_groups) {
    double sum = 0;
    for (int w = 0; w < MT_THREADS / 32; w++) sum += warp_sums[threadIdx.x][w];
    partial[threadIdx.x * gridDim.x + blockIdx.x] = sum;
  }
}

segment_table *cuda_segments_create(const tensor_segment *segments, int n_segments) {
  size_t total_elems;
  int n_groups;
  segments_check(segments, n_segments, &total_elems, &n_groups);
  cuda_segment_table *t = (cuda_segment_table *)xmalloc(sizeof *t, "segment table");
  t->n_segments = n_segments;
  t->n_groups = n_groups;
  t->total_elems = total_elems;
  const size_t tiles = (total_elems + MT_TILE - 1) / MT_TILE;
  t->sum_blocks = tiles == 0 ? 1 : tiles < SQ_MULTI_BLOCKS ? (int)tiles : SQ_MULTI_BLOCKS;
  device_segment *host = (device_segment *)xmalloc((size_t)(n_segments + 1) * sizeof *host, "segment table");
  size_t start = 0;
  for (int s = 0; s < n_segments; s++) {
    host[s] = {segments[s].offset, start, segments[s].weight_decay, segments[s].group};
    start += segments[s].n_elems;
  }
  host[n_segments] = {0, start, 0.0f, 0};
  const size_t table_bytes = (size_t)(n_segments + 1) * sizeof *host;
  const size_t partial_bytes = (size_t)SEGMENT_MAX_GROUPS * t->sum_blocks * sizeof(double);
  CUDA_CHECK(cudaMalloc((void **)&t->device, table_bytes));
  CUDA_CHECK(cudaMalloc((void **)&t->partial, partial_bytes));
  CUDA_CHECK(cudaMallocHost((void **)&t->partial_host, partial_bytes));
  CUDA_CHECK(cudaMemcpyAsync(t->device, host, table_bytes, cudaMemcpyHostToDevice, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); /* host is freed next */
  free(host);
  return (segment_table *)t;
}

void cuda_segments_free(segment_table *table) {
  cuda_segment_table *t = (cuda_segment_table *)table;
  if (!t) return;
  CUDA_CHECK(cudaFree(t->device));
  CUDA_CHECK(cudaFree(t->partial));
  CUDA_CHECK(cudaFreeHost(t->partial_host));
  free(t);
}

void cuda_adamw_multi(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, const segment_table *segments,
                      float lr, float beta1, float beta2, float eps, float grad_scale, int64_t step_t) {
  const cuda_segment_table *t = (const cuda_segment_table *)segments;
  if (!t->total_elems) return;
  const float correction1 = 1.0f - powf(beta1, (float)step_t);
  const float correction2 = 1.0f - powf(beta2, (float)step_t);
  adamw_multi_kernel<<<blocks_for(t->total_elems, MT_TILE), MT_THREADS, 0, cuda_stream()>>>(
      as_f32(master), as_bf16(grad), as_f32(m), as_f32(v), t->device, t->n_segments, t->total_elems, lr, beta1,
      beta2, eps, grad_scale, correction1, correction2);
  CUDA_CHECK_LAUNCH();
}

void cuda_sum_squares_multi(const act_t *x, const segment_table *segments, double *sums_by_group, int n_groups) {
  const cuda_segment_table *t = (const cuda_segment_table *)segments;
  segments_sums_start(t->n_groups, sums_by_group, n_groups);
  if (!t->total_elems) return;
  /* only the groups that have segments are reduced and copied */
  sum_squares_multi_kernel<<<t->sum_blocks, MT_THREADS, 0, cuda_stream()>>>(t->partial, as_bf16(x), t->device,
                                                                          t->n_segments, t->total_elems,
                                                                          t->n_groups);
  CUDA_CHECK_LAUNCH();
  CUDA_CHECK(cudaMemcpyAsync(t->partial_host, t->partial, (size_t)t->n_groups * t->sum_blocks * sizeof(double),
                             cudaMemcpyDeviceToHost, cuda_stream()));
  CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
  for (int g = 0; g < t->n_groups; g++)
    for (int b = 0; b < t->sum_blocks; b++) sums_by_group[g] += t->partial_host[(size_t)g * t->sum_blocks + b];
}

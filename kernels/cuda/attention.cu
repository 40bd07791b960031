/* attention — causal softmax attention that never materialises the T×T
 * matrix (FlashAttention-2's schedule, written for clarity before speed):
 *
 * Forward: a block takes BQ query rows of one (b, h), one thread per row.
 * K and V stream through shared memory in tiles of BK rows up to the causal
 * limit; each thread keeps its row's running max m, normaliser l and output
 * accumulator, rescaling them by exp(m_old − m_new) once per tile (online
 * softmax). It writes out = acc / l and saves only LSE = m + log l per row.
 *
 * Backward (dqkv overwritten): with D_i = rowsum(dO_i ⊙ O_i) and
 * P_ij = exp(S_ij − LSE_i) recomputed tile by tile,
 *   dV_j = Σ_i P_ij dO_i,  dS_ij = P_ij (dO_i·V_j − D_i),
 *   dK_j = Σ_i dS_ij Q_i /√HS,  dQ_i = Σ_j dS_ij K_j /√HS.
 * Two kernels: one thread per key row accumulates dK, dV over the query
 * tiles at or after it; one thread per query row accumulates dQ over the key
 * tiles up to it. Each gradient element has one owner, so there are no
 * atomics and the result is the same on every run; the price is computing
 * P twice. Head sizes 16, 32, 64 and 128 are compiled (GPT-2's are 64).
 */
#include "cuda_common.cuh"

/* tile rows: K and V tiles of BK×HS floats each fill 32 KiB of shared memory */
template <int HS> struct tile { static constexpr int rows = 4096 / HS; };

__device__ __forceinline__ size_t q_at(int b, int t, int h, int T, int C, int HS) {
  return ((size_t)(b * T + t) * 3) * C + (size_t)h * HS;
}

template <int HS>
__global__ void attention_forward_kernel(bf16 *out, float *lse, const bf16 *qkv, int T, int NH) {
  constexpr int BK = tile<HS>::rows, BQ = BK;
  __shared__ float ks[BK][HS], vs[BK][HS];
  const int C = NH * HS, h = blockIdx.y, b = blockIdx.z;
  const int q0 = blockIdx.x * BQ, t = q0 + threadIdx.x;
  const float scale = rsqrtf((float)HS);
  float q[HS], acc[HS], m = -INFINITY, l = 0.0f;
  if (t < T)
    for (int d = 0; d < HS; d++) q[d] = load(qkv, q_at(b, t, h, T, C, HS) + d) * scale, acc[d] = 0.0f;
  const int last_key = min(q0 + BQ, T); /* keys the block's rows can see */
  for (int k0 = 0; k0 < last_key; k0 += BK) {
    __syncthreads();
    for (int e = threadIdx.x; e < BK * HS; e += BQ) {
      const int r = e / HS, d = e % HS, j = k0 + r;
      ks[r][d] = j < T ? load(qkv, q_at(b, j, h, T, C, HS) + C + d) : 0.0f;
      vs[r][d] = j < T ? load(qkv, q_at(b, j, h, T, C, HS) + 2 * C + d) : 0.0f;
    }
    __syncthreads();
    if (t >= T || k0 > t) continue;
    const int n_keys = min(BK, t - k0 + 1); /* causal: keys k0 .. t */
    float s[BK], tile_max = -INFINITY;
    for (int r = 0; r < n_keys; r++) {
      float dot = 0.0f;
      for (int d = 0; d < HS; d++) dot += q[d] * ks[r][d];
      s[r] = dot;
      tile_max = fmaxf(tile_max, dot);
    }
    const float m_new = fmaxf(m, tile_max), correction = __expf(m - m_new);
    l *= correction;
    for (int d = 0; d < HS; d++) acc[d] *= correction;
    for (int r = 0; r < n_keys; r++) {
      const float p = __expf(s[r] - m_new);
      l += p;
      for (int d = 0; d < HS; d++) acc[d] += p * vs[r][d];
    }
    m = m_new;
  }
  if (t >= T) return;
  const float inv = 1.0f / l;
  bf16 *o = out + (size_t)(b * T + t) * C + (size_t)h * HS;
  for (int d = 0; d < HS; d++) store(o, d, acc[d] * inv);
  lse[((size_t)b * NH + h) * T + t] = m + logf(l);
}

/* D[b, h, t] = Σ_d dO ⊙ O, one warp per row */
__global__ void attention_delta_kernel(float *delta, const bf16 *dout, const bf16 *out, int B, int T, int NH,
                                       int HS) {
  const int lane = threadIdx.x % 32;
  const size_t row = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32; /* over (b, t, h) */
  if (row >= (size_t)B * T * NH) return;
  const int h = (int)(row % NH);
  const size_t bt = row / NH;
  const int t = (int)(bt % T), b = (int)(bt / T);
  const size_t at = bt * (size_t)NH * HS + (size_t)h * HS;
  float sum = 0.0f;
  for (int d = lane; d < HS; d += 32) sum += load(dout, at + d) * load(out, at + d);
  sum = warp_sum(sum);
  if (lane == 0) delta[((size_t)b * NH + h) * T + t] = sum;
}

template <int HS>
__global__ void attention_dkdv_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                      const float *delta, int T, int NH) {
  constexpr int BK = tile<HS>::rows, BQ = BK;
  __shared__ float qs[BQ][HS], dos[BQ][HS];
  __shared__ float lse_s[BQ], delta_s[BQ];
  const int C = NH * HS, h = blockIdx.y, b = blockIdx.z;
  const int k0 = blockIdx.x * BK, j = k0 + threadIdx.x;
  const float scale = rsqrtf((float)HS);
  float k[HS], v[HS], dk[HS], dv[HS];
  if (j < T)
    for (int d = 0; d < HS; d++) {
      k[d] = load(qkv, q_at(b, j, h, T, C, HS) + C + d);
      v[d] = load(qkv, q_at(b, j, h, T, C, HS) + 2 * C + d);
      dk[d] = dv[d] = 0.0f;
    }
  const size_t row0 = ((size_t)b * NH + h) * T;
  for (int i0 = k0; i0 < T; i0 += BQ) { /* query tiles at or after the block's first key */
    __syncthreads();
    for (int e = threadIdx.x; e < BQ * HS; e += BK) {
      const int r = e / HS, d = e % HS, i = i0 + r;
      qs[r][d] = i < T ? load(qkv, q_at(b, i, h, T, C, HS) + d) * scale : 0.0f;
      dos[r][d] = i < T ? load(dout, (size_t)(b * T + i) * C + (size_t)h * HS + d) : 0.0f;
    }
    for (int r = threadIdx.x; r < BQ; r += BK) {
      lse_s[r] = i0 + r < T ? lse[row0 + i0 + r] : 0.0f;
      delta_s[r] = i0 + r < T ? delta[row0 + i0 + r] : 0.0f;
    }
    __syncthreads();
    if (j >= T) continue;
    for (int r = 0; r < BQ; r++) {
      const int i = i0 + r;
      if (i >= T) break;
      if (i < j) continue; /* causal: query i sees key j only if j <= i */
      float s = 0.0f, dp = 0.0f;
      for (int d = 0; d < HS; d++) s += qs[r][d] * k[d], dp += dos[r][d] * v[d];
      const float p = __expf(s - lse_s[r]), ds = p * (dp - delta_s[r]);
      for (int d = 0; d < HS; d++) dv[d] += p * dos[r][d], dk[d] += ds * qs[r][d]; /* qs holds Q/√HS */
    }
  }
  if (j >= T) return;
  for (int d = 0; d < HS; d++) {
    store(dqkv, q_at(b, j, h, T, C, HS) + C + d, dk[d]);
    store(dqkv, q_at(b, j, h, T, C, HS) + 2 * C + d, dv[d]);
  }
}

template <int HS>
__global__ void attention_dq_kernel(bf16 *dqkv, const bf16 *dout, const bf16 *qkv, const float *lse,
                                    const float *delta, int T, int NH) {
  constexpr int BK = tile<HS>::rows, BQ = BK;
  __shared__ float ks[BK][HS], vs[BK][HS];
  const int C = NH * HS, h = blockIdx.y, b = blockIdx.z;
  const int q0 = blockIdx.x * BQ, i = q0 + threadIdx.x;
  const float scale = rsqrtf((float)HS);
  float q[HS], dO[HS], dq[HS], row_lse = 0.0f, row_delta = 0.0f;
  if (i < T) {
    for (int d = 0; d < HS; d++) {
      q[d] = load(qkv, q_at(b, i, h, T, C, HS) + d) * scale;
      dO[d] = load(dout, (size_t)(b * T + i) * C + (size_t)h * HS + d);
      dq[d] = 0.0f;
    }
    row_lse = lse[((size_t)b * NH + h) * T + i];
    row_delta = delta[((size_t)b * NH + h) * T + i];
  }
  const int last_key = min(q0 + BQ, T);
  for (int k0 = 0; k0 < last_key; k0 += BK) {
    __syncthreads();
    for (int e = threadIdx.x; e < BK * HS; e += BQ) {
      const int r = e / HS, d = e % HS, j = k0 + r;
      ks[r][d] = j < T ? load(qkv, q_at(b, j, h, T, C, HS) + C + d) : 0.0f;
      vs[r][d] = j < T ? load(qkv, q_at(b, j, h, T, C, HS) + 2 * C + d) : 0.0f;
    }
    __syncthreads();
    if (i >= T || k0 > i) continue;
    const int n_keys = min(BK, i - k0 + 1);
    for (int r = 0; r < n_keys; r++) {
      float s = 0.0f, dp = 0.0f;
      for (int d = 0; d < HS; d++) s += q[d] * ks[r][d], dp += dO[d] * vs[r][d];
      const float ds = __expf(s - row_lse) * (dp - row_delta);
      for (int d = 0; d < HS; d++) dq[d] += ds * ks[r][d];
    }
  }
  if (i >= T) return;
  for (int d = 0; d < HS; d++) store(dqkv, q_at(b, i, h, T, C, HS) + d, dq[d] * scale);
}

size_t cuda_attention_saved_elems(int B, int T, int NH) { return (size_t)B * NH * T; }

template <int HS>
static void forward(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int NH) {
  constexpr int BQ = tile<HS>::rows;
  dim3 grid((T + BQ - 1) / BQ, NH, B);
  attention_forward_kernel<HS><<<grid, BQ, 0, cuda_stream()>>>(as_bf16(out), as_f32(saved), as_bf16(qkv), T, NH);
  CUDA_CHECK_LAUNCH();
}

template <int HS>
static void backward(act_t *dqkv, const act_t *dout, const act_t *qkv, const float *lse, const float *delta, int B,
                     int T, int NH) {
  constexpr int BK = tile<HS>::rows;
  dim3 grid((T + BK - 1) / BK, NH, B);
  attention_dkdv_kernel<HS><<<grid, BK, 0, cuda_stream()>>>(as_bf16(dqkv), as_bf16(dout), as_bf16(qkv), lse, delta,
                                                            T, NH);
  CUDA_CHECK_LAUNCH();
  attention_dq_kernel<HS><<<grid, BK, 0, cuda_stream()>>>(as_bf16(dqkv), as_bf16(dout), as_bf16(qkv), lse, delta,
                                                          T, NH);
  CUDA_CHECK_LAUNCH();
}

static void unsupported(int HS) {
  fail_local(EXIT_USER_ERROR, "the CUDA attention kernel supports head sizes 16, 32, 64 and 128, not %d", HS);
}

void cuda_attention_forward(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C, int NH) {
  if (!B || !T) return;
  switch (C / NH) {
    case 16: forward<16>(out, saved, qkv, B, T, NH); break;
    case 32: forward<32>(out, saved, qkv, B, T, NH); break;
    case 64: forward<64>(out, saved, qkv, B, T, NH); break;
    case 128: forward<128>(out, saved, qkv, B, T, NH); break;
    default: unsupported(C / NH);
  }
}

void cuda_attention_backward(act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,
                             const f32_t *saved, int B, int T, int C, int NH) {
  if (!B || !T) return;
  const int HS = C / NH;
  const size_t rows = (size_t)B * T * NH;
  float *delta = (float *)cuda_scratch(rows * sizeof(float));
  attention_delta_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, cuda_stream()>>>(delta, as_bf16(dout), as_bf16(out),
                                                                               B, T, NH, HS);
  CUDA_CHECK_LAUNCH();
  const float *lse = as_f32(saved);
  switch (HS) {
    case 16: backward<16>(dqkv, dout, qkv, lse, delta, B, T, NH); break;
    case 32: backward<32>(dqkv, dout, qkv, lse, delta, B, T, NH); break;
    case 64: backward<64>(dqkv, dout, qkv, lse, delta, B, T, NH); break;
    case 128: backward<128>(dqkv, dout, qkv, lse, delta, B, T, NH); break;
    default: unsupported(HS);
  }
}

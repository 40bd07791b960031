/* attention — causal softmax attention that never materialises the score
 * matrix (FlashAttention-2's schedule), for the whole sequence
 * (attention_forward/backward) and for a query block against one key block
 * (attention_block_*, sequence parallelism), plus the block ops' merge and
 * delta. One set of kernels serves both: the whole sequence is the block
 * case with q, k, v inside qkv (leading dimension 3C), Tq = Tk = T and both
 * position offsets 0; key j is visible to query i iff k_pos0 + j ≤ q_pos0 + i.
 *
 * Forward: a block takes ROWS query rows of one (b, h); G = HS_MAX/W
 * consecutive threads share a row, each holding W of its columns (q, and
 * the output accumulator) in registers, so a dot product is W FMAs and a
 * log2(G)-step shuffle. K and V stream through shared memory in tiles of
 * TILE rows up to the block's last visible key; each row keeps a running
 * max m and normaliser l, rescaling its accumulator by exp(m_old − m_new)
 * when the max grows (online softmax, key by key: no score array). It
 * writes O = acc/l and lse = m + log l; a row with no visible key gets
 * lse = −∞ and O = 0.
 *
 * Backward, with P_ij = exp(S_ij − lse_i) recomputed from the given
 * (global) lse and δ_i = rowsum(dO_i ⊙ O_i):
 *   dV_j = Σ_i P_ij dO_i,  dS_ij = P_ij (dO_i·V_j − δ_i),
 *   dK_j = Σ_i dS_ij Q_i/√HS,  dQ_i = Σ_j dS_ij K_j/√HS.
 * Two kernels: one owns key rows (dK, dV over the query tiles that see
 * them), one owns query rows (dQ over the visible key tiles). Each gradient
 * element has one owner: no atomics, the same result on every run; the
 * price is computing P twice. The block op ACCUMULATES into dq, dk, dv, the
 * whole-sequence op overwrites dqkv. Rows whose lse is −∞ see nothing.
 *
 * Any head size up to 128 runs: HS is padded with zeros to the next of 16,
 * 32, 64, 128 (HS_MAX). Scores, exponentials, sums are fp32 (expf, not the
 * fast approximation); the block forward's output and lse are fp32 too, so
 * merging blocks loses nothing to bf16.
 */
#include "cuda_common.cuh"
extern "C" {
#include "backend_sizing.h"
}

#define ATT_THREADS 128

template <int HS_MAX> struct att_shape {
  static constexpr int W = HS_MAX < 32 ? HS_MAX : 32; /* columns per thread */
  static constexpr int G = HS_MAX / W;                 /* threads per row: 1, 2 or 4 */
  static constexpr int ROWS = ATT_THREADS / G;         /* rows a block owns */
  /* shared-memory rows: G slices of W floats, each padded by 4 so that the
   * G threads of a row read different banks (float4 loads, quarter-warp phases) */
  static constexpr int SLICE = W + 4;
  static constexpr int ROW = G * SLICE;
  /* a tile holds TILE_VALUES = rows × HS_MAX values (16 KiB): two padded
   * tiles take < 41 KiB of the 48 KiB of static shared memory */
  static constexpr int TILE_VALUES = 4096;
  static constexpr int TILE = TILE_VALUES / HS_MAX; /* rows per tile */
  static_assert(W % 4 == 0 && G * W == HS_MAX && (G & (G - 1)) == 0, "bad attention shape");
};

/* what every kernel needs; pointers are at row 0 of batch 0, head 0 */
struct att_args {
  const bf16 *q, *k, *v, *dout;
  bf16 *dq, *dk, *dv;
  const float *lse, *delta;
  size_t ld_q, ld_kv, ld_dq, ld_dkv; /* row strides in elements */
  int B, Tq, Tk, C, NH, HS;
  long long q_pos0, k_pos0;
  float scale;
  bool accumulate; /* backward: += into dq, dk, dv (block op) or = (whole sequence) */
};

/* keys 0 .. n−1 are visible to query i: n = clamp(q_pos0 + i − k_pos0 + 1, 0, Tk) */
__device__ __forceinline__ int visible_keys(const att_args &a, int i) {
  const long long n = a.q_pos0 + i - a.k_pos0 + 1;
  return n < 0 ? 0 : n > a.Tk ? a.Tk : (int)n;
}

template <int G> __device__ __forceinline__ float group_sum(float v) {
#pragma unroll
  for (int o = G / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v; /* every lane of the group holds the same bits (commutative pairs) */
}

template <int W> __device__ __forceinline__ float dot_slice(const float (&x)[W], const float *y) {
  const float4 *y4 = reinterpret_cast<const float4 *>(y);
  float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
  for (int d = 0; d < W / 4; d++) {
    const float4 t = y4[d];
    s0 = fmaf(x[4 * d], t.x, s0);
    s1 = fmaf(x[4 * d + 1], t.y, s1);
    s0 = fmaf(x[4 * d + 2], t.z, s0);
    s1 = fmaf(x[4 * d + 3], t.w, s1);
  }
  return s0 + s1;
}

/* x += a·y */
template <int W> __device__ __forceinline__ void axpy_slice(float (&x)[W], float a, const float *y) {
  const float4 *y4 = reinterpret_cast<const float4 *>(y);
#pragma unroll
  for (int d = 0; d < W / 4; d++) {
    const float4 t = y4[d];
    x[4 * d] = fmaf(a, t.x, x[4 * d]);
    x[4 * d + 1] = fmaf(a, t.y, x[4 * d + 1]);
    x[4 * d + 2] = fmaf(a, t.z, x[4 * d + 2]);
    x[4 * d + 3] = fmaf(a, t.w, x[4 * d + 3]);
  }
}

/* this thread's slice (columns g·W .. g·W + W − 1) of row `row` of a
 * [rows, ld] bf16 matrix, times factor; zeros past HS or for an invalid row */
template <int W>
__device__ __forceinline__ void load_slice(float (&x)[W], const bf16 *base, size_t ld, int row, bool valid, int g,
                                           int HS, float factor) {
#pragma unroll
  for (int d = 0; d < W; d++) {
    const int e = g * W + d;
    x[d] = valid && e < HS ? load(base, (size_t)row * ld + e) * factor : 0.0f;
  }
}

/* rows row0 .. row0 + TILE − 1 (those < n_rows; zeros beyond) of a bf16
 * matrix into a shared-memory tile in the padded slice layout, times factor */
template <int HS_MAX>
__device__ __forceinline__ void load_tile(float *tile, const bf16 *base, size_t ld, int row0, int n_rows, int HS,
                                          float factor) {
  using S = att_shape<HS_MAX>;
  for (int idx = threadIdx.x; idx < S::TILE * HS_MAX; idx += ATT_THREADS) {
    const int r = idx / HS_MAX, e = idx % HS_MAX, row = row0 + r;
    const float x = e < HS && row < n_rows ? load(base, (size_t)row * ld + e) * factor : 0.0f;
    tile[r * S::ROW + (e / S::W) * S::SLICE + e % S::W] = x;
  }
}

__device__ __forceinline__ void put(float *p, size_t i, float v) { p[i] = v; }
__device__ __forceinline__ void put(bf16 *p, size_t i, float v) { store(p, i, v); }
__device__ __forceinline__ void put_or_add(bf16 *p, size_t i, float v, bool accumulate) {
  store(p, i, accumulate ? load(p, i) + v : v);
}

/* out (OutT: fp32 for the block op, bf16 for the whole sequence) [B, Tq, NH, HS], lse [B, NH, Tq] */
template <int HS_MAX, typename OutT>
__global__ void __launch_bounds__(ATT_THREADS) attention_forward_kernel(att_args a, OutT *out, float *lse) {
  using S = att_shape<HS_MAX>;
  __shared__ __align__(16) float ks[S::TILE * S::ROW], vs[S::TILE * S::ROW];
  const int h = blockIdx.y, b = blockIdx.z, g = threadIdx.x % S::G;
  const int i0 = blockIdx.x * S::ROWS, i = i0 + threadIdx.x / S::G;
  const bool valid = i < a.Tq;
  const int n_vis = valid ? visible_keys(a, i) : 0;
  const size_t head = (size_t)h * a.HS;
  const bf16 *qh = a.q + (size_t)b * a.Tq * a.ld_q + head;
  const bf16 *kh = a.k + (size_t)b * a.Tk * a.ld_kv + head, *vh = a.v + (size_t)b * a.Tk * a.ld_kv + head;
  float q[S::W], acc[S::W], m = -INFINITY, l = 0.0f;
  load_slice<S::W>(q, qh, a.ld_q, i, valid, g, a.HS, a.scale);
#pragma unroll
  for (int d = 0; d < S::W; d++) acc[d] = 0.0f;
  /* the block's last row sees the most keys: tiles up to its last visible key */
  const int i_last = min(i0 + S::ROWS, a.Tq) - 1;
  const long long last = min((long long)a.Tk - 1, a.q_pos0 + i_last - a.k_pos0);
  for (int k0 = 0; k0 <= last; k0 += S::TILE) {
    __syncthreads(); /* the previous tile is consumed */
    load_tile<HS_MAX>(ks, kh, a.ld_kv, k0, a.Tk, a.HS, 1.0f);
    load_tile<HS_MAX>(vs, vh, a.ld_kv, k0, a.Tk, a.HS, 1.0f);
    __syncthreads();
    const int n_keys = (int)min((long long)S::TILE, last + 1 - k0);
    for (int r = 0; r < n_keys; r++) { /* uniform over the block: the shuffles see every lane */
      const float s = group_sum<S::G>(dot_slice<S::W>(q, &ks[r * S::ROW + g * S::SLICE]));
      if (k0 + r < n_vis) {
        if (s > m) { /* a new running max: rescale what was summed (exp(−∞) = 0 at the first key) */
          const float c = expf(m - s);
          l *= c;
#pragma unroll
          for (int d = 0; d < S::W; d++) acc[d] *= c;
          m = s;
        }
        const float p = expf(s - m);
        l += p;
        axpy_slice<S::W>(acc, p, &vs[r * S::ROW + g * S::SLICE]);
      }
    }
  }
  if (!valid) return;
  const float inv = l > 0.0f ? 1.0f / l : 0.0f; /* l = 0 iff no key is visible: O = 0 */
  const size_t o = ((size_t)b * a.Tq + i) * a.C + head;
#pragma unroll
  for (int d = 0; d < S::W; d++)
    if (g * S::W + d < a.HS) put(out, o + g * S::W + d, acc[d] * inv);
  if (g == 0) lse[((size_t)b * a.NH + h) * a.Tq + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

/* dK, dV of ROWS key rows over every query that sees them */
template <int HS_MAX>
__global__ void __launch_bounds__(ATT_THREADS) attention_dkdv_kernel(att_args a) {
  using S = att_shape<HS_MAX>;
  __shared__ __align__(16) float qs[S::TILE * S::ROW], dos[S::TILE * S::ROW];
  __shared__ float lse_s[S::TILE], delta_s[S::TILE];
  const int h = blockIdx.y, b = blockIdx.z, g = threadIdx.x % S::G;
  const int j0 = blockIdx.x * S::ROWS, j = j0 + threadIdx.x / S::G;
  const bool valid = j < a.Tk;
  const size_t head = (size_t)h * a.HS;
  const bf16 *qh = a.q + (size_t)b * a.Tq * a.ld_q + head, *doh = a.dout + (size_t)b * a.Tq * a.C + head;
  const size_t kv_head = (size_t)b * a.Tk * a.ld_kv + head;
  const float *lse_h = a.lse + ((size_t)b * a.NH + h) * a.Tq, *delta_h = a.delta + ((size_t)b * a.NH + h) * a.Tq;
  float k[S::W], v[S::W], dk[S::W], dv[S::W];
  load_slice<S::W>(k, a.k + kv_head, a.ld_kv, j, valid, g, a.HS, 1.0f);
  load_slice<S::W>(v, a.v + kv_head, a.ld_kv, j, valid, g, a.HS, 1.0f);
#pragma unroll
  for (int d = 0; d < S::W; d++) dk[d] = dv[d] = 0.0f;
  const long long first_query = a.k_pos0 + j - a.q_pos0; /* the first query that sees key j */
  /* queries before the one that sees the block's first key see none of its keys */
  const long long block_first = max(0LL, a.k_pos0 + j0 - a.q_pos0);
  for (long long i0 = block_first; i0 < a.Tq; i0 += S::TILE) {
    __syncthreads();
    load_tile<HS_MAX>(qs, qh, a.ld_q, (int)i0, a.Tq, a.HS, a.scale); /* Q/√HS */
    load_tile<HS_MAX>(dos, doh, (size_t)a.C, (int)i0, a.Tq, a.HS, 1.0f);
    for (int r = threadIdx.x; r < S::TILE; r += ATT_THREADS) {
      const bool in = i0 + r < a.Tq;
      lse_s[r] = in ? lse_h[i0 + r] : -INFINITY;
      delta_s[r] = in ? delta_h[i0 + r] : 0.0f;
    }
    __syncthreads();
    const int n_q = (int)min((long long)S::TILE, a.Tq - i0);
    for (int r = 0; r < n_q; r++) {
      const float *qr = &qs[r * S::ROW + g * S::SLICE], *dor = &dos[r * S::ROW + g * S::SLICE];
      const float s = group_sum<S::G>(dot_slice<S::W>(k, qr));
      const float dp = group_sum<S::G>(dot_slice<S::W>(v, dor));
      if (valid && i0 + r >= first_query && lse_s[r] != -INFINITY) {
        const float p = expf(s - lse_s[r]), ds = p * (dp - delta_s[r]);
        axpy_slice<S::W>(dv, p, dor);
        axpy_slice<S::W>(dk, ds, qr); /* qr holds Q/√HS */
      }
    }
  }
  if (!valid) return;
  const size_t at = ((size_t)b * a.Tk + j) * a.ld_dkv + head;
#pragma unroll
  for (int d = 0; d < S::W; d++) {
    const int e = g * S::W + d;
    if (e < a.HS) {
      put_or_add(a.dk, at + e, dk[d], a.accumulate);
      put_or_add(a.dv, at + e, dv[d], a.accumulate);
    }
  }
}

/* dQ of ROWS query rows over the key tiles they see */
template <int HS_MAX>
__global__ void __launch_bounds__(ATT_THREADS) attention_dq_kernel(att_args a) {
  using S = att_shape<HS_MAX>;
  __shared__ __align__(16) float ks[S::TILE * S::ROW], vs[S::TILE * S::ROW];
  const int h = blockIdx.y, b = blockIdx.z, g = threadIdx.x % S::G;
  const int i0 = blockIdx.x * S::ROWS, i = i0 + threadIdx.x / S::G;
  const bool valid = i < a.Tq;
  const size_t head = (size_t)h * a.HS;
  const bf16 *kh = a.k + (size_t)b * a.Tk * a.ld_kv + head, *vh = a.v + (size_t)b * a.Tk * a.ld_kv + head;
  float q[S::W], dO[S::W], dq[S::W], row_lse = -INFINITY, row_delta = 0.0f;
  load_slice<S::W>(q, a.q + (size_t)b * a.Tq * a.ld_q + head, a.ld_q, i, valid, g, a.HS, a.scale);
  load_slice<S::W>(dO, a.dout + (size_t)b * a.Tq * a.C + head, (size_t)a.C, i, valid, g, a.HS, 1.0f);
#pragma unroll
  for (int d = 0; d < S::W; d++) dq[d] = 0.0f;
  if (valid) {
    row_lse = a.lse[((size_t)b * a.NH + h) * a.Tq + i];
    row_delta = a.delta[((size_t)b * a.NH + h) * a.Tq + i];
  }
  const int n_vis = valid && row_lse != -INFINITY ? visible_keys(a, i) : 0;
  const int i_last = min(i0 + S::ROWS, a.Tq) - 1;
  const long long last = min((long long)a.Tk - 1, a.q_pos0 + i_last - a.k_pos0);
  for (int k0 = 0; k0 <= last; k0 += S::TILE) {
    __syncthreads();
    load_tile<HS_MAX>(ks, kh, a.ld_kv, k0, a.Tk, a.HS, 1.0f);
    load_tile<HS_MAX>(vs, vh, a.ld_kv, k0, a.Tk, a.HS, 1.0f);
    __syncthreads();
    const int n_keys = (int)min((long long)S::TILE, last + 1 - k0);
    for (int r = 0; r < n_keys; r++) {
      const float *kr = &ks[r * S::ROW + g * S::SLICE];
      const float s = group_sum<S::G>(dot_slice<S::W>(q, kr));
      const float dp = group_sum<S::G>(dot_slice<S::W>(dO, &vs[r * S::ROW + g * S::SLICE]));
      if (k0 + r < n_vis) axpy_slice<S::W>(dq, expf(s - row_lse) * (dp - row_delta), kr);
    }
  }
  if (!valid) return;
  const size_t at = ((size_t)b * a.Tq + i) * a.ld_dq + head;
#pragma unroll
  for (int d = 0; d < S::W; d++)
    if (g * S::W + d < a.HS) put_or_add(a.dq, at + g * S::W + d, dq[d] * a.scale, a.accumulate);
}

/* δ[b, h, t] = Σ_e dO ⊙ O, one warp per row */
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

/* merge (out_b, lse_b) into (out, lse), one warp per row r = (b·NH + h)·Tq + i;
 * the per-row weights in double, as the CPU op */
__global__ void attention_merge_kernel(float *out, float *lse, const float *out_b, const float *lse_b, int B,
                                       int Tq, int NH, int HS) {
  const int lane = threadIdx.x % 32;
  const size_t r = blockIdx.x * (size_t)(blockDim.x / 32) + threadIdx.x / 32;
  if (r >= (size_t)B * NH * Tq) return; /* uniform per warp */
  const size_t b = r / ((size_t)NH * Tq), h = r / Tq % NH, i = r % Tq;
  const size_t at = (b * Tq + i) * (size_t)NH * HS + h * HS;
  const double la = lse[r], lb = lse_b[r];
  if (lb == -INFINITY) return; /* the block adds nothing */
  double merged = lb;
  if (la == -INFINITY) { /* nothing so far: take the block's row, whatever out held */
    for (int e = lane; e < HS; e += 32) out[at + e] = out_b[at + e];
  } else {
    merged = fmax(la, lb) + log1p(exp(-fabs(la - lb)));
    const float wa = (float)exp(la - merged), wb = (float)exp(lb - merged);
    for (int e = lane; e < HS; e += 32) out[at + e] = wa * out[at + e] + wb * out_b[at + e];
  }
  __syncwarp(); /* every lane has read lse[r] before lane 0 replaces it */
  if (lane == 0) lse[r] = (float)merged;
}

/* the size lives in kernels/backend_sizing.c: every build has it, for the planner */
size_t cuda_attention_saved_elems(int B, int T, int NH) { return backend_sizing_cuda_saved_elems(B, T, NH); }

static int padded_head_size(int HS) {
  if (HS <= 0 || HS > 128)
    fail_local(EXIT_USER_ERROR, "the CUDA attention kernels support head sizes 1 to 128, not %d", HS);
  return HS <= 16 ? 16 : HS <= 32 ? 32 : HS <= 64 ? 64 : 128;
}

template <int HS_MAX, typename OutT> static void launch_forward(const att_args &a, OutT *out, float *lse) {
  using S = att_shape<HS_MAX>;
  const dim3 grid((unsigned)((a.Tq + S::ROWS - 1) / S::ROWS), (unsigned)a.NH, (unsigned)a.B);
  attention_forward_kernel<HS_MAX, OutT><<<grid, ATT_THREADS, 0, cuda_stream()>>>(a, out, lse);
  CUDA_CHECK_LAUNCH();
}

template <int HS_MAX> static void launch_backward(const att_args &a) {
  using S = att_shape<HS_MAX>;
  if (a.Tk > 0) { /* with no queries the loops are empty, but overwrite mode still writes zeros */
    const dim3 grid((unsigned)((a.Tk + S::ROWS - 1) / S::ROWS), (unsigned)a.NH, (unsigned)a.B);
    attention_dkdv_kernel<HS_MAX><<<grid, ATT_THREADS, 0, cuda_stream()>>>(a);
    CUDA_CHECK_LAUNCH();
  }
  if (a.Tq > 0) {
    const dim3 grid((unsigned)((a.Tq + S::ROWS - 1) / S::ROWS), (unsigned)a.NH, (unsigned)a.B);
    attention_dq_kernel<HS_MAX><<<grid, ATT_THREADS, 0, cuda_stream()>>>(a);
    CUDA_CHECK_LAUNCH();
  }
}

template <typename OutT> static void forward(const att_args &a, OutT *out, float *lse) {
  if (!a.B || !a.NH || !a.Tq) return;
  switch (padded_head_size(a.HS)) {
    case 16: launch_forward<16>(a, out, lse); break;
    case 32: launch_forward<32>(a, out, lse); break;
    case 64: launch_forward<64>(a, out, lse); break;
    default: launch_forward<128>(a, out, lse); break;
  }
}

static void backward(const att_args &a) {
  if (!a.B || !a.NH) return;
  switch (padded_head_size(a.HS)) {
    case 16: launch_backward<16>(a); break;
    case 32: launch_backward<32>(a); break;
    case 64: launch_backward<64>(a); break;
    default: launch_backward<128>(a); break;
  }
}

static void delta_rows(float *delta, const act_t *dout, const act_t *out, int B, int T, int C, int NH) {
  const size_t rows = (size_t)B * T * NH;
  if (!rows) return;
  attention_delta_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, cuda_stream()>>>(delta, as_bf16(dout), as_bf16(out), B,
                                                                               T, NH, C / NH);
  CUDA_CHECK_LAUNCH();
}

/* the whole causal sequence: q, k, v inside qkv, no offsets */
static att_args whole_sequence(const act_t *qkv, int B, int T, int C, int NH) {
  att_args a = {};
  a.q = as_bf16(qkv);
  a.k = a.q + C;
  a.v = a.q + 2 * C;
  a.ld_q = a.ld_kv = 3 * (size_t)C;
  a.B = B, a.Tq = a.Tk = T, a.C = C, a.NH = NH, a.HS = C / NH;
  a.scale = 1.0f / sqrtf((float)a.HS);
  return a;
}

void cuda_attention_forward(act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C, int NH) {
  const att_args a = whole_sequence(qkv, B, T, C, NH);
  forward(a, as_bf16(out), as_f32(saved));
}

void cuda_attention_backward(act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,
                             const f32_t *saved, int B, int T, int C, int NH) {
  if (!B || !T || !NH) return;
  float *delta = (float *)cuda_scratch((size_t)B * T * NH * sizeof(float));
  delta_rows(delta, dout, out, B, T, C, NH);
  att_args a = whole_sequence(qkv, B, T, C, NH);
  a.dout = as_bf16(dout);
  a.dq = as_bf16(dqkv);
  a.dk = a.dq + C;
  a.dv = a.dq + 2 * C;
  a.ld_dq = a.ld_dkv = 3 * (size_t)C;
  a.lse = as_f32(saved);
  a.delta = delta;
  a.accumulate = false; /* dqkv is overwritten */
  backward(a);
}

static att_args block_args(const act_t *q, const act_t *k, const act_t *v, int ld_q, int ld_kv, int B, int Tq,
                           int Tk, int C, int NH, int q_pos0, int k_pos0) {
  att_args a = {};
  a.q = as_bf16(q), a.k = as_bf16(k), a.v = as_bf16(v);
  a.ld_q = (size_t)ld_q, a.ld_kv = (size_t)ld_kv;
  a.B = B, a.Tq = Tq, a.Tk = Tk, a.C = C, a.NH = NH, a.HS = C / NH;
  a.q_pos0 = q_pos0, a.k_pos0 = k_pos0;
  a.scale = 1.0f / sqrtf((float)a.HS);
  return a;
}

void cuda_attention_block_forward(f32_t *out, f32_t *lse, const act_t *q, const act_t *k, const act_t *v, int ld_q,
                                  int ld_kv, int B, int Tq, int Tk, int C, int NH, int q_pos0, int k_pos0) {
  const att_args a = block_args(q, k, v, ld_q, ld_kv, B, Tq, Tk, C, NH, q_pos0, k_pos0);
  forward(a, as_f32(out), as_f32(lse));
}

void cuda_attention_merge(f32_t *out, f32_t *lse, const f32_t *out_b, const f32_t *lse_b, int B, int Tq, int C,
                          int NH) {
  const size_t rows = (size_t)B * NH * Tq;
  if (!rows) return;
  attention_merge_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, cuda_stream()>>>(as_f32(out), as_f32(lse),
                                                                               as_f32(out_b), as_f32(lse_b), B, Tq,
                                                                               NH, C / NH);
  CUDA_CHECK_LAUNCH();
}

void cuda_attention_delta(f32_t *delta, const act_t *dout, const act_t *out, int B, int T, int C, int NH) {
  delta_rows(as_f32(delta), dout, out, B, T, C, NH);
}

void cuda_attention_block_backward(act_t *dq, act_t *dk, act_t *dv, int ld_dq, int ld_dkv, const act_t *dout,
                                   const f32_t *delta, const f32_t *lse, const act_t *q, const act_t *k,
                                   const act_t *v, int ld_q, int ld_kv, int B, int Tq, int Tk, int C, int NH,
                                   int q_pos0, int k_pos0) {
  att_args a = block_args(q, k, v, ld_q, ld_kv, B, Tq, Tk, C, NH, q_pos0, k_pos0);
  a.dout = as_bf16(dout);
  a.dq = as_bf16(dq), a.dk = as_bf16(dk), a.dv = as_bf16(dv);
  a.ld_dq = (size_t)ld_dq, a.ld_dkv = (size_t)ld_dkv;
  a.lse = as_f32(lse), a.delta = as_f32(delta);
  a.accumulate = true;
  if (!Tq || !Tk) return; /* nothing to add */
  backward(a);
}

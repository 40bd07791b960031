/* linear_attention — causal linear attention with per-head decay, chunkwise
 * (Lightning Attention / RetNet form), and the state ops that chain pieces
 * of a sequence (LASP); the algorithm of kernels/cpu/linear_attention.c,
 * whose opening comment has the formulas. Per (b, h), λ = decay[h]:
 *   S_t = λ S_{t−1} + k_tᵀ v_t,  o_t = q_t S_t;  chunks of L rows, local i, j:
 *   D_ij = λ^{i−j}[i ≥ j], a_i = λ^{i+1}, b_j = λ^{L−1−j}, γ = λ^L,
 *   O_c = ((Q_c K_cᵀ) ⊙ D) V_c + diag(a) Q_c S_{c−1},  S_c = γ S_{c−1} + K_cᵀ diag(b) V_c.
 *
 * Forward and backward: one block of 256 threads per (b, h), sequential over
 * the chunks, with the HS×HS state (or its gradient) in fp32 shared memory
 * beside the chunk's Q, K, V (, dO) rows and one L×L score matrix. Every
 * product is a shared-memory GEMM in which a thread owns a 4×4 micro-tile
 * of the result (rows mr + u·⌈M/4⌉, columns nc + v·⌈N/4⌉: consecutive
 * threads take consecutive columns, so a warp's loads are conflict-free
 * with odd leading dimensions, and each k step is 8 loads for 16 FMAs).
 * The backward is the CPU's two sweeps in the other order: first → last,
 * recomputing S_{c−1} and storing dQ_c's term through it,
 * diag(a) dO_c S_{c−1}ᵀ, in an fp32 scratch [B, T, C]; then last → first
 * with dS (from dstate or 0), writing dV_c, dK_c and dQ_c (scratch term
 * added) once each, so every gradient is rounded to bf16 once.
 * The state ops run one block per 64 rows of every (b, h) (state_forward,
 * and dQ of state_backward) or one block per (b, h) (dstate_in, a sum over
 * all rows). state_combine is elementwise.
 *
 * chunk is a speed knob (backend_ops.h): the kernels use L = min(chunk, T, cap),
 * cap the largest of 64, 32, 16, 8 whose backward layout fits the device's
 * shared memory (64 for HS ≤ 128 on Hopper); results agree for every L up
 * to fp32 rounding. Powers of λ come from pow() in double, rounded to fp32,
 * exactly as on the CPU; the decays are not range-checked here (that would
 * need a device-to-host copy): the caller keeps λ in (0, 1].
 */
#include "cuda_common.cuh"

#define LA_THREADS 256
#define LA_ROWS 64 /* rows per block (per step) of the state ops */

/* ---- shared-memory GEMM on 4×4 micro-tiles ---- */

struct micro_tile {
  int m[4], n[4]; /* clamped into range, so loads need no test */
  bool m_ok[4], n_ok[4];
};

__device__ __forceinline__ int n_tiles(int M, int N) { return ((M + 3) / 4) * ((N + 3) / 4); }

__device__ __forceinline__ micro_tile tile_of(int t, int M, int N) {
  const int MT = (M + 3) / 4, NT = (N + 3) / 4, mr = t / NT, nc = t % NT;
  micro_tile x;
#pragma unroll
  for (int u = 0; u < 4; u++) {
    const int m = mr + u * MT, n = nc + u * NT;
    x.m_ok[u] = m < M, x.m[u] = min(m, M - 1);
    x.n_ok[u] = n < N, x.n[u] = min(n, N - 1);
  }
  return x;
}

/* acc[u][v] += Σ_k A(m_u, k)·s_k·B(k, n_v), k < K, with A(m, k) = A[TA ? k·lda + m : m·lda + k],
 * B(k, n) = B[TB ? n·ldb + k : k·ldb + n], s_k = kscale[k] when SCALED, else 1 */
template <bool TA, bool TB, bool SCALED>
__device__ __forceinline__ void mm4x4(float (&acc)[4][4], const micro_tile &x, int K, const float *A, int lda,
                                      const float *B, int ldb, const float *kscale) {
#pragma unroll 2
  for (int k = 0; k < K; k++) {
    float a[4], b[4];
    const float s = SCALED ? kscale[k] : 1.0f;
#pragma unroll
    for (int u = 0; u < 4; u++) a[u] = TA ? A[k * lda + x.m[u]] : A[x.m[u] * lda + k];
#pragma unroll
    for (int v = 0; v < 4; v++) b[v] = (TB ? B[x.n[v] * ldb + k] : B[k * ldb + x.n[v]]) * s;
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int v = 0; v < 4; v++) acc[u][v] = fmaf(a[u], b[v], acc[u][v]);
  }
}

/* ---- block-wide steps (every thread of the block calls them) ---- */

/* rows × HS bf16 values (row stride ld_src) into fp32 shared memory (row stride ld_dst) */
__device__ __forceinline__ void load_rows(float *dst, int ld_dst, const bf16 *src, size_t ld_src, int rows, int HS) {
  for (int idx = threadIdx.x; idx < rows * HS; idx += blockDim.x) {
    const int r = idx / HS, e = idx - r * HS;
    dst[r * ld_dst + e] = load(src, (size_t)r * ld_src + e);
  }
}

/* pw[n] = λ^n, n = 0..L, from pow() in double as on the CPU */
__device__ __forceinline__ void init_powers(float *pw, const float *decay, int h, int L) {
  const double lambda = decay ? (double)decay[h] : 1.0;
  for (int n = threadIdx.x; n <= L; n += blockDim.x) pw[n] = (float)pow(lambda, (double)n);
}

/* X = (A Bᵀ) ⊙ D on L×L (A, B: L rows of HS, stride ld): X_ij = λ^{i−j}·a_i·b_j for i ≥ j, 0 above */
__device__ __forceinline__ void masked_scores(float *X, int ldx, const float *A, const float *B, int ld, int L,
                                              int HS, const float *pw) {
  for (int t = threadIdx.x; t < n_tiles(L, L); t += blockDim.x) {
    const micro_tile x = tile_of(t, L, L);
    float acc[4][4] = {};
    mm4x4<false, true, false>(acc, x, HS, A, ld, B, ld, nullptr);
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int v = 0; v < 4; v++)
        if (x.m_ok[u] && x.n_ok[v]) {
          const int i = x.m[u], j = x.n[v];
          X[i * ldx + j] = i >= j ? acc[u][v] * pw[i - j] : 0.0f;
        }
  }
}

/* S (HS×HS, stride lds) = γ·S + Aᵀ diag(s) B, A and B: L rows of HS (stride ld).
 * The state step (A = K_c, B = V_c, s = b, γ = λ^L) and the dS step
 * (A = Q_c, B = dO_c, s = a, γ = λ^L) have this form. */
__device__ __forceinline__ void state_step(float *S, int lds, const float *A, const float *B, int ld, int L, int HS,
                                           const float *s, float gamma) {
  for (int t = threadIdx.x; t < n_tiles(HS, HS); t += blockDim.x) {
    const micro_tile x = tile_of(t, HS, HS);
    float acc[4][4] = {};
    mm4x4<true, false, true>(acc, x, L, A, ld, B, ld, s);
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int v = 0; v < 4; v++)
        if (x.m_ok[u] && x.n_ok[v]) {
          float *p = &S[x.m[u] * lds + x.n[v]];
          *p = gamma * *p + acc[u][v];
        }
  }
}

/* A chunk's dV or dK, rows t0 .. t0 + Lc − 1 of dst (stride ld), rounded to
 * bf16 once: dst = Xᵀ A + diag(b) B·op(dS) (the second term left out while
 * dS is zero), with X the L×L scores (stride XP) and A, B, dS in shared
 * memory (stride HSP):
 *   dV_c = Pᵀ dO_c + diag(b) K_c dS_c    (X = P, A = dO_c, B = K_c, op = identity)
 *   dK_c = Aᵀ Q_c + diag(b) V_c dS_cᵀ    (X = A, A = Q_c, B = V_c, op = transpose) */
template <bool TRANSPOSE_DS>
__device__ __forceinline__ void chunk_kv_gradient(bf16 *dst, size_t ld, int t0, int Lc, int HS, const float *X,
                                                  int XP, const float *A, const float *B, const float *dS, int HSP,
                                                  const float *b, bool ds_zero) {
  for (int t = threadIdx.x; t < n_tiles(Lc, HS); t += LA_THREADS) {
    const micro_tile x = tile_of(t, Lc, HS);
    float acc[4][4] = {}, through[4][4] = {};
    mm4x4<true, false, false>(acc, x, Lc, X, XP, A, HSP, nullptr);
    if (!ds_zero) mm4x4<false, TRANSPOSE_DS, false>(through, x, HS, B, HSP, dS, HSP, nullptr);
#pragma unroll
    for (int u = 0; u < 4; u++)
#pragma unroll
      for (int w = 0; w < 4; w++)
        if (x.m_ok[u] && x.n_ok[w])
          store(dst, (size_t)(t0 + x.m[u]) * ld + x.n[w], acc[u][w] + b[x.m[u]] * through[u][w]);
  }
}

/* shared-memory floats of the chunk kernels: the state, n_row_tiles L×HS
 * tiles, the L×L scores, λ^0..λ^L and b */
static size_t chunk_smem_bytes(int HS, int L, int n_row_tiles) {
  const size_t HSP = (size_t)(HS | 1), XP = (size_t)(L | 1);
  return (HS * HSP + n_row_tiles * (size_t)L * HSP + (size_t)L * XP + 2 * (size_t)L + 1) * sizeof(float);
}

/* ---- forward ---- */

__global__ void __launch_bounds__(LA_THREADS)
    linear_attention_forward_kernel(bf16 *out, float *state, const bf16 *qkv, const float *decay, int T, int C,
                                    int NH, int HS, int L) {
  extern __shared__ float smem[];
  const int h = blockIdx.x, b = blockIdx.y, HSP = HS | 1, XP = L | 1;
  float *S = smem, *Qs = S + HS * HSP, *Ks = Qs + L * HSP, *Vs = Ks + L * HSP, *X = Vs + L * HSP;
  float *pw = X + L * XP, *bv = pw + L + 1;
  const size_t ld = 3 * (size_t)C;
  const bf16 *q = qkv + (size_t)b * T * ld + (size_t)h * HS, *k = q + C, *v = q + 2 * C;
  bf16 *o = out + (size_t)b * T * C + (size_t)h * HS;
  init_powers(pw, decay, h, L);
  for (int e = threadIdx.x; e < HS * HSP; e += LA_THREADS) S[e] = 0.0f;
  bool s_zero = true;
  for (int t0 = 0; t0 < T; t0 += L) {
    const int Lc = min(L, T - t0);
    __syncthreads(); /* the previous chunk's tiles and S are consumed */
    load_rows(Qs, HSP, q + t0 * ld, ld, Lc, HS);
    load_rows(Ks, HSP, k + t0 * ld, ld, Lc, HS);
    load_rows(Vs, HSP, v + t0 * ld, ld, Lc, HS);
    for (int j = threadIdx.x; j < Lc; j += LA_THREADS) bv[j] = pw[Lc - 1 - j];
    __syncthreads();
    masked_scores(X, XP, Qs, Ks, HSP, Lc, HS, pw);
    __syncthreads();
    /* O_c = X V_c + diag(a) Q_c S_{c−1}, rounded to bf16 once */
    for (int t = threadIdx.x; t < n_tiles(Lc, HS); t += LA_THREADS) {
      const micro_tile x = tile_of(t, Lc, HS);
      float acc[4][4] = {}, inter[4][4] = {};
      mm4x4<false, false, false>(acc, x, Lc, X, XP, Vs, HSP, nullptr);
      if (!s_zero) mm4x4<false, false, false>(inter, x, HS, Qs, HSP, S, HSP, nullptr);
#pragma unroll
      for (int u = 0; u < 4; u++)
#pragma unroll
        for (int w = 0; w < 4; w++)
          if (x.m_ok[u] && x.n_ok[w])
            store(o, (size_t)(t0 + x.m[u]) * C + x.n[w], acc[u][w] + pw[x.m[u] + 1] * inter[u][w]);
    }
    if (t0 + Lc < T || state) { /* uniform over the block */
      __syncthreads();           /* every read of S_{c−1} is done */
      state_step(S, HSP, Ks, Vs, HSP, Lc, HS, bv, pw[Lc]);
      s_zero = false;
    }
  }
  if (state) {
    __syncthreads();
    float *st = state + ((size_t)b * NH + h) * HS * HS;
    for (int e = threadIdx.x; e < HS * HS; e += LA_THREADS) st[e] = S[(e / HS) * HSP + e % HS];
  }
}

/* ---- backward ---- */

/* ~80 lines, kept whole: its two sweeps share the block's shared-memory
 * layout and S; apart, each would take a dozen of the same pointers. */
__global__ void __launch_bounds__(LA_THREADS)
    linear_attention_backward_kernel(bf16 *dqkv, float *dq_inter, const bf16 *dout, const bf16 *qkv,
                                     const float *dstate, const float *decay, int T, int C, int NH, int HS, int L) {
  extern __shared__ float smem[];
  const int h = blockIdx.x, b = blockIdx.y, HSP = HS | 1, XP = L | 1;
  float *S = smem, *Qs = S + HS * HSP, *Ks = Qs + L * HSP, *Vs = Ks + L * HSP, *Ds = Vs + L * HSP;
  float *X = Ds + L * HSP, *pw = X + L * XP, *bv = pw + L + 1;
  const size_t ld = 3 * (size_t)C, head = (size_t)b * T * ld + (size_t)h * HS;
  const bf16 *q = qkv + head, *k = q + C, *v = q + 2 * C;
  bf16 *dq = dqkv + head, *dk = dq + C, *dv = dq + 2 * C;
  const bf16 *d_o = dout + (size_t)b * T * C + (size_t)h * HS;
  float *inter = dq_inter ? dq_inter + (size_t)b * T * C + (size_t)h * HS : nullptr;
  const int n_chunks = (T + L - 1) / L;
  init_powers(pw, decay, h, L);
  for (int e = threadIdx.x; e < HS * HSP; e += LA_THREADS) S[e] = 0.0f;

  /* sweep 1, first → last: S_{c−1} = γ S_{c−2} + K_{c−1}ᵀ diag(b) V_{c−1} (chunk c−1 is full),
   * then inter_c = diag(a) dO_c S_{c−1}ᵀ */
  for (int c = 1; c < n_chunks; c++) {
    const int t0 = c * L, Lc = min(L, T - t0), tp = t0 - L;
    __syncthreads();
    load_rows(Ks, HSP, k + tp * ld, ld, L, HS);
    load_rows(Vs, HSP, v + tp * ld, ld, L, HS);
    load_rows(Ds, HSP, d_o + (size_t)t0 * C, (size_t)C, Lc, HS);
    for (int j = threadIdx.x; j < L; j += LA_THREADS) bv[j] = pw[L - 1 - j];
    __syncthreads();
    state_step(S, HSP, Ks, Vs, HSP, L, HS, bv, pw[L]);
    __syncthreads();
    for (int t = threadIdx.x; t < n_tiles(Lc, HS); t += LA_THREADS) {
      const micro_tile x = tile_of(t, Lc, HS);
      float acc[4][4] = {};
      mm4x4<false, true, false>(acc, x, HS, Ds, HSP, S, HSP, nullptr);
#pragma unroll
      for (int u = 0; u < 4; u++)
#pragma unroll
        for (int w = 0; w < 4; w++)
          if (x.m_ok[u] && x.n_ok[w]) inter[(size_t)(t0 + x.m[u]) * C + x.n[w]] = pw[x.m[u] + 1] * acc[u][w];
    }
  }

  /* sweep 2, last → first, S holding dS_c = ∂L/∂S_c */
  __syncthreads();
  const float *G = dstate ? dstate + ((size_t)b * NH + h) * HS * HS : nullptr;
  for (int e = threadIdx.x; e < HS * HS; e += LA_THREADS) S[(e / HS) * HSP + e % HS] = G ? G[e] : 0.0f;
  bool ds_zero = G == nullptr;
  for (int c = n_chunks - 1; c >= 0; c--) {
    const int t0 = c * L, Lc = min(L, T - t0);
    __syncthreads();
    load_rows(Qs, HSP, q + t0 * ld, ld, Lc, HS);
    load_rows(Ks, HSP, k + t0 * ld, ld, Lc, HS);
    load_rows(Vs, HSP, v + t0 * ld, ld, Lc, HS);
    load_rows(Ds, HSP, d_o + (size_t)t0 * C, (size_t)C, Lc, HS);
    for (int j = threadIdx.x; j < Lc; j += LA_THREADS) bv[j] = pw[Lc - 1 - j];
    __syncthreads();
    masked_scores(X, XP, Qs, Ks, HSP, Lc, HS, pw); /* P = (Q Kᵀ) ⊙ D */
    __syncthreads();
    chunk_kv_gradient<false>(dv, ld, t0, Lc, HS, X, XP, Ds, Ks, S, HSP, bv, ds_zero); /* dV_c */
    __syncthreads();
    masked_scores(X, XP, Ds, Vs, HSP, Lc, HS, pw); /* A = (dO Vᵀ) ⊙ D */
    __syncthreads();
    chunk_kv_gradient<true>(dk, ld, t0, Lc, HS, X, XP, Qs, Vs, S, HSP, bv, ds_zero); /* dK_c */
    /* dQ_c = A K_c + inter_c */
    for (int t = threadIdx.x; t < n_tiles(Lc, HS); t += LA_THREADS) {
      const micro_tile x = tile_of(t, Lc, HS);
      float acc[4][4] = {};
      mm4x4<false, false, false>(acc, x, Lc, X, XP, Ks, HSP, nullptr);
#pragma unroll
      for (int u = 0; u < 4; u++)
#pragma unroll
        for (int w = 0; w < 4; w++)
          if (x.m_ok[u] && x.n_ok[w]) {
            const size_t row = (size_t)(t0 + x.m[u]);
            store(dq, row * ld + x.n[w], acc[u][w] + (c > 0 ? inter[row * C + x.n[w]] : 0.0f));
          }
    }
    if (c > 0) {
      __syncthreads(); /* dV and dK have read dS_c */
      state_step(S, HSP, Qs, Ds, HSP, Lc, HS, pw + 1, pw[Lc]); /* dS_{c−1} = γ dS_c + Q_cᵀ diag(a) dO_c */
      ds_zero = false;
    }
  }
}

/* ---- state ops ---- */

/* rows t0 .. t0 + 63 of every (b, h):
 *   forward  (out, q rows):  dst[i, e] += λ^{i+1} Σ_d src[i, d] S[d, e]
 *   backward (dq, dO rows):  dst[i, d] += λ^{i+1} Σ_e src[i, e] S[d, e] */
template <bool BACKWARD>
__global__ void __launch_bounds__(LA_THREADS)
    linear_attention_state_rows_kernel(bf16 *dst, size_t ld_dst, const bf16 *src, size_t ld_src,
                                       const float *state, const float *decay, int T, int NH, int HS) {
  extern __shared__ float smem[];
  const int h = blockIdx.y, b = blockIdx.z, t0 = blockIdx.x * LA_ROWS, HSP = HS | 1;
  const int Lr = min(LA_ROWS, T - t0);
  float *S = smem, *X = S + HS * HSP;
  const float *s_in = state + ((size_t)b * NH + h) * HS * HS;
  for (int e = threadIdx.x; e < HS * HS; e += LA_THREADS) S[(e / HS) * HSP + e % HS] = s_in[e];
  load_rows(X, HSP, src + ((size_t)b * T + t0) * ld_src + (size_t)h * HS, ld_src, Lr, HS);
  __syncthreads();
  const double lambda = decay ? (double)decay[h] : 1.0;
  bf16 *d = dst + ((size_t)b * T + t0) * ld_dst + (size_t)h * HS;
  for (int t = threadIdx.x; t < n_tiles(Lr, HS); t += LA_THREADS) {
    const micro_tile x = tile_of(t, Lr, HS);
    float acc[4][4] = {};
    mm4x4<false, BACKWARD, false>(acc, x, HS, X, HSP, S, HSP, nullptr);
#pragma unroll
    for (int u = 0; u < 4; u++) {
      const float a = lambda == 1.0 ? 1.0f : (float)pow(lambda, (double)(t0 + x.m[u] + 1));
#pragma unroll
      for (int w = 0; w < 4; w++)
        if (x.m_ok[u] && x.n_ok[w]) {
          const size_t at = (size_t)x.m[u] * ld_dst + x.n[w];
          store(d, at, load(d, at) + a * acc[u][w]);
        }
    }
  }
}

/* dstate_in[b, h] = Σ_i λ^{i+1} q_iᵀ do_i, one block per (b, h) over all rows */
__global__ void __launch_bounds__(LA_THREADS)
    linear_attention_dstate_kernel(float *dstate_in, const bf16 *dout, const bf16 *qkv, const float *decay, int T,
                                   int C, int NH, int HS) {
  extern __shared__ float smem[];
  const int h = blockIdx.x, b = blockIdx.y, HSP = HS | 1;
  float *D = smem, *Qs = D + HS * HSP, *Ds = Qs + LA_ROWS * HSP, *av = Ds + LA_ROWS * HSP;
  const double lambda = decay ? (double)decay[h] : 1.0;
  const size_t ld = 3 * (size_t)C;
  for (int e = threadIdx.x; e < HS * HSP; e += LA_THREADS) D[e] = 0.0f;
  for (int t0 = 0; t0 < T; t0 += LA_ROWS) {
    const int Lr = min(LA_ROWS, T - t0);
    __syncthreads();
    load_rows(Qs, HSP, qkv + ((size_t)b * T + t0) * ld + (size_t)h * HS, ld, Lr, HS);
    load_rows(Ds, HSP, dout + ((size_t)b * T + t0) * C + (size_t)h * HS, (size_t)C, Lr, HS);
    for (int i = threadIdx.x; i < Lr; i += LA_THREADS)
      av[i] = lambda == 1.0 ? 1.0f : (float)pow(lambda, (double)(t0 + i + 1));
    __syncthreads();
    state_step(D, HSP, Qs, Ds, HSP, Lr, HS, av, 1.0f);
  }
  __syncthreads();
  float *out = dstate_in + ((size_t)b * NH + h) * HS * HS;
  for (int e = threadIdx.x; e < HS * HS; e += LA_THREADS) out[e] = D[(e / HS) * HSP + e % HS];
}

__global__ void linear_attention_state_combine_kernel(float *state, const float *piece, const float *decay,
                                                      int n_tokens, int NH, size_t per_head, size_t n) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const int h = (int)(i / per_head % NH);
    const float f = decay ? (float)pow((double)decay[h], (double)n_tokens) : 1.0f;
    state[i] = f * state[i] + piece[i];
  }
}

/* ---- host side ---- */

static size_t device_shared_limit(void) {
  int device = 0, bytes = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
  return (size_t)bytes;
}

/* a kernel's dynamic shared memory beyond the default 48 KiB must be allowed first */
template <typename Kernel> static void allow_shared(Kernel kernel, size_t bytes, int HS) {
  if (bytes > device_shared_limit())
    fail_local(EXIT_USER_ERROR, "linear attention: head size %d needs %.0f KiB of shared memory, the GPU has %.0f",
               HS, bytes / 1024.0, device_shared_limit() / 1024.0);
  if (bytes > 48 * 1024)
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

/* the chunk rows L the kernels use (see the opening comment) */
static int chunk_rows(int chunk, int T, int HS) {
  if (chunk < 1) fail_local(EXIT_USER_ERROR, "linear attention: chunk %d < 1", chunk);
  static const int caps[] = {64, 32, 16, 8};
  const size_t limit = device_shared_limit();
  int cap = 0;
  for (size_t i = 0; i < sizeof caps / sizeof caps[0] && !cap; i++)
    if (chunk_smem_bytes(HS, caps[i], 4) <= limit) cap = caps[i];
  if (!cap) fail_local(EXIT_USER_ERROR, "linear attention: head size %d is too large for the GPU's shared memory", HS);
  int L = chunk < cap ? chunk : cap;
  if (T > 0 && T < L) L = T;
  return L;
}

void cuda_linear_attention_forward(act_t *out, f32_t *state, const act_t *qkv, const f32_t *decay, int B, int T,
                                   int C, int NH, int chunk) {
  const int HS = NH ? C / NH : 0, L = chunk_rows(chunk, T, HS);
  if (!B || !NH || (!T && !state)) return;
  const size_t bytes = chunk_smem_bytes(HS, L, 3);
  allow_shared(linear_attention_forward_kernel, bytes, HS);
  linear_attention_forward_kernel<<<dim3((unsigned)NH, (unsigned)B), LA_THREADS, bytes, cuda_stream()>>>(
      as_bf16(out), state ? as_f32(state) : nullptr, as_bf16(qkv), decay ? as_f32(decay) : nullptr, T, C, NH, HS,
      L);
  CUDA_CHECK_LAUNCH();
}

void cuda_linear_attention_backward(act_t *dqkv, const act_t *dout, const act_t *qkv, const f32_t *dstate,
                                    const f32_t *decay, int B, int T, int C, int NH, int chunk) {
  const int HS = NH ? C / NH : 0, L = chunk_rows(chunk, T, HS);
  if (!B || !NH || !T) return;
  const size_t bytes = chunk_smem_bytes(HS, L, 4);
  allow_shared(linear_attention_backward_kernel, bytes, HS);
  float *inter = T > L ? (float *)cuda_scratch((size_t)B * T * C * sizeof(float)) : nullptr;
  linear_attention_backward_kernel<<<dim3((unsigned)NH, (unsigned)B), LA_THREADS, bytes, cuda_stream()>>>(
      as_bf16(dqkv), inter, as_bf16(dout), as_bf16(qkv), dstate ? as_f32(dstate) : nullptr,
      decay ? as_f32(decay) : nullptr, T, C, NH, HS, L);
  CUDA_CHECK_LAUNCH();
}

static size_t state_rows_bytes(int HS) { return ((size_t)HS * (HS | 1) + (size_t)LA_ROWS * (HS | 1)) * sizeof(float); }

void cuda_linear_attention_state_forward(act_t *out, const act_t *qkv, const f32_t *state_in, const f32_t *decay,
                                         int B, int T, int C, int NH) {
  if (!B || !T || !NH) return;
  const int HS = C / NH;
  const size_t bytes = state_rows_bytes(HS);
  allow_shared(linear_attention_state_rows_kernel<false>, bytes, HS);
  const dim3 grid((unsigned)((T + LA_ROWS - 1) / LA_ROWS), (unsigned)NH, (unsigned)B);
  linear_attention_state_rows_kernel<false><<<grid, LA_THREADS, bytes, cuda_stream()>>>(
      as_bf16(out), (size_t)C, as_bf16(qkv), 3 * (size_t)C, as_f32(state_in), decay ? as_f32(decay) : nullptr, T,
      NH, HS);
  CUDA_CHECK_LAUNCH();
}

void cuda_linear_attention_state_backward(act_t *dqkv, f32_t *dstate_in, const act_t *dout, const act_t *qkv,
                                          const f32_t *state_in, const f32_t *decay, int B, int T, int C, int NH) {
  if (!B || !NH) return;
  const int HS = C / NH;
  const float *dec = decay ? as_f32(decay) : nullptr;
  if (T > 0) { /* dQ += diag(λ^{i+1}) dO S_inᵀ */
    const size_t bytes = state_rows_bytes(HS);
    allow_shared(linear_attention_state_rows_kernel<true>, bytes, HS);
    const dim3 grid((unsigned)((T + LA_ROWS - 1) / LA_ROWS), (unsigned)NH, (unsigned)B);
    linear_attention_state_rows_kernel<true><<<grid, LA_THREADS, bytes, cuda_stream()>>>(
        as_bf16(dqkv), 3 * (size_t)C, as_bf16(dout), (size_t)C, as_f32(state_in), dec, T, NH, HS);
    CUDA_CHECK_LAUNCH();
  }
  if (dstate_in) { /* written even when T = 0 (zeros) */
    const size_t bytes = ((size_t)HS * (HS | 1) + 2 * (size_t)LA_ROWS * (HS | 1) + LA_ROWS) * sizeof(float);
    allow_shared(linear_attention_dstate_kernel, bytes, HS);
    linear_attention_dstate_kernel<<<dim3((unsigned)NH, (unsigned)B), LA_THREADS, bytes, cuda_stream()>>>(
        as_f32(dstate_in), as_bf16(dout), as_bf16(qkv), dec, T, C, NH, HS);
    CUDA_CHECK_LAUNCH();
  }
}

void cuda_linear_attention_state_combine(f32_t *state, const f32_t *piece_state, const f32_t *decay, int n_tokens,
                                         int B, int NH, int HS) {
  const size_t per_head = (size_t)HS * HS, n = (size_t)B * NH * per_head;
  if (!n) return;
  linear_attention_state_combine_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(
      as_f32(state), as_f32(piece_state), decay ? as_f32(decay) : nullptr, n_tokens, NH, per_head, n);
  CUDA_CHECK_LAUNCH();
}

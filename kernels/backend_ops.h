/* backend_ops — every op of the backend table, declared once, each with its
 * contract (X-macros: the one place to read what an op computes).
 *
 * Each list calls X(return type, op, (parameters)) once per op, in the order
 * of struct backend. From them are generated:
 *   kernels/backend.h             the function-pointer fields of struct backend
 *   kernels/cpu/cpu_ops.h         the prototypes cpu_<op> of the compute ops
 *   kernels/cuda/cuda_common.cuh  the prototypes cuda_<op> of the compute ops
 *   kernels/cpu/backend_cpu.c,    every entry of the two tables
 *   kernels/cuda/backend_cuda.cu
 * so a table cannot miss an op or hold a function of the wrong type: both
 * are compile errors.
 *
 * Two lists, named two ways:
 *   BACKEND_RUNTIME_OPS — memory, timing marks, the device: how a backend
 *     holds its buffers and its stream. Each backend defines them as statics
 *     of its table's file, named as their field (`static void
 *     synchronize(void)`), and its table takes them by BACKEND_RUNTIME_ENTRY
 *     (`.synchronize = synchronize`). They are small, private to the table
 *     and written next to it; a backend prefix would rename two dozen
 *     statics per backend for nothing, and cuda_stream is already the
 *     cudaStream_t accessor of the CUDA op files.
 *   BACKEND_COMPUTE_OPS — the numerics: defined in the op files of
 *     kernels/cpu and kernels/cuda, so exported under the backend's prefix:
 *     cpu_gemm, cuda_gemm (entries `.gemm = cpu_gemm`).
 *
 * Adding an op: its entry in BACKEND_COMPUTE_OPS here, cpu_<op> in a file of
 * kernels/cpu, cuda_<op> in a file of kernels/cuda, and its test; the
 * struct field, both prototypes and both table entries follow.
 *
 * The conventions every op follows (what overwrites, what accumulates) and
 * the types (act_t, f32_t, ids_t, tensor_segment, segment_table) are those
 * of kernels/backend.h, which includes this file.
 */
#ifndef TESSERA_BACKEND_OPS_H
#define TESSERA_BACKEND_OPS_H

#define BACKEND_RUNTIME_OPS(X)                                                                                 \
  /* ---- memory ---- */                                                                                       \
  X(act_t *, alloc_act, (size_t n_elems, const char *what))                                                    \
  X(f32_t *, alloc_f32, (size_t n_elems, const char *what))                                                    \
  X(ids_t *, alloc_ids, (size_t n_elems, const char *what))                                                    \
  X(void, free_buffer, (void *buffer))                                                                         \
  /* Host memory the backend copies to and from fastest (pinned on CUDA,                                      \
   * plain on the CPU), for the optimizer's offloaded state; counted by the                                    \
   * memory tally like a buffer (its owner claims the kind); free_host frees. */                               \
  X(float *, alloc_host, (size_t n_elems, const char *what))                                                   \
  X(void, free_host, (float *buffer))                                                                          \
  X(void, zero_act, (act_t *x, size_t n_elems))                                                                \
  X(void, zero_f32, (f32_t *x, size_t n_elems))                                                                \
  X(void, act_from_host, (act_t *dst, const float *src, size_t n_elems))                                       \
  X(void, act_to_host, (float *dst, const act_t *src, size_t n_elems))                                         \
  X(void, f32_from_host, (f32_t *dst, const float *src, size_t n_elems))                                       \
  X(void, f32_to_host, (float *dst, const f32_t *src, size_t n_elems))                                         \
  X(void, ids_from_host, (ids_t *dst, const int32_t *src, size_t n_elems))                                     \
  /* Host view of a buffer for communication, or NULL when the backend's                                       \
   * memory is not host-addressable (then parallel/comm/device_comm stages it                                  \
   * through the host or hands it to NCCL). */                                                                 \
  X(void *, host_pointer, (void *buffer))                                                                      \
  X(void, synchronize, (void))                                                                                 \
  /* Timing marks for the per-region profile (src/model/profile.h): mark_record                                \
   * places a mark after every op issued so far; mark_elapsed_ms is the time                                   \
   * between two recorded marks, waiting for the later one. The CPU runs ops                                   \
   * as they are issued, so its mark is the clock; CUDA's is an event on the                                   \
   * stream. */                                                                                                \
  X(void *, mark_create, (void))                                                                               \
  X(void, mark_record, (void *mark))                                                                           \
  X(double, mark_elapsed_ms, (void *from, void *to))                                                           \
  X(void, mark_destroy, (void *mark))                                                                          \
                                                                                                               \
  /* ---- the device, for the communication layer and the run's report ----                                    \
   * device_count: GPUs this process sees (0 on the CPU). device_describe:                                     \
   * one line naming what computes ("NVIDIA H100 80GB HBM3, device 1 of 4").                                   \
   * device_id: a string that differs between two physical GPUs of a node                                      \
   * (the PCI bus id), so ranks can tell whether they share one; "host" on                                     \
   * the CPU. stream: the stream every op of this table runs on (a                                             \
   * cudaStream_t), which communication on other streams orders itself                                         \
   * against; NULL on the CPU, where every op has finished when it returns. */                                 \
  X(int, device_count, (void))                                                                                 \
  X(void, device_describe, (char *out, size_t out_bytes))                                                      \
  X(void, device_id, (char *out, size_t out_bytes))                                                            \
  X(void *, stream, (void))

#define BACKEND_COMPUTE_OPS(X)                                                                                 \
  /* ---- linear algebra ---- */                                                                               \
  /* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, op(X) = X or Xᵀ.                                      \
   * lda/ldb/ldc are row strides in elements of the matrices as stored. */                                     \
  X(void, gemm, (bool trans_a, bool trans_b, int M, int N, int K, float alpha, const act_t *A, int lda,        \
                 const act_t *B, int ldb, float beta, act_t *C, int ldc))                                      \
  /* The linear layer's forward with its bias, one op so that a backend may                                    \
   * fuse the bias (and GELU) into the GEMM's epilogue:                                                        \
   *   out[n, o] = Σ_i inp[n, i]·weight[o, i] + bias[o]                                                        \
   * inp [N, IC], weight [OC, IC], bias [OC], out [N, OC], all contiguous;                                     \
   * out is OVERWRITTEN. gemm_bias_gelu also applies gelu_forward's GELU:                                      \
   * pre gets the sum above (OVERWRITTEN, kept for gelu_backward) and                                          \
   * out = gelu(pre). The CPU backend calls gemm, bias_add (and                                                \
   * gelu_forward): the same bits as calling them one by one. CUDA runs one                                    \
   * cuBLASLt matmul with the epilogue, rounding each output to bf16 once                                      \
   * (out from the unrounded fp32 pre-activation). */                                                          \
  X(void, gemm_bias, (act_t *out, const act_t *inp, const act_t *weight, const act_t *bias, int N, int IC,     \
                      int OC))                                                                                 \
  X(void, gemm_bias_gelu, (act_t *out, act_t *pre, const act_t *inp, const act_t *weight, const act_t *bias,   \
                           int N, int IC, int OC))                                                             \
  /* out[n, c] += bias[c] for n < N */                                                                         \
  X(void, bias_add, (act_t *out, const act_t *bias, int N, int C))                                             \
  /* dbias[c] += sum_n dout[n, c] */                                                                           \
  X(void, bias_backward, (act_t *dbias, const act_t *dout, int N, int C))                                      \
                                                                                                               \
  /* ---- elementwise ---- */                                                                                  \
  X(void, add, (act_t *out, const act_t *a, const act_t *b, size_t n_elems))   /* out = a + b */               \
  X(void, accumulate, (act_t *dst, const act_t *src, size_t n_elems))          /* dst += src */                \
  X(void, scale, (act_t *x, float factor, size_t n_elems))                     /* x *= factor */               \
  /* dst[r·ld_dst + c] = src[r·ld_src + c] for r < rows, c < cols: a strided                                   \
   * copy of a column range (K|V out of a fused QKV row, and back) */                                          \
  X(void, copy_rows, (act_t *dst, int ld_dst, const act_t *src, int ld_src, int rows, int cols))               \
  /* dst = src rounded to act_t (to bf16, to nearest even, on CUDA; a copy on                                  \
   * the CPU): the optimizer's refresh of the compute weights from the                                         \
   * master weights, and fp32 results handed back as activations */                                            \
  X(void, cast_f32_to_act, (act_t *dst, const f32_t *src, size_t n_elems))                                     \
  /* tanh-approximated GELU (GPT-2); backward overwrites dinp */                                               \
  X(void, gelu_forward, (act_t *out, const act_t *inp, size_t n_elems))                                        \
  X(void, gelu_backward, (act_t *dinp, const act_t *inp, const act_t *dout, size_t n_elems))                   \
  /* SwiGLU (Llama's MLP gate): inp is [N, 2H], each row [gate (H) | up (H)];                                  \
   *   out[n, j] = silu(gate[n, j])·up[n, j],  silu(x) = x·σ(x),  out [N, H].                                  \
   * The backward OVERWRITES dinp [N, 2H] (gate and up halves); dinp may                                       \
   * alias inp (each gate/up pair is read before it is written), not dout. */                                  \
  X(void, swiglu_forward, (act_t *out, const act_t *inp, int N, int H))                                        \
  X(void, swiglu_backward, (act_t *dinp, const act_t *inp, const act_t *dout, int N, int H))                   \
                                                                                                               \
  /* ---- embedding: out[n,:] = wte[tokens[n] − vocab_start,:] + wpe[positions[n],:] ----                      \
   * N rows (tokens), each with its own position id, so a sequence-parallel                                    \
   * rank holding positions [t0, t0 + T) of each sequence passes t0 + t.                                       \
   * wte holds the n_vocab rows [vocab_start, vocab_start + n_vocab) of the                                    \
   * vocabulary (a tensor-parallel shard); a token outside them contributes a                                  \
   * zero row, so the sum over shards is the full lookup. Backward                                             \
   * accumulates into dwte (own rows only) and dwpe (rows positions[n]; a                                      \
   * position may repeat). wpe/dwpe may be NULL, and positions is read only                                    \
   * when wpe (dwpe) is not NULL. */                                                                           \
  X(void, embedding_forward, (act_t *out, const ids_t *tokens, const ids_t *positions, const act_t *wte,       \
                              const act_t *wpe, int N, int C, int vocab_start, int n_vocab))                   \
  X(void, embedding_backward, (act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens,               \
                               const ids_t *positions, int N, int C, int vocab_start, int n_vocab))            \
                                                                                                               \
  /* ---- LayerNorm over the last dimension C of N rows ----                                                   \
   *   rstd[n] = 1/sqrt(var_c(inp[n,c]) + eps)   (biased variance)                                             \
   * mean and rstd (N each) are saved for the backward, which needs no eps.                                    \
   * eps is the model's (1e-5 for GPT-2); a backend computing in fp32 rounds                                   \
   * it to float. Backward accumulates into dinp, dweight and dbias. */                                        \
  X(void, layernorm_forward, (act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp, const act_t *weight,     \
                              const act_t *bias, int N, int C, double eps))                                    \
  X(void, layernorm_backward, (act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout, const act_t *inp, \
                               const act_t *weight, const f32_t *mean, const f32_t *rstd, int N, int C))       \
                                                                                                               \
  /* ---- RMSNorm over the last dimension C of N rows (eps as LayerNorm's) ----                                \
   *   rstd[n] = 1/sqrt(mean_c(inp[n,c]²) + eps),  out = inp·rstd[n]·weight[c]                                 \
   * weight may be NULL (no weight: out = inp·rstd). rstd (N, f32) is saved                                    \
   * for the backward. Backward ACCUMULATES into dinp (the residual stream's                                   \
   * gradient, as layernorm_backward) and into dweight (NULL when weight is                                    \
   * NULL). */                                                                                                 \
  X(void, rmsnorm_forward, (act_t *out, f32_t *rstd, const act_t *inp, const act_t *weight, int N, int C,     \
                            double eps))                                                                       \
  X(void, rmsnorm_backward, (act_t *dinp, act_t *dweight, const act_t *dout, const act_t *inp,                 \
                             const act_t *weight, const f32_t *rstd, int N, int C))                            \
                                                                                                               \
  /* ---- causal multi-head softmax attention ----                                                             \
   * qkv is [B, T, 3, NH, HS] (C = NH*HS); out is [B, T, NH, HS].                                              \
   * `saved` holds what the backward needs; its size in f32 elements is                                        \
   * attention_saved_elems(B, T, NH) (the CPU backend keeps probabilities,                                     \
   * a flash kernel keeps log-sum-exp rows). The backward also gets the                                        \
   * forward's `out` (a flash backward needs rowsum(dout ⊙ out)); it                                           \
   * overwrites dqkv. */                                                                                       \
  X(size_t, attention_saved_elems, (int B, int T, int NH))                                                     \
  X(void, attention_forward, (act_t *out, f32_t *saved, const act_t *qkv, int B, int T, int C, int NH))        \
  X(void, attention_backward, (act_t *dqkv, const act_t *dout, const act_t *out, const act_t *qkv,             \
                               const f32_t *saved, int B, int T, int C, int NH))                               \
                                                                                                               \
  /* ---- rotary position embedding (RoPE), in place on qkv rows ----                                          \
   * qkv is [N, 3, NH, HS] (rows [N, 3C]); the q and k parts of every head                                     \
   * are rotated, v is untouched. Half-split pairing (GPT-NeoX, Hugging Face                                   \
   * Llama): for i < HS/2 the pair (x[i], x[i + HS/2]) of a head turns by                                      \
   *   angle = positions[n] · theta^(−2i/HS)         (theta e.g. 10000)                                        \
   *   x[i] ← x[i]·cos − x[i+HS/2]·sin,  x[i+HS/2] ← x[i+HS/2]·cos + x[i]·sin.                                 \
   * HS must be even. The backward rotates dq and dk in place by −angle (the                                   \
   * rotation's transpose); dv is untouched. The CPU backend computes angles                                   \
   * and their cos/sin in double. */                                                                           \
  X(void, rope_forward, (act_t *qkv, const ids_t *positions, int N, int C, int NH, float theta))               \
  X(void, rope_backward, (act_t *dqkv, const ids_t *positions, int N, int C, int NH, float theta))             \
                                                                                                               \
  /* ---- softmax attention on blocks of keys (sequence parallelism) ----                                      \
   * FlashAttention's decomposition: a query block meets the key blocks one at                                 \
   * a time (ring attention, or the all-gathered K/V cut in blocks), the                                       \
   * partial results are merged with their log-sum-exp, and the backward                                       \
   * revisits each block with the merged (global) lse. HS = C/NH, scale 1/√HS.                                 \
   *                                                                                                           \
   * attention_block_forward: query row (b, i), i < Tq, of head h is at                                        \
   *   q + (b·Tq + i)·ld_q + h·HS; key and value row (b, j), j < Tk, at                                        \
   *   k (v) + (b·Tk + j)·ld_kv + h·HS. So q, k, v may point into a qkv buffer                                 \
   *   (ld 3C) or a packed [B, Tk, 2, NH, HS] K/V buffer (ld 2C, v = k + C).                                   \
   *   Key j is visible to query i iff k_pos0 + j ≤ q_pos0 + i (causal over                                    \
   *   global positions). OVERWRITES                                                                           \
   *     out f32 [B, Tq, NH, HS] = softmax over the visible keys of q·kᵀ/√HS, times V                          \
   *     lse f32 [B, NH, Tq]     = log Σ_visible exp(q·kᵀ/√HS)                                                 \
   *   A row with no visible key gets lse = −INFINITY and out = 0.                                             \
   * attention_merge: merges a block result (out_b, lse_b) into an                                             \
   *   accumulator (out, lse), in place, per row:                                                              \
   *     lse' = max(lse, lse_b) + log1p(exp(−|lse − lse_b|))                                                   \
   *     out' = e^{lse − lse'}·out + e^{lse_b − lse'}·out_b                                                    \
   *   where lse_b = −∞ leaves the row as it is and lse = −∞ copies the block's                                \
   *   row (whatever out held). Start from the first block's result or from                                    \
   *   lse = −∞. Merging is commutative and associative up to rounding.                                        \
   * attention_delta: delta f32 [B, NH, T][b,h,i] = Σ_e dout[b,i,h,e]·out[b,i,h,e]                             \
   *   (OVERWRITTEN), out being the merged output: FlashAttention-2's rowsum.                                  \
   * attention_block_backward: with P = exp(S − lse) for the visible keys (0                                   \
   *   otherwise), S = q·kᵀ/√HS and lse the GLOBAL (merged) one,                                               \
   *     dP = dO·Vᵀ,  dS = P ⊙ (dP − delta),                                                                   \
   *     dQ += dS·K/√HS,  dK += dSᵀ·Q/√HS,  dV += Pᵀ·dO                                                        \
   *   ACCUMULATED into dq (rows like q, stride ld_dq) and dk, dv (rows like                                   \
   *   k, stride ld_dkv); dout is [B, Tq, NH, HS]. Summed over a partition of                                  \
   *   the keys (and of the queries) into blocks, forward (merged) and backward                                \
   *   equal attention_forward/attention_backward on the whole sequence. */                                    \
  X(void, attention_block_forward, (f32_t *out, f32_t *lse, const act_t *q, const act_t *k, const act_t *v,    \
                                    int ld_q, int ld_kv, int B, int Tq, int Tk, int C, int NH, int q_pos0,     \
                                    int k_pos0))                                                               \
  X(void, attention_merge, (f32_t *out, f32_t *lse, const f32_t *out_b, const f32_t *lse_b, int B, int Tq,     \
                            int C, int NH))                                                                    \
  X(void, attention_delta, (f32_t *delta, const act_t *dout, const act_t *out, int B, int T, int C, int NH))   \
  X(void, attention_block_backward, (act_t *dq, act_t *dk, act_t *dv, int ld_dq, int ld_dkv,                   \
                                     const act_t *dout, const f32_t *delta, const f32_t *lse, const act_t *q,  \
                                     const act_t *k, const act_t *v, int ld_q, int ld_kv, int B, int Tq,       \
                                     int Tk, int C, int NH, int q_pos0, int k_pos0))                           \
                                                                                                               \
  /* ---- causal linear attention with per-head decay, chunkwise ----                                          \
   * qkv is [B, T, 3, NH, HS] (C = NH·HS), out [B, T, NH, HS]; no feature map,                                 \
   * no scale, no normaliser (the model adds a norm after). Per (b, h), with                                   \
   * λ = decay[h] ∈ (0, 1] (decay f32 [NH], or NULL: λ = 1 for every head)                                     \
   * and the state S [HS(d, from k), HS(e, from v)] AFTER each token:                                          \
   *   S_t = λ·S_{t−1} + k_tᵀ v_t,   o_t = q_t·S_t,                                                            \
   * i.e. o_t = Σ_{s≤t} λ^{t−s} (q_t·k_s) v_s. States are f32                                                  \
   * [B, NH, HS, HS]. The ops work on a "piece": rows of one contiguous range                                  \
   * of T positions of each of the B sequences; i, j below index the piece's                                   \
   * rows from 0, and "zero start" means the state entering the piece is 0.                                    \
   * A whole sequence on one rank is linear_attention_forward alone. A                                         \
   * sequence cut in pieces p0, p1, … (sequence parallelism, LASP) is                                          \
   * forward on each piece, then state_forward with S_in = the combined state                                  \
   * of the earlier pieces (S_in(p+1) = state_combine(S_in(p), M_p, T_p)).                                     \
   *                                                                                                           \
   * linear_attention_forward: OVERWRITES out with the piece's output from a                                   \
   *   zero start and state (may be NULL) with the state after the piece's                                     \
   *   last token from a zero start, M = Σ_j λ^{T−1−j} k_jᵀ v_j. Chunkwise:                                    \
   *   chunks of `chunk` rows (≥ 1; T need not be a multiple, the last chunk                                   \
   *   is shorter): intra-chunk ((Q Kᵀ) ⊙ D) V, D_ij = λ^{i−j}[i ≥ j], plus                                    \
   *   inter-chunk diag(λ^{i+1}) Q S_prev; never the T×T form. chunk is a                                      \
   *   speed knob: results agree for every chunk up to fp32 rounding.                                          \
   * linear_attention_state_forward: out += diag(λ^{i+1}) Q S_in: the                                          \
   *   contribution of the state S_in [B, NH, HS, HS] entering the piece.                                      \
   * linear_attention_backward: OVERWRITES dqkv [B, T, 3C] with the gradient                                   \
   *   of the piece's zero-start computation given dout [B, T, C], plus, when                                  \
   *   dstate (G = ∂L/∂(state after the piece's last token), [B, NH, HS, HS])                                  \
   *   is not NULL, the terms through that state:                                                              \
   *     dK += diag(λ^{T−1−j}) V Gᵀ,  dV += diag(λ^{T−1−j}) K G.                                               \
   * linear_attention_state_backward: the backward of state_forward:                                           \
   *     dQ += diag(λ^{i+1}) dO S_inᵀ   (ACCUMULATES into the q part of dqkv;                                  \
   *                                    the k and v parts are not touched)                                     \
   *     dstate_in = Σ_i λ^{i+1} q_iᵀ do_i   (OVERWRITTEN: ∂L/∂S_in; may be NULL)                              \
   * linear_attention_state_combine: state = λ^{n_tokens}·state + piece_state,                                 \
   *   in place, per head (one Horner step of LASP). It serves both scans:                                     \
   *   forward, S_out = λ^{T_p} S_in + M_p chains the states of pieces in                                      \
   *   position order; backward, G_{p−1} = λ^{T_p} G_p + dstate_in(p) chains                                   \
   *   the state gradients from the last piece down (G_p: gradient of the                                      \
   *   state after piece p, T_p its tokens). No separate dstate op exists. */                                  \
  X(void, linear_attention_forward, (act_t *out, f32_t *state, const act_t *qkv, const f32_t *decay, int B,    \
                                     int T, int C, int NH, int chunk))                                         \
  X(void, linear_attention_state_forward, (act_t *out, const act_t *qkv, const f32_t *state_in,                \
                                           const f32_t *decay, int B, int T, int C, int NH))                   \
  X(void, linear_attention_backward, (act_t *dqkv, const act_t *dout, const act_t *qkv, const f32_t *dstate,   \
                                      const f32_t *decay, int B, int T, int C, int NH, int chunk))             \
  X(void, linear_attention_state_backward, (act_t *dqkv, f32_t *dstate_in, const act_t *dout,                  \
                                            const act_t *qkv, const f32_t *state_in, const f32_t *decay,       \
                                            int B, int T, int C, int NH))                                      \
  X(void, linear_attention_state_combine, (f32_t *state, const f32_t *piece_state, const f32_t *decay,         \
                                           int n_tokens, int B, int NH, int HS))                               \
                                                                                                               \
  /* ---- softmax cross-entropy over a vocabulary split in shards ----                                         \
   * logits[N, V_stride] holds this shard's columns: vocabulary ids                                            \
   * [vocab_start, vocab_start + V); columns V..V_stride−1 are padding. Three                                  \
   * phases, with a reduction over the shards between them (none when there                                    \
   * is one shard), so the full logits are never gathered:                                                     \
   *   1. row_max[n]   = max over the shard's columns             (then MAX)                                   \
   *   2. stats[2n]    = Σ exp(logit − row_max[n]) over the shard,                                             \
   *      stats[2n+1]  = the target's logit if this shard holds it, else 0 (then SUM)                          \
   *   3. losses[n] = log(stats[2n]) + row_max[n] − stats[2n+1]; if                                            \
   *      dlogits_scale ≠ 0 the logits become IN PLACE                                                         \
   *      (softmax − onehot)·dlogits_scale, padding columns 0.                                                 \
   * Targets < 0 are ignored: loss 0, zero gradient. */                                                        \
  X(void, crossentropy_max, (f32_t *row_max, const act_t *logits, int N, int V, int V_stride))                 \
  X(void, crossentropy_sumexp, (f32_t *stats, const act_t *logits, const f32_t *row_max, const ids_t *targets, \
                                int N, int V, int V_stride, int vocab_start))                                  \
  X(void, crossentropy_finish, (f32_t *losses, act_t *logits, const f32_t *row_max, const f32_t *stats,        \
                                const ids_t *targets, int N, int V, int V_stride, int vocab_start,             \
                                float dlogits_scale))                                                          \
                                                                                                               \
  /* ---- optimizer ----                                                                                       \
   * AdamW on one contiguous range: master (fp32) is updated from grad * grad_scale;                           \
   * m and v are the moments; step_t counts from 1 for bias correction.                                        \
   * The compute copy of the weights is refreshed with cast_f32_to_act after. */                               \
  X(void, adamw, (f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n_elems, float lr, float beta1, \
                  float beta2, float eps, float weight_decay, float grad_scale, int64_t step_t))               \
  /* sum of squares in double, for the global gradient norm */                                                 \
  X(double, sum_squares, (const act_t *x, size_t n_elems))                                                     \
                                                                                                               \
  /* ---- multi-tensor optimizer ops: one pass (one launch) over a segment list ----                           \
   * segments_create copies n_segments ≥ 0 segments into a table the ops                                       \
   * read (a group outside [0, SEGMENT_MAX_GROUPS) or overlapping segments                                     \
   * are an internal error); segments_free releases it (NULL is fine).                                         \
   * adamw_multi: adamw on every segment of the table, with the segment's                                      \
   *   weight decay: each element gets exactly adamw's fp32 arithmetic, so                                     \
   *   the result equals one adamw call per segment, bit for bit.                                              \
   * sum_squares_multi: sums_by_group[g] = Σ x² over the segments of group g,                                  \
   *   for g < n_groups (OVERWRITTEN; every segment's group must be                                            \
   *   < n_groups). Each x² is exact in double (x has at most 24 significant                                   \
   *   bits); sums are double, so the relative error is at most                                                \
   *   n_elems·2⁻⁵³ ≈ 1.4e-8 for 124M elements, and the result does not                                        \
   *   depend on timing. On the CPU each segment is summed as sum_squares                                      \
   *   sums it and the segment sums are added in table order, so the result                                    \
   *   equals Σ of sum_squares per segment, bit for bit. On CUDA: one                                          \
   *   kernel, per-block partials per group, ONE device-to-host copy, the                                      \
   *   partials added on the host in block order. */                                                           \
  X(segment_table *, segments_create, (const tensor_segment *segments, int n_segments))                        \
  X(void, segments_free, (segment_table *table))                                                               \
  X(void, adamw_multi, (f32_t *master, const act_t *grad, f32_t *m, f32_t *v, const segment_table *segments,   \
                        float lr, float beta1, float beta2, float eps, float grad_scale, int64_t step_t))      \
  X(void, sum_squares_multi, (const act_t *x, const segment_table *segments, double *sums_by_group,            \
                              int n_groups))

/* The runtime entries of a table: `.op = op`, the table file's own static. */
#define BACKEND_RUNTIME_ENTRY(ret, op, params) .op = op,

#endif

/* embedding — token plus position embedding over a vocabulary shard:
 *   out[n,:] = wte[tokens[n] − vocab_start,:] + wpe[positions[n],:]
 * Forward: one thread per output element. Backward: each thread owns one
 * channel and walks the rows in order, scattering into the table row each
 * id names (token rows of this shard into dwte, position rows into dwpe), so
 * every row is summed in the same order on every run (deterministic, no
 * atomics) and no two threads touch one element. */
#include <climits>

#include "cuda_common.cuh"

__global__ void embedding_forward_kernel(bf16 *out, const int32_t *tokens, const int32_t *positions,
                                         const bf16 *wte, const bf16 *wpe, int N, int C, int vocab_start,
                                         int n_vocab) {
  const size_t n = (size_t)N * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t r = i / C;
    const int c = (int)(i % C);
    const int row = tokens[r] - vocab_start;
    float v = row >= 0 && row < n_vocab ? load(wte, (size_t)row * C + c) : 0.0f;
    if (wpe) v += load(wpe, (size_t)positions[r] * C + c);
    store(out, i, v);
  }
}

/* table[ids[r] − row_start, :] += dout[r, :] for the ids in [row_start, row_start + n_rows) */
__global__ void embedding_scatter_kernel(bf16 *table, const bf16 *dout, const int32_t *ids, int N, int C,
                                         int row_start, int n_rows) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int r = 0; r < N; r++) {
    const int row = ids[r] - row_start;
    if (row < 0 || row >= n_rows) continue;
    const size_t at = (size_t)row * C + c;
    store(table, at, load(table, at) + load(dout, (size_t)r * C + c));
  }
}

void cuda_embedding_forward(act_t *out, const ids_t *tokens, const ids_t *positions, const act_t *wte,
                            const act_t *wpe, int N, int C, int vocab_start, int n_vocab) {
  const size_t n = (size_t)N * C;
  if (!n) return;
  embedding_forward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(
      as_bf16(out), as_ids(tokens), wpe ? as_ids(positions) : NULL, as_bf16(wte), wpe ? as_bf16(wpe) : NULL, N,
      C, vocab_start, n_vocab);
  CUDA_CHECK_LAUNCH();
}

void cuda_embedding_backward(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens,
                             const ids_t *positions, int N, int C, int vocab_start, int n_vocab) {
  if (!N || !C) return;
  if (dwte) {
    embedding_scatter_kernel<<<(C + 127) / 128, 128, 0, cuda_stream()>>>(as_bf16(dwte), as_bf16(dout),
                                                                         as_ids(tokens), N, C, vocab_start, n_vocab);
    CUDA_CHECK_LAUNCH();
  }
  if (dwpe) { /* positions are the caller's to keep in range: no bound */
    embedding_scatter_kernel<<<(C + 127) / 128, 128, 0, cuda_stream()>>>(as_bf16(dwpe), as_bf16(dout),
                                                                         as_ids(positions), N, C, 0, INT_MAX);
    CUDA_CHECK_LAUNCH();
  }
}

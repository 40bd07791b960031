/* embedding — token plus position embedding over a vocabulary shard.
 * Forward: one thread per output element. Backward: each thread owns one
 * channel and walks the tokens in order, so every dwte row is summed in the
 * same order on every run (deterministic, no atomics) and no two threads
 * touch one element; dwpe sums over the batch per (t, c). */
#include "cuda_common.cuh"

__global__ void embedding_forward_kernel(bf16 *out, const int32_t *tokens, const bf16 *wte, const bf16 *wpe,
                                         int B, int T, int C, int vocab_start, int n_vocab) {
  const size_t n = (size_t)B * T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    const size_t bt = i / C;
    const int c = (int)(i % C), t = (int)(bt % T);
    const int row = tokens[bt] - vocab_start;
    float v = row >= 0 && row < n_vocab ? load(wte, (size_t)row * C + c) : 0.0f;
    if (wpe) v += load(wpe, (size_t)t * C + c);
    store(out, i, v);
  }
}

__global__ void embedding_backward_wte_kernel(bf16 *dwte, const bf16 *dout, const int32_t *tokens, int BT, int C,
                                              int vocab_start, int n_vocab) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  for (int bt = 0; bt < BT; bt++) {
    const int row = tokens[bt] - vocab_start;
    if (row < 0 || row >= n_vocab) continue;
    const size_t at = (size_t)row * C + c;
    store(dwte, at, load(dwte, at) + load(dout, (size_t)bt * C + c));
  }
}

__global__ void embedding_backward_wpe_kernel(bf16 *dwpe, const bf16 *dout, int B, int T, int C) {
  const size_t n = (size_t)T * C;
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
    float sum = 0;
    for (int b = 0; b < B; b++) sum += load(dout, (size_t)b * n + i);
    store(dwpe, i, load(dwpe, i) + sum);
  }
}

void cuda_embedding_forward(act_t *out, const ids_t *tokens, const act_t *wte, const act_t *wpe, int B, int T,
                            int C, int vocab_start, int n_vocab) {
  const size_t n = (size_t)B * T * C;
  if (!n) return;
  embedding_forward_kernel<<<blocks_for(n, 256), 256, 0, cuda_stream()>>>(
      as_bf16(out), as_ids(tokens), as_bf16(wte), wpe ? as_bf16(wpe) : NULL, B, T, C, vocab_start, n_vocab);
  CUDA_CHECK_LAUNCH();
}

void cuda_embedding_backward(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens, int B, int T,
                             int C, int vocab_start, int n_vocab) {
  if (!B || !T || !C) return;
  if (dwte) {
    embedding_backward_wte_kernel<<<(C + 127) / 128, 128, 0, cuda_stream()>>>(
        as_bf16(dwte), as_bf16(dout), as_ids(tokens), B * T, C, vocab_start, n_vocab);
    CUDA_CHECK_LAUNCH();
  }
  if (dwpe) {
    embedding_backward_wpe_kernel<<<blocks_for((size_t)T * C, 256), 256, 0, cuda_stream()>>>(
        as_bf16(dwpe), as_bf16(dout), B, T, C);
    CUDA_CHECK_LAUNCH();
  }
}

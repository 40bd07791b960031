/* bench_attention — forward + backward throughput of one attention layer on
 * the CPU backend at a fixed number of tokens per step, for the sequence
 * lengths given: causal softmax attention (the block kernels sequence
 * parallelism uses, which never hold T×T) against chunkwise linear
 * attention with decay. Softmax work grows with T at fixed tokens, linear
 * work does not. Prints one line per (kind, T):
 *   attention kind=softmax T=... B=... tokens_per_s=... seconds=...
 * usage: bench_attention TOKENS_PER_STEP d_model n_head chunk T... */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fill(const backend *be, act_t *x, size_t n, unsigned seed) {
  float *h = malloc(n * sizeof *h);
  for (size_t i = 0; i < n; i++) h[i] = (float)(((i + seed) * 2654435761u) % 2001) * 1e-3f - 1.0f;
  be->act_from_host(x, h, n);
  free(h);
}

int main(int argc, char **argv) {
  if (argc < 6) {
    fprintf(stderr, "usage: bench_attention TOKENS_PER_STEP d_model n_head chunk T...\n");
    return 1;
  }
  const long tokens = atol(argv[1]);
  const int C = atoi(argv[2]), NH = atoi(argv[3]), chunk = atoi(argv[4]);
  const backend *be = backend_cpu();
  float *decay_host = malloc((size_t)NH * sizeof *decay_host);
  for (int h = 0; h < NH; h++) decay_host[h] = (float)exp(-pow(2.0, -8.0 * (h + 1) / NH));
  f32_t *decay = be->alloc_f32((size_t)NH, "decay");
  be->f32_from_host(decay, decay_host, (size_t)NH);
  for (int a = 5; a < argc; a++) {
    const int T = atoi(argv[a]);
    const int B = (int)(tokens / T);
    if (T <= 0 || B <= 0) continue;
    const size_t N = (size_t)B * T;
    act_t *qkv = be->alloc_act(N * 3 * C, "qkv"), *dqkv = be->alloc_act(N * 3 * C, "dqkv");
    act_t *out = be->alloc_act(N * C, "out"), *dout = be->alloc_act(N * C, "dout");
    f32_t *out32 = be->alloc_f32(N * C, "out"), *lse = be->alloc_f32(N * NH, "lse"), *delta = be->alloc_f32(N * NH, "delta");
    fill(be, qkv, N * 3 * C, 1);
    be->scale(qkv, 0.1f, N * 3 * C);
    fill(be, dout, N * C, 7);
    for (int kind = 0; kind < 2; kind++) {
      int runs = 0;
      double start = now(), elapsed = 0;
      while (runs < 1 || (elapsed < 1.0 && runs < 20)) {
        if (kind == 0) {
          be->attention_block_forward(out32, lse, qkv, act_at(be, qkv, (size_t)C), act_at(be, qkv, 2 * (size_t)C), 3 * C,
                                      3 * C, B, T, T, C, NH, 0, 0);
          be->cast_f32_to_act(out, out32, N * C);
          be->attention_delta(delta, dout, out, B, T, C, NH);
          be->zero_act(dqkv, N * 3 * C);
          be->attention_block_backward(dqkv, act_at(be, dqkv, (size_t)C), act_at(be, dqkv, 2 * (size_t)C), 3 * C, 3 * C,
                                       dout, delta, lse, qkv, act_at(be, qkv, (size_t)C), act_at(be, qkv, 2 * (size_t)C),
                                       3 * C, 3 * C, B, T, T, C, NH, 0, 0);
        } else {
          be->linear_attention_forward(out, NULL, qkv, decay, B, T, C, NH, chunk);
          be->linear_attention_backward(dqkv, dout, qkv, NULL, decay, B, T, C, NH, chunk);
        }
        runs++;
        elapsed = now() - start;
      }
      printf("attention kind=%s T=%d B=%d tokens_per_s=%.0f seconds=%.4f\n", kind == 0 ? "softmax" : "linear", T, B,
             (double)N * runs / elapsed, elapsed / runs);
      fflush(stdout);
    }
    void *buffers[] = {qkv, dqkv, out, dout, out32, lse, delta};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) be->free_buffer(buffers[i]);
  }
  be->free_buffer(decay);
  free(decay_host);
  return 0;
}

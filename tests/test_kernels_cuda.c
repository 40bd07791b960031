/* test_kernels_cuda — every CUDA op against the CPU op (the reference that
 * test_kernels_cpu checks against finite differences and plain loops), on
 * random inputs of awkward sizes (not multiples of any tile or warp).
 * Exits 77 (skip) where the build has no CUDA backend or the machine no GPU.
 *
 * Inputs are rounded to bf16 on the host first, so both backends see the
 * same numbers; what remains is the CUDA side's bf16 storage of outputs and
 * intermediates (2^-9 relative per rounding) and fp32 summation order.
 * Tolerance, per output tensor: max|cuda − cpu| ≤ 2e-2 · max|cpu| (1e-2 for
 * forwards whose output is rounded once). A backward stores a few bf16
 * intermediates (P, dS in attention; the dinp accumulator), each costing up
 * to 2^-9 relative; 2e-2 leaves a factor ~2.5 over four such roundings while
 * a wrong index, a missing term or a wrong scale gives errors of order 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "testing.h"

static const backend *cpu, *gpu;
static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static double uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 0x2545F4914F6CDD1DULL) >> 11) * 0x1.0p-53;
}

/* round to the nearest bf16 (ties to even), kept in a float */
static float bf16_round(float x) {
  uint32_t bits;
  memcpy(&bits, &x, 4);
  bits += 0x7FFFu + ((bits >> 16) & 1u);
  bits &= 0xFFFF0000u;
  memcpy(&x, &bits, 4);
  return x;
}

static float *random_bf16(size_t n, float lo, float hi) {
  float *x = malloc((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++) x[i] = bf16_round(lo + (hi - lo) * (float)uniform());
  return x;
}

/* the same host data in both backends */
typedef struct twin {
  act_t *c, *g;
  size_t n;
} twin;
static twin twin_act(const float *host, size_t n) {
  twin t = {cpu->alloc_act(n, "test"), gpu->alloc_act(n, "test"), n};
  cpu->act_from_host(t.c, host, n);
  gpu->act_from_host(t.g, host, n);
  return t;
}
typedef struct twin32 {
  f32_t *c, *g;
  size_t n;
} twin32;
static twin32 twin_f32(const float *host, size_t n) {
  twin32 t = {cpu->alloc_f32(n, "test"), gpu->alloc_f32(n, "test"), n};
  if (host) cpu->f32_from_host(t.c, host, n), gpu->f32_from_host(t.g, host, n);
  else cpu->zero_f32(t.c, n), gpu->zero_f32(t.g, n);
  return t;
}
typedef struct twin_ids {
  ids_t *c, *g;
} twin_ids;
static twin_ids twin_tokens(const int32_t *host, size_t n) {
  twin_ids t = {cpu->alloc_ids(n, "test"), gpu->alloc_ids(n, "test")};
  cpu->ids_from_host(t.c, host, n);
  gpu->ids_from_host(t.g, host, n);
  return t;
}
static void free_twin(twin t) { cpu->free_buffer(t.c), gpu->free_buffer(t.g); }
static void free_twin32(twin32 t) { cpu->free_buffer(t.c), gpu->free_buffer(t.g); }

/* max|g − c| / max|c| */
static double relative_gap(const float *got, const float *want, size_t n) {
  double gap = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(got[i])) return INFINITY;
    gap = fmax(gap, fabs((double)got[i] - want[i]));
    scale = fmax(scale, fabs((double)want[i]));
  }
  return scale > 0 ? gap / scale : gap;
}
static void expect_act(const char *what, twin t, double tolerance) {
  float *c = malloc(t.n * sizeof *c), *g = malloc(t.n * sizeof *g);
  cpu->act_to_host(c, t.c, t.n);
  gpu->act_to_host(g, t.g, t.n);
  double gap = relative_gap(g, c, t.n);
  CHECK(gap <= tolerance, "%s: max gap %.3g of the largest value (tolerance %g)", what, gap, tolerance);
  free(c), free(g);
}
static void expect_f32(const char *what, twin32 t, double tolerance) {
  float *c = malloc(t.n * sizeof *c), *g = malloc(t.n * sizeof *g);
  cpu->f32_to_host(c, t.c, t.n);
  gpu->f32_to_host(g, t.g, t.n);
  double gap = relative_gap(g, c, t.n);
  CHECK(gap <= tolerance, "%s: max gap %.3g of the largest value (tolerance %g)", what, gap, tolerance);
  free(c), free(g);
}

#define FWD_TOL 1e-2
#define BWD_TOL 2e-2

static void test_gemm(void) {
  const int M = 37, N = 53, K = 71, pad = 5;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      const int lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
      float *a = random_bf16((size_t)(ta ? K : M) * lda, -1, 1), *b = random_bf16((size_t)(tb ? N : K) * ldb, -1, 1);
      float *c = random_bf16((size_t)M * ldc, -1, 1);
      twin A = twin_act(a, (size_t)(ta ? K : M) * lda), B = twin_act(b, (size_t)(tb ? N : K) * ldb);
      twin C = twin_act(c, (size_t)M * ldc);
      cpu->gemm(ta, tb, M, N, K, 0.7f, A.c, lda, B.c, ldb, 0.5f, C.c, ldc);
      gpu->gemm(ta, tb, M, N, K, 0.7f, A.g, lda, B.g, ldb, 0.5f, C.g, ldc);
      char what[64];
      snprintf(what, sizeof what, "gemm trans_a %d trans_b %d", ta, tb);
      expect_act(what, C, FWD_TOL);
      free_twin(A), free_twin(B), free_twin(C), free(a), free(b), free(c);
    }
}

static void test_elementwise(void) {
  const int N = 67, C = 45;
  const size_t n = (size_t)N * C;
  float *x = random_bf16(n, -3, 3), *y = random_bf16(n, -3, 3), *bias = random_bf16(C, -1, 1);
  twin X = twin_act(x, n), Y = twin_act(y, n), Bias = twin_act(bias, C), Out = twin_act(y, n);
  cpu->add(Out.c, X.c, Y.c, n), gpu->add(Out.g, X.g, Y.g, n);
  expect_act("add", Out, FWD_TOL);
  cpu->accumulate(Out.c, X.c, n), gpu->accumulate(Out.g, X.g, n);
  expect_act("accumulate", Out, FWD_TOL);
  cpu->scale(Out.c, -0.37f, n), gpu->scale(Out.g, -0.37f, n);
  expect_act("scale", Out, FWD_TOL);
  cpu->bias_add(Out.c, Bias.c, N, C), gpu->bias_add(Out.g, Bias.g, N, C);
  expect_act("bias_add", Out, FWD_TOL);
  cpu->bias_backward(Bias.c, X.c, N, C), gpu->bias_backward(Bias.g, X.g, N, C);
  expect_act("bias_backward (accumulates)", Bias, BWD_TOL);
  cpu->gelu_forward(Out.c, X.c, n), gpu->gelu_forward(Out.g, X.g, n);
  expect_act("gelu_forward", Out, FWD_TOL);
  cpu->gelu_backward(Out.c, X.c, Y.c, n), gpu->gelu_backward(Out.g, X.g, Y.g, n);
  expect_act("gelu_backward", Out, FWD_TOL);
  twin32 Master = twin_f32(x, n);
  cpu->cast_f32_to_act(Out.c, Master.c, n), gpu->cast_f32_to_act(Out.g, Master.g, n);
  expect_act("cast_f32_to_act", Out, FWD_TOL);
  double sc = cpu->sum_squares(X.c, n), sg = gpu->sum_squares(X.g, n);
  CHECK(fabs(sg - sc) <= 1e-6 * sc, "sum_squares: %.9g vs %.9g (the same bf16 values, summed in double)", sg, sc);
  free_twin(X), free_twin(Y), free_twin(Bias), free_twin(Out), free_twin32(Master);
  free(x), free(y), free(bias);
}

static void test_embedding(void) {
  /* positions start at 7 (a sequence-parallel piece) in a table of 40 rows */
  const int B = 3, T = 29, C = 41, vocab_start = 100, n_vocab = 57, n_pos = 40, pos0 = 7;
  int32_t tokens[3 * 29], positions[3 * 29];
  for (int i = 0; i < B * T; i++) {
    tokens[i] = (int32_t)(80 + uniform() * 90); /* some outside the shard */
    positions[i] = pos0 + i % T;
  }
  float *wte = random_bf16((size_t)n_vocab * C, -1, 1), *wpe = random_bf16((size_t)n_pos * C, -1, 1);
  float *dout = random_bf16((size_t)B * T * C, -1, 1);
  twin_ids tok = twin_tokens(tokens, (size_t)B * T), pos = twin_tokens(positions, (size_t)B * T);
  twin Wte = twin_act(wte, (size_t)n_vocab * C), Wpe = twin_act(wpe, (size_t)n_pos * C);
  twin Out = twin_act(dout, (size_t)B * T * C), Dout = twin_act(dout, (size_t)B * T * C);
  cpu->embedding_forward(Out.c, tok.c, pos.c, Wte.c, Wpe.c, B * T, C, vocab_start, n_vocab);
  gpu->embedding_forward(Out.g, tok.g, pos.g, Wte.g, Wpe.g, B * T, C, vocab_start, n_vocab);
  expect_act("embedding_forward", Out, FWD_TOL);
  cpu->embedding_backward(Wte.c, Wpe.c, Dout.c, tok.c, pos.c, B * T, C, vocab_start, n_vocab);
  gpu->embedding_backward(Wte.g, Wpe.g, Dout.g, tok.g, pos.g, B * T, C, vocab_start, n_vocab);
  expect_act("embedding_backward dwte (accumulates)", Wte, BWD_TOL);
  expect_act("embedding_backward dwpe (accumulates)", Wpe, BWD_TOL);
  free_twin(Wte), free_twin(Wpe), free_twin(Out), free_twin(Dout);
  cpu->free_buffer(tok.c), gpu->free_buffer(tok.g), cpu->free_buffer(pos.c), gpu->free_buffer(pos.g);
  free(wte), free(wpe), free(dout);
}

static void test_layernorm(void) {
  const int N = 75, C = 97;
  const size_t n = (size_t)N * C;
  float *x = random_bf16(n, -2, 2), *w = random_bf16(C, 0.5f, 1.5f), *b = random_bf16(C, -0.5f, 0.5f);
  float *dout = random_bf16(n, -1, 1), *dinp = random_bf16(n, -1, 1);
  twin X = twin_act(x, n), W = twin_act(w, C), Bb = twin_act(b, C), Out = twin_act(x, n);
  twin Dout = twin_act(dout, n), Dinp = twin_act(dinp, n), Dw = twin_act(w, C), Db = twin_act(b, C);
  twin32 Mean = twin_f32(NULL, N), Rstd = twin_f32(NULL, N);
  cpu->layernorm_forward(Out.c, Mean.c, Rstd.c, X.c, W.c, Bb.c, N, C);
  gpu->layernorm_forward(Out.g, Mean.g, Rstd.g, X.g, W.g, Bb.g, N, C);
  expect_act("layernorm_forward", Out, FWD_TOL);
  expect_f32("layernorm mean", Mean, 1e-5);
  expect_f32("layernorm rstd", Rstd, 1e-5);
  cpu->layernorm_backward(Dinp.c, Dw.c, Db.c, Dout.c, X.c, W.c, Mean.c, Rstd.c, N, C);
  gpu->layernorm_backward(Dinp.g, Dw.g, Db.g, Dout.g, X.g, W.g, Mean.g, Rstd.g, N, C);
  expect_act("layernorm_backward dinp (accumulates)", Dinp, BWD_TOL);
  expect_act("layernorm_backward dweight (accumulates)", Dw, BWD_TOL);
  expect_act("layernorm_backward dbias (accumulates)", Db, BWD_TOL);
  free_twin(X), free_twin(W), free_twin(Bb), free_twin(Out), free_twin(Dout), free_twin(Dinp), free_twin(Dw),
      free_twin(Db), free_twin32(Mean), free_twin32(Rstd);
  free(x), free(w), free(b), free(dout), free(dinp);
}

static void test_attention(int B, int T, int NH, int HS) {
  const int C = NH * HS;
  const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
  float *qkv = random_bf16(n_qkv, -1.5f, 1.5f), *dout = random_bf16(n_out, -1, 1);
  twin Qkv = twin_act(qkv, n_qkv), Out = twin_act(dout, n_out), Dout = twin_act(dout, n_out);
  twin Dqkv = twin_act(qkv, n_qkv);
  f32_t *saved_c = cpu->alloc_f32(cpu->attention_saved_elems(B, T, NH), "test");
  f32_t *saved_g = gpu->alloc_f32(gpu->attention_saved_elems(B, T, NH), "test");
  cpu->attention_forward(Out.c, saved_c, Qkv.c, B, T, C, NH);
  gpu->attention_forward(Out.g, saved_g, Qkv.g, B, T, C, NH);
  char what[96];
  snprintf(what, sizeof what, "attention_forward B %d T %d NH %d HS %d", B, T, NH, HS);
  expect_act(what, Out, FWD_TOL);
  /* the GPU backward reads its own forward's output, as in training */
  cpu->attention_backward(Dqkv.c, Dout.c, Out.c, Qkv.c, saved_c, B, T, C, NH);
  gpu->attention_backward(Dqkv.g, Dout.g, Out.g, Qkv.g, saved_g, B, T, C, NH);
  snprintf(what, sizeof what, "attention_backward B %d T %d NH %d HS %d", B, T, NH, HS);
  expect_act(what, Dqkv, BWD_TOL);
  free_twin(Qkv), free_twin(Out), free_twin(Dout), free_twin(Dqkv);
  cpu->free_buffer(saved_c), gpu->free_buffer(saved_g);
  free(qkv), free(dout);
}

static void test_crossentropy(void) {
  const int N = 43, V = 301, V_stride = 320, vocab_start = 1000;
  int32_t targets[43];
  for (int n = 0; n < N; n++) targets[n] = (int32_t)(vocab_start - 20 + uniform() * (V + 40)); /* some elsewhere */
  targets[5] = -1;                                                                             /* ignored */
  float *logits = random_bf16((size_t)N * V_stride, -4, 4);
  twin Z = twin_act(logits, (size_t)N * V_stride);
  twin_ids tgt = twin_tokens(targets, N);
  twin32 Max = twin_f32(NULL, N), Stats = twin_f32(NULL, 2 * (size_t)N), Loss = twin_f32(NULL, N);
  cpu->crossentropy_max(Max.c, Z.c, N, V, V_stride), gpu->crossentropy_max(Max.g, Z.g, N, V, V_stride);
  expect_f32("crossentropy_max", Max, 0);
  cpu->crossentropy_sumexp(Stats.c, Z.c, Max.c, tgt.c, N, V, V_stride, vocab_start);
  gpu->crossentropy_sumexp(Stats.g, Z.g, Max.g, tgt.g, N, V, V_stride, vocab_start);
  expect_f32("crossentropy_sumexp", Stats, 1e-4);
  cpu->crossentropy_finish(Loss.c, Z.c, Max.c, Stats.c, tgt.c, N, V, V_stride, vocab_start, 0.25f);
  gpu->crossentropy_finish(Loss.g, Z.g, Max.g, Stats.g, tgt.g, N, V, V_stride, vocab_start, 0.25f);
  expect_f32("crossentropy_finish losses", Loss, 1e-4);
  expect_act("crossentropy_finish dlogits (in place)", Z, BWD_TOL);
  free_twin(Z), free_twin32(Max), free_twin32(Stats), free_twin32(Loss);
  cpu->free_buffer(tgt.c), gpu->free_buffer(tgt.g);
  free(logits);
}

static void test_adamw(void) {
  const size_t n = 1237;
  float *w = random_bf16(n, -1, 1), *g = random_bf16(n, -0.1f, 0.1f), *m = random_bf16(n, -0.01f, 0.01f);
  float *v = random_bf16(n, 0, 1e-4f);
  twin G = twin_act(g, n);
  twin32 W = twin_f32(w, n), M = twin_f32(m, n), Vv = twin_f32(v, n);
  for (int step = 1; step <= 3; step++) {
    cpu->adamw(W.c, G.c, M.c, Vv.c, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.8f, step);
    gpu->adamw(W.g, G.g, M.g, Vv.g, n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.8f, step);
  }
  /* the same fp32 arithmetic on the same inputs: only fused multiply-adds differ */
  expect_f32("adamw master", W, 1e-6);
  expect_f32("adamw m", M, 1e-6);
  expect_f32("adamw v", Vv, 1e-6);
  free_twin(G), free_twin32(W), free_twin32(M), free_twin32(Vv);
  free(w), free(g), free(m), free(v);
}

int main(void) {
  cpu = backend_cpu();
  gpu = backend_cuda();
  if (!gpu) {
    printf("test_kernels_cuda: no CUDA backend in this build or no GPU here: skipped\n");
    return 77;
  }
  test_gemm();
  test_elementwise();
  test_embedding();
  test_layernorm();
  const int shapes[][4] = {{2, 1, 3, 64}, {2, 37, 3, 64}, {1, 130, 2, 64}, {2, 257, 2, 32}, {1, 300, 4, 16},
                           {1, 77, 2, 128}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    test_attention(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
  test_crossentropy();
  test_adamw();
  return test_summary("test_kernels_cuda");
}

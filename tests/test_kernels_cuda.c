/* test_kernels_cuda — every CUDA op against the CPU op (the reference that
 * test_kernels_cpu and test_kernels_sp check against finite differences,
 * plain loops in double and whole-sequence decompositions), on random
 * inputs of awkward sizes (not multiples of any tile or warp: T = 37, 130,
 * head sizes 24 and 40 padded inside the kernels, chunks that do not divide
 * T, key blocks at position offsets, fully masked ones included).
 * Exits 77 (skip) where the build has no CUDA backend or the machine no GPU;
 * tests/cuda_emu/run.sh runs this file against the kernels emulated on the
 * host (correctness only) where no GPU is at hand.
 *
 * Inputs are rounded to bf16 on the host first, so both backends see the
 * same numbers; what remains is the CUDA side's bf16 storage of outputs
 * (bf16 keeps 8 significant bits: one rounding costs up to 2^-8 ≈ 3.9e-3
 * of the value) and fp32 summation order (~1e-7 relative per operation).
 * Measure, per output tensor (or per q/k/v part of a qkv gradient):
 * max|cuda − cpu| / max|cpu|. Where an op ACCUMULATES, both sides first
 * subtract what the buffer held, so the measure is on what the op added
 * (its rounding is then relative to |old + added|: the old values are
 * drawn small enough that this stays under 2·2^-8 of the added part), and
 * an op that overwrote instead would be off by the old values, of order 1.
 *
 *   FWD_TOL 1e-2: outputs rounded to bf16 once (forwards; SwiGLU, RoPE,
 *     RMSNorm; linear attention, whose products, states and the
 *     backward's dQ term through the state stay fp32 until one final
 *     rounding). 2.5× the one-rounding bound.
 *   BWD_TOL 2e-2: backwards that round once or twice (a gradient accumulated
 *     into bf16, the layernorm/RMSNorm weight sums; attention's P and dS stay
 *     fp32), and the linear-attention pieces chained on the device (a piece's
 *     output and dQ are rounded, then the state term is added: two
 *     roundings). ≥ 2.5× two roundings.
 *   RING_TOL 3e-2: softmax attention in query pieces × key blocks on the
 *     device against the whole sequence on the CPU: dQ accumulates over 3
 *     key blocks (3 roundings), dK/dV over 2 pieces, and δ comes from the
 *     merged output rounded to bf16 (one more): up to 5 roundings ≈ 2e-2
 *     in the worst alignment.
 *   fp32 outputs, where no bf16 rounding happens, get fp32 tolerances: the
 *     block attention's out (1e-4) and lse (1e-5 of max|lse|; −∞ rows must
 *     match exactly), merge (1e-6: the same double weights), δ (1e-5, fp32
 *     against double over HS exact products), linear-attention states and
 *     dstate_in (1e-4: sums over ≤ 130 tokens in another order and chunking),
 *     state_combine (1e-6), RMSNorm's rstd (1e-5: fp32 sum of ≤ 97 squares).
 * A wrong index, a missing term, a mask off by one position (rows that see
 * one key change by 50%), a wrong power of λ or scale gives errors of 1e-1
 * to 1, far above every tolerance.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "random_inputs.h" /* random_array: fp32 values, for f32_t tensors (neither side rounds them) */
#include "sequence_rows.h"
#include "testing.h"

static const backend *cpu, *gpu;

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

/* every measured gap is printed, so a run on a GPU shows the margins */
static void report(const char *what, double gap, double tolerance) {
  printf("  %-100s %.2e (tolerance %.0e)\n", what, gap, tolerance);
  CHECK(gap <= tolerance, "%s: max gap %.3g of the largest value (tolerance %g)", what, gap, tolerance);
}

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
  report(what, gap, tolerance);
  free(c), free(g);
}
static void expect_f32(const char *what, twin32 t, double tolerance) {
  float *c = malloc(t.n * sizeof *c), *g = malloc(t.n * sizeof *g);
  cpu->f32_to_host(c, t.c, t.n);
  gpu->f32_to_host(g, t.g, t.n);
  double gap = relative_gap(g, c, t.n);
  report(what, gap, tolerance);
  free(c), free(g);
}

#define FWD_TOL 1e-2
#define BWD_TOL 2e-2
#define RING_TOL 3e-2

static float *host_act(const backend *be, const act_t *x, size_t n) {
  float *h = malloc((n ? n : 1) * sizeof *h);
  be->act_to_host(h, x, n);
  return h;
}
static float *host_f32(const backend *be, const f32_t *x, size_t n) {
  float *h = malloc((n ? n : 1) * sizeof *h);
  be->f32_to_host(h, x, n);
  return h;
}

/* the measure on columns [first, first + count) of rows of `width` values,
 * after subtracting `base` (what the buffer held before an accumulating op,
 * or NULL) from both sides */
static double part_gap(const float *got, const float *want, const float *base, size_t n, size_t width,
                       size_t first, size_t count) {
  double gap = 0, scale = 0;
  for (size_t i = 0; i < n; i++) {
    const size_t col = i % width;
    if (col < first || col >= first + count) continue;
    if (!isfinite(got[i])) return INFINITY;
    const double g = (double)got[i] - (base ? base[i] : 0.0), w = (double)want[i] - (base ? base[i] : 0.0);
    gap = fmax(gap, fabs(g - w));
    scale = fmax(scale, fabs(w));
  }
  return scale > 0 ? gap / scale : gap;
}
static void expect_act_part(const char *what, twin t, const float *base, size_t width, size_t first, size_t count,
                            double tolerance) {
  float *c = host_act(cpu, t.c, t.n), *g = host_act(gpu, t.g, t.n);
  report(what, part_gap(g, c, base, t.n, width, first, count), tolerance);
  free(c), free(g);
}
/* what an accumulating op added to the whole buffer */
static void expect_act_added(const char *what, twin t, const float *base, double tolerance) {
  expect_act_part(what, t, base, t.n ? t.n : 1, 0, t.n ? t.n : 1, tolerance);
}
/* the q, k and v parts of a [rows, 3C] gradient (n values), each against
 * its own largest value */
static void report_qkv(const char *what, const float *got, const float *want, const float *base, size_t n, int C,
                       double tolerance) {
  static const char *const part[3] = {"q", "k", "v"};
  for (int p = 0; p < 3; p++) {
    char name[160];
    snprintf(name, sizeof name, "%s, %s part", what, part[p]);
    report(name, part_gap(got, want, base, n, 3 * (size_t)C, (size_t)p * C, (size_t)C), tolerance);
  }
}
static void expect_qkv(const char *what, twin t, const float *base, int C, double tolerance) {
  float *c = host_act(cpu, t.c, t.n), *g = host_act(gpu, t.g, t.n);
  report_qkv(what, g, c, base, t.n, C, tolerance);
  free(c), free(g);
}
/* log-sum-exp rows: −∞ exactly where the CPU has −∞, the rest to tolerance·max|finite| */
static void expect_lse(const char *what, twin32 t, double tolerance) {
  float *c = host_f32(cpu, t.c, t.n), *g = host_f32(gpu, t.g, t.n);
  size_t mismatched = 0;
  double gap = 0, scale = 0;
  for (size_t i = 0; i < t.n; i++) {
    const bool c_inf = c[i] == -INFINITY, g_inf = g[i] == -INFINITY;
    if (c_inf || g_inf || !isfinite(g[i])) {
      mismatched += !(c_inf && g_inf);
      continue;
    }
    gap = fmax(gap, fabs((double)g[i] - c[i]));
    scale = fmax(scale, fabs((double)c[i]));
  }
  const double rel = scale > 0 ? gap / scale : gap;
  printf("  %-100s %.2e (tolerance %.0e), %zu -inf rows disagree\n", what, rel, tolerance, mismatched);
  CHECK(mismatched == 0 && rel <= tolerance,
        "%s: %zu rows disagree on -inf, max gap %.3g of the largest value (tolerance %g)", what, mismatched, rel,
        tolerance);
  free(c), free(g);
}

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

/* The linear layer's fused forward. CUDA adds the bias to the fp32
 * accumulator and rounds once (the CPU: fp32 throughout), so one bf16
 * rounding: FWD_TOL. GELU's output comes from the unrounded pre-activation
 * on CUDA and from the fp32 one on the CPU: one rounding too. Shapes: N and
 * IC not multiples of 8/16; OC = 56 (a multiple of 8, which GELU's fused
 * aux output needs) and 45 (not: the unfused fallback for GELU). Calling
 * each twice checks that the cached algorithm is reused correctly; the
 * offset buffers (an odd element offset) take the heuristic's alignment
 * preferences below 256 bytes. */
static void test_gemm_bias_at(int N, int IC, int OC, size_t offset) {
  const size_t n_inp = (size_t)N * IC, n_w = (size_t)OC * IC, n_out = (size_t)N * OC;
  float *inp = random_bf16(offset + n_inp, -1, 1), *w = random_bf16(offset + n_w, -1, 1);
  float *bias = random_bf16(offset + OC, -1, 1), *junk = random_bf16(offset + n_out, -5, 5);
  twin Inp = twin_act(inp, offset + n_inp), W = twin_act(w, offset + n_w), Bias = twin_act(bias, offset + OC);
  twin Out = twin_act(junk, offset + n_out), Pre = twin_act(junk, offset + n_out);
  char what[128];
  for (int round = 0; round < 2; round++) {
    cpu->gemm_bias(act_at(cpu, Out.c, offset), act_at(cpu, Inp.c, offset), act_at(cpu, W.c, offset),
                   act_at(cpu, Bias.c, offset), N, IC, OC);
    gpu->gemm_bias(act_at(gpu, Out.g, offset), act_at(gpu, Inp.g, offset), act_at(gpu, W.g, offset),
                   act_at(gpu, Bias.g, offset), N, IC, OC);
    snprintf(what, sizeof what, "gemm_bias N %d IC %d OC %d offset %zu, call %d", N, IC, OC, offset, round + 1);
    expect_act(what, Out, FWD_TOL);
    cpu->gemm_bias_gelu(act_at(cpu, Out.c, offset), act_at(cpu, Pre.c, offset), act_at(cpu, Inp.c, offset),
                        act_at(cpu, W.c, offset), act_at(cpu, Bias.c, offset), N, IC, OC);
    gpu->gemm_bias_gelu(act_at(gpu, Out.g, offset), act_at(gpu, Pre.g, offset), act_at(gpu, Inp.g, offset),
                        act_at(gpu, W.g, offset), act_at(gpu, Bias.g, offset), N, IC, OC);
    snprintf(what, sizeof what, "gemm_bias_gelu N %d IC %d OC %d offset %zu, call %d: pre", N, IC, OC, offset,
             round + 1);
    expect_act(what, Pre, FWD_TOL);
    snprintf(what, sizeof what, "gemm_bias_gelu N %d IC %d OC %d offset %zu, call %d: out", N, IC, OC, offset,
             round + 1);
    expect_act(what, Out, FWD_TOL);
  }
  /* the bias is per output feature (column of the row-major out): a bias of
   * 0 except feature 3 moves only column 3 (a per-row broadcast — the swap
   * done wrong — would move row 3) */
  float *single = calloc(offset + OC, sizeof *single);
  single[offset + 3] = 1.0f;
  gpu->act_from_host(Bias.g, single, offset + OC);
  gpu->gemm_bias(act_at(gpu, Out.g, offset), act_at(gpu, Inp.g, offset), act_at(gpu, W.g, offset),
                 act_at(gpu, Bias.g, offset), N, IC, OC);
  float *moved = host_act(gpu, Out.g, offset + n_out);
  gpu->gemm(false, true, N, OC, IC, 1.0f, act_at(gpu, Inp.g, offset), IC, act_at(gpu, W.g, offset), IC, 0.0f,
            act_at(gpu, Out.g, offset), OC);
  float *plain = host_act(gpu, Out.g, offset + n_out);
  /* the two GEMMs may sum in different orders on a GPU: allow FWD_TOL of the largest value */
  double scale = 1;
  for (size_t i = 0; i < n_out; i++) scale = fmax(scale, fabs(plain[offset + i]));
  size_t wrong = 0;
  for (size_t i = 0; i < n_out; i++) {
    const double d = (double)moved[offset + i] - plain[offset + i];
    wrong += fabs(d - (i % OC == 3 ? 1.0 : 0.0)) > FWD_TOL * scale;
  }
  CHECK(wrong == 0, "gemm_bias N %d OC %d: %zu elements where a bias on feature 3 alone is not +1 on column 3 only",
        N, OC, wrong);
  free(single), free(moved), free(plain);
  free_twin(Inp), free_twin(W), free_twin(Bias), free_twin(Out), free_twin(Pre);
  free(inp), free(w), free(bias), free(junk);
}

static void test_gemm_bias(void) {
  test_gemm_bias_at(37, 71, 56, 0);
  test_gemm_bias_at(37, 71, 45, 0);
  test_gemm_bias_at(37, 71, 56, 3); /* the first shape again, less aligned: a new cache entry */
  test_gemm_bias_at(53, 29, 56, 3);
  test_gemm_bias_at(1, 13, 8, 1);
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
  /* columns [7, 7+20) of X's rows into columns [3, 23) of Out's (the rest keeps scale's rounding) */
  cpu->copy_rows(act_at(cpu, Out.c, 3), C, act_at(cpu, X.c, 7), C, N - 2, 20);
  gpu->copy_rows(act_at(gpu, Out.g, 3), C, act_at(gpu, X.g, 7), C, N - 2, 20);
  expect_act("copy_rows", Out, FWD_TOL);
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

static void test_layernorm(double eps) {
  const int N = 75, C = 97;
  const size_t n = (size_t)N * C;
  float *x = random_bf16(n, -2, 2), *w = random_bf16(C, 0.5f, 1.5f), *b = random_bf16(C, -0.5f, 0.5f);
  float *dout = random_bf16(n, -1, 1), *dinp = random_bf16(n, -1, 1);
  twin X = twin_act(x, n), W = twin_act(w, C), Bb = twin_act(b, C), Out = twin_act(x, n);
  twin Dout = twin_act(dout, n), Dinp = twin_act(dinp, n), Dw = twin_act(w, C), Db = twin_act(b, C);
  twin32 Mean = twin_f32(NULL, N), Rstd = twin_f32(NULL, N);
  cpu->layernorm_forward(Out.c, Mean.c, Rstd.c, X.c, W.c, Bb.c, N, C, eps);
  gpu->layernorm_forward(Out.g, Mean.g, Rstd.g, X.g, W.g, Bb.g, N, C, eps);
  char what[64];
  snprintf(what, sizeof what, "layernorm_forward eps %g", eps);
  expect_act(what, Out, FWD_TOL);
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
  expect_qkv(what, Dqkv, NULL, C, BWD_TOL);
  free_twin(Qkv), free_twin(Out), free_twin(Dout), free_twin(Dqkv);
  cpu->free_buffer(saved_c), gpu->free_buffer(saved_g);
  free(qkv), free(dout);
}

/* ------------------------------------------------ Llama-block elementwise */

static void test_swiglu(void) {
  const int N = 67, H = 45;
  const size_t n_in = (size_t)N * 2 * H, n_out = (size_t)N * H;
  float *x = random_bf16(n_in, -4, 4), *dout = random_bf16(n_out, -1, 1), *garbage = random_bf16(n_in, -9, 9);
  twin X = twin_act(x, n_in), Dout = twin_act(dout, n_out), Out = twin_act(dout, n_out);
  twin Dinp = twin_act(garbage, n_in), Alias = twin_act(x, n_in);
  cpu->swiglu_forward(Out.c, X.c, N, H), gpu->swiglu_forward(Out.g, X.g, N, H);
  expect_act("swiglu_forward", Out, FWD_TOL);
  cpu->swiglu_backward(Dinp.c, X.c, Dout.c, N, H), gpu->swiglu_backward(Dinp.g, X.g, Dout.g, N, H);
  expect_act_part("swiglu_backward dgate (overwrites)", Dinp, NULL, 2 * (size_t)H, 0, (size_t)H, FWD_TOL);
  expect_act_part("swiglu_backward dup (overwrites)", Dinp, NULL, 2 * (size_t)H, (size_t)H, (size_t)H, FWD_TOL);
  /* dinp = inp, allowed by the contract */
  cpu->swiglu_backward(Alias.c, Alias.c, Dout.c, N, H), gpu->swiglu_backward(Alias.g, Alias.g, Dout.g, N, H);
  expect_act("swiglu_backward with dinp = inp", Alias, FWD_TOL);
  free_twin(X), free_twin(Dout), free_twin(Out), free_twin(Dinp), free_twin(Alias);
  free(x), free(dout), free(garbage);
}

static void test_rmsnorm(int N, int C, bool weighted, double eps) {
  const size_t n = (size_t)N * C;
  float *x = random_bf16(n, -2, 2), *w = random_bf16(C, 0.5f, 1.5f), *dout = random_bf16(n, -1, 1);
  float *dinp = random_bf16(n, -0.2f, 0.2f), *dw = random_bf16(C, -0.5f, 0.5f);
  twin X = twin_act(x, n), W = twin_act(w, C), Out = twin_act(dout, n), Dout = twin_act(dout, n);
  twin Dinp = twin_act(dinp, n), Dw = twin_act(dw, C);
  twin32 Rstd = twin_f32(NULL, N);
  const act_t *wc = weighted ? W.c : NULL, *wg = weighted ? W.g : NULL;
  char what[128];
  cpu->rmsnorm_forward(Out.c, Rstd.c, X.c, wc, N, C, eps), gpu->rmsnorm_forward(Out.g, Rstd.g, X.g, wg, N, C, eps);
  snprintf(what, sizeof what, "rmsnorm_forward N %d C %d %s weight, eps %g", N, C, weighted ? "with" : "without", eps);
  expect_act(what, Out, FWD_TOL);
  expect_f32("rmsnorm rstd", Rstd, 1e-5);
  cpu->rmsnorm_backward(Dinp.c, weighted ? Dw.c : NULL, Dout.c, X.c, wc, Rstd.c, N, C);
  gpu->rmsnorm_backward(Dinp.g, weighted ? Dw.g : NULL, Dout.g, X.g, wg, Rstd.g, N, C);
  snprintf(what, sizeof what, "rmsnorm_backward N %d C %d dinp (accumulates)", N, C);
  expect_act_added(what, Dinp, dinp, BWD_TOL);
  if (weighted) expect_act_added("rmsnorm_backward dweight (accumulates)", Dw, dw, BWD_TOL);
  else expect_act("rmsnorm_backward without weight leaves dweight alone", Dw, 0);
  free_twin(X), free_twin(W), free_twin(Out), free_twin(Dout), free_twin(Dinp), free_twin(Dw), free_twin32(Rstd);
  free(x), free(w), free(dout), free(dinp), free(dw);
}

static void test_rope(int N, int NH, int HS) {
  const int C = NH * HS;
  const size_t n = (size_t)N * 3 * C;
  int32_t *pos = malloc((size_t)N * sizeof *pos);
  for (int r = 0; r < N; r++) pos[r] = r % 9 == 0 ? 0 : (int32_t)(uniform() * 5000); /* fp32 angles would drift */
  float *x = random_bf16(n, -1, 1), *dx = random_bf16(n, -1, 1);
  twin X = twin_act(x, n), Dx = twin_act(dx, n);
  twin_ids P = twin_tokens(pos, (size_t)N);
  char what[96];
  cpu->rope_forward(X.c, P.c, N, C, NH, 10000.0f), gpu->rope_forward(X.g, P.g, N, C, NH, 10000.0f);
  snprintf(what, sizeof what, "rope_forward N %d NH %d HS %d", N, NH, HS);
  expect_qkv(what, X, NULL, C, FWD_TOL); /* the v part: untouched on both sides */
  cpu->rope_backward(Dx.c, P.c, N, C, NH, 10000.0f), gpu->rope_backward(Dx.g, P.g, N, C, NH, 10000.0f);
  snprintf(what, sizeof what, "rope_backward N %d NH %d HS %d", N, NH, HS);
  expect_qkv(what, Dx, NULL, C, FWD_TOL);
  free_twin(X), free_twin(Dx), cpu->free_buffer(P.c), gpu->free_buffer(P.g);
  free(pos), free(x), free(dx);
}

/* ------------------------------------------- softmax attention on blocks */

static void test_attention_merge(void) {
  const int B = 2, Tq = 37, NH = 3, HS = 24, C = NH * HS;
  const size_t n_out = (size_t)B * Tq * C, n_rows = (size_t)B * NH * Tq;
  float *out = random_array(n_out, -1, 1), *out_b = random_array(n_out, -1, 1);
  float *lse = random_array(n_rows, -3, 5), *lse_b = random_array(n_rows, -3, 5);
  for (size_t r = 0; r < n_rows; r++) { /* r = (b·NH + h)·Tq + i */
    const bool a_empty = r % 7 == 0, b_empty = r % 5 == 0;
    const size_t b = r / ((size_t)NH * Tq), h = r / Tq % NH, i = r % Tq, at = (b * Tq + i) * C + h * HS;
    if (a_empty) lse[r] = -INFINITY;
    if (b_empty) lse_b[r] = -INFINITY;
    for (int e = 0; e < HS; e++) {
      if (a_empty) out[at + e] = b_empty ? 1.0f : NAN; /* garbage that must be replaced, or kept */
      if (b_empty) out_b[at + e] = NAN;                /* garbage that must be ignored */
    }
  }
  twin32 Out = twin_f32(out, n_out), Lse = twin_f32(lse, n_rows), Ob = twin_f32(out_b, n_out);
  twin32 Lb = twin_f32(lse_b, n_rows);
  cpu->attention_merge(Out.c, Lse.c, Ob.c, Lb.c, B, Tq, C, NH);
  gpu->attention_merge(Out.g, Lse.g, Ob.g, Lb.g, B, Tq, C, NH);
  expect_f32("attention_merge out (empty rows on either side)", Out, 1e-6);
  expect_lse("attention_merge lse", Lse, 1e-6);
  free_twin32(Out), free_twin32(Lse), free_twin32(Ob), free_twin32(Lb);
  free(out), free(out_b), free(lse), free(lse_b);
}

static void test_attention_delta(void) {
  const int B = 2, T = 37, NH = 3, HS = 24, C = NH * HS;
  const size_t n = (size_t)B * T * C;
  float *dout = random_bf16(n, -1, 1), *out = random_bf16(n, -1.5f, 1.5f);
  twin Dout = twin_act(dout, n), Out = twin_act(out, n);
  twin32 Delta = twin_f32(NULL, (size_t)B * NH * T);
  cpu->attention_delta(Delta.c, Dout.c, Out.c, B, T, C, NH), gpu->attention_delta(Delta.g, Dout.g, Out.g, B, T, C, NH);
  expect_f32("attention_delta", Delta, 1e-5);
  free_twin(Dout), free_twin(Out), free_twin32(Delta);
  free(dout), free(out);
}

typedef struct block_case {
  int B, Tq, Tk, NH, HS, q_pos0, k_pos0;
  bool in_qkv; /* q, k, v inside one qkv buffer (Tq = Tk, ld 3C); else q [B, Tq, C + 5], K/V packed (ld 2C) */
} block_case;

/* one query block against one key block: forward, then the backward with
 * the CPU's lse and δ given to both sides (a block alone: its lse is the
 * global one), accumulating into small random gradients */
static void test_attention_block(block_case k) {
  const int C = k.NH * k.HS, B = k.B, Tq = k.Tq, Tk = k.Tk;
  const int ld_q = k.in_qkv ? 3 * C : C + 5, ld_kv = k.in_qkv ? 3 * C : 2 * C;
  const size_t n_q = (size_t)B * Tq * ld_q, n_kv = k.in_qkv ? 0 : (size_t)B * Tk * ld_kv;
  const size_t n_out = (size_t)B * Tq * C, n_rows = (size_t)B * k.NH * Tq;
  char what[160], name[320];
  snprintf(what, sizeof what, "attention_block B %d Tq %d Tk %d NH %d HS %d q_pos0 %d k_pos0 %d%s", B, Tq, Tk, k.NH,
           k.HS, k.q_pos0, k.k_pos0, k.in_qkv ? " (in qkv)" : " (q padded, packed K/V)");
  float *q = random_bf16(n_q, -1.5f, 1.5f), *kv = random_bf16(n_kv, -1.5f, 1.5f);
  float *dout = random_bf16(n_out, -1, 1), *dq0 = random_bf16(n_q, -0.05f, 0.05f);
  float *dkv0 = random_bf16(n_kv, -0.05f, 0.05f);
  twin Q = twin_act(q, n_q), KV = twin_act(kv, n_kv), Dout = twin_act(dout, n_out);
  twin Dq = twin_act(dq0, n_q), Dkv = twin_act(dkv0, n_kv);
  /* k, v (and dk, dv) inside the qkv buffer or the packed K/V one */
  const twin kb = k.in_qkv ? Q : KV, dkb = k.in_qkv ? Dq : Dkv;
  const size_t k_off = k.in_qkv ? (size_t)C : 0, v_off = k.in_qkv ? 2 * (size_t)C : (size_t)C;
  twin32 Out = twin_f32(NULL, n_out), Lse = twin_f32(NULL, n_rows);
  cpu->attention_block_forward(Out.c, Lse.c, Q.c, act_at(cpu, kb.c, k_off), act_at(cpu, kb.c, v_off), ld_q, ld_kv, B,
                               Tq, Tk, C, k.NH, k.q_pos0, k.k_pos0);
  gpu->attention_block_forward(Out.g, Lse.g, Q.g, act_at(gpu, kb.g, k_off), act_at(gpu, kb.g, v_off), ld_q, ld_kv, B,
                               Tq, Tk, C, k.NH, k.q_pos0, k.k_pos0);
  snprintf(name, sizeof name, "%s: forward out", what);
  expect_f32(name, Out, 1e-4);
  snprintf(name, sizeof name, "%s: forward lse", what);
  expect_lse(name, Lse, 1e-5);
  /* the same lse and δ on both sides */
  float *lse = host_f32(cpu, Lse.c, n_rows);
  twin32 Delta = twin_f32(NULL, n_rows);
  cpu->attention_delta(Delta.c, Dout.c, (const act_t *)Out.c, B, Tq, C, k.NH); /* CPU act_t is f32 */
  float *delta = host_f32(cpu, Delta.c, n_rows);
  gpu->f32_from_host(Delta.g, delta, n_rows);
  gpu->f32_from_host(Lse.g, lse, n_rows);
  cpu->attention_block_backward(Dq.c, act_at(cpu, dkb.c, k_off), act_at(cpu, dkb.c, v_off), ld_q, ld_kv, Dout.c,
                                Delta.c, Lse.c, Q.c, act_at(cpu, kb.c, k_off), act_at(cpu, kb.c, v_off), ld_q, ld_kv,
                                B, Tq, Tk, C, k.NH, k.q_pos0, k.k_pos0);
  gpu->attention_block_backward(Dq.g, act_at(gpu, dkb.g, k_off), act_at(gpu, dkb.g, v_off), ld_q, ld_kv, Dout.g,
                                Delta.g, Lse.g, Q.g, act_at(gpu, kb.g, k_off), act_at(gpu, kb.g, v_off), ld_q, ld_kv,
                                B, Tq, Tk, C, k.NH, k.q_pos0, k.k_pos0);
  if (k.in_qkv) {
    snprintf(name, sizeof name, "%s: backward (accumulates)", what);
    expect_qkv(name, Dq, dq0, C, BWD_TOL);
  } else {
    snprintf(name, sizeof name, "%s: backward dq (accumulates; padding untouched)", what);
    expect_act_added(name, Dq, dq0, BWD_TOL);
    snprintf(name, sizeof name, "%s: backward dk (accumulates)", what);
    expect_act_part(name, Dkv, dkv0, 2 * (size_t)C, 0, (size_t)C, BWD_TOL);
    snprintf(name, sizeof name, "%s: backward dv (accumulates)", what);
    expect_act_part(name, Dkv, dkv0, 2 * (size_t)C, (size_t)C, (size_t)C, BWD_TOL);
  }
  free_twin(Q), free_twin(KV), free_twin(Dout), free_twin(Dq), free_twin(Dkv);
  free_twin32(Out), free_twin32(Lse), free_twin32(Delta);
  free(q), free(kv), free(dout), free(dq0), free(dkv0), free(lse), free(delta);
}

/* Ring attention on the device: queries in pieces, keys in blocks (one of
 * one row, one fully masked against the first piece), every pair run and
 * merged, δ from the merged output cast to bf16, every block's backward
 * with the merged lse; against the CPU's whole-sequence attention. */
static void test_attention_ring(void) {
  const int B = 2, T = 130, NH = 2, HS = 24, C = NH * HS;
  const int n_pieces = 2, piece_len[2] = {60, 70}, n_blocks = 3, block_len[3] = {50, 1, 79};
  const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C;
  float *qkv = random_bf16(n_qkv, -1.5f, 1.5f), *dout = random_bf16(n_out, -1, 1);
  /* the reference */
  twin Qkv = twin_act(qkv, n_qkv), Dout = twin_act(dout, n_out), Out = twin_act(dout, n_out);
  twin Dqkv = twin_act(qkv, n_qkv);
  f32_t *saved = cpu->alloc_f32(cpu->attention_saved_elems(B, T, NH), "test");
  cpu->attention_forward(Out.c, saved, Qkv.c, B, T, C, NH);
  cpu->attention_backward(Dqkv.c, Dout.c, Out.c, Qkv.c, saved, B, T, C, NH);
  /* the device: K/V blocks packed [B, Tk, 2C] */
  act_t *kv[3], *dkv[3];
  int k0[3];
  for (int u = 0, t = 0; u < n_blocks; t += block_len[u], u++) {
    const size_t n = (size_t)B * block_len[u];
    float *packed = malloc(n * 2 * C * sizeof *packed);
    take_columns(packed, qkv, B, T, t, block_len[u], 3 * C, C, 2 * C);
    k0[u] = t;
    kv[u] = gpu->alloc_act(n * 2 * C, "test");
    dkv[u] = gpu->alloc_act(n * 2 * C, "test");
    gpu->act_from_host(kv[u], packed, n * 2 * C);
    gpu->zero_act(dkv[u], n * 2 * C);
    free(packed);
  }
  float *out_all = malloc(n_out * sizeof *out_all), *dqkv = calloc(n_qkv, sizeof *dqkv);
  for (int p = 0, q0 = 0; p < n_pieces; q0 += piece_len[p], p++) {
    const int Tq = piece_len[p];
    const size_t rows = (size_t)B * Tq, n_lse = (size_t)B * NH * Tq;
    float *qp = malloc(rows * 3 * C * sizeof *qp), *dop = malloc(rows * C * sizeof *dop);
    float *minus_inf = malloc(n_lse * sizeof *minus_inf);
    for (size_t i = 0; i < n_lse; i++) minus_inf[i] = -INFINITY;
    take_rows(qp, qkv, B, T, q0, Tq, 3 * C);
    take_rows(dop, dout, B, T, q0, Tq, C);
    act_t *q = gpu->alloc_act(rows * 3 * C, "test"), *d_o = gpu->alloc_act(rows * C, "test");
    act_t *o_act = gpu->alloc_act(rows * C, "test"), *dq = gpu->alloc_act(rows * C, "test");
    f32_t *acc = gpu->alloc_f32(rows * C, "test"), *lse = gpu->alloc_f32(n_lse, "test");
    f32_t *ob = gpu->alloc_f32(rows * C, "test"), *lb = gpu->alloc_f32(n_lse, "test");
    f32_t *delta = gpu->alloc_f32(n_lse, "test");
    gpu->act_from_host(q, qp, rows * 3 * C);
    gpu->act_from_host(d_o, dop, rows * C);
    gpu->f32_from_host(lse, minus_inf, n_lse); /* acc's content is not read where lse = −∞ */
    gpu->zero_act(dq, rows * C);
    for (int u = n_blocks - 1; u >= 0; u--) { /* merged in reverse order */
      gpu->attention_block_forward(ob, lb, q, kv[u], act_at(gpu, kv[u], C), 3 * C, 2 * C, B, Tq, block_len[u], C, NH,
                                   q0, k0[u]);
      gpu->attention_merge(acc, lse, ob, lb, B, Tq, C, NH);
    }
    gpu->cast_f32_to_act(o_act, acc, rows * C);
    gpu->attention_delta(delta, d_o, o_act, B, Tq, C, NH);
    for (int u = 0; u < n_blocks; u++)
      gpu->attention_block_backward(dq, dkv[u], act_at(gpu, dkv[u], C), C, 2 * C, d_o, delta, lse, q, kv[u],
                                    act_at(gpu, kv[u], C), 3 * C, 2 * C, B, Tq, block_len[u], C, NH, q0, k0[u]);
    float *o_host = host_f32(gpu, acc, rows * C), *dq_host = host_act(gpu, dq, rows * C);
    put_rows(out_all, o_host, B, T, q0, Tq, C);
    put_columns(dqkv, dq_host, B, T, q0, Tq, 3 * C, 0, C);
    gpu->free_buffer(q), gpu->free_buffer(d_o), gpu->free_buffer(o_act), gpu->free_buffer(dq);
    gpu->free_buffer(acc), gpu->free_buffer(lse), gpu->free_buffer(ob), gpu->free_buffer(lb), gpu->free_buffer(delta);
    free(qp), free(dop), free(minus_inf), free(o_host), free(dq_host);
  }
  for (int u = 0; u < n_blocks; u++) {
    float *dkv_host = host_act(gpu, dkv[u], (size_t)B * block_len[u] * 2 * C);
    put_columns(dqkv, dkv_host, B, T, k0[u], block_len[u], 3 * C, C, 2 * C);
    gpu->free_buffer(kv[u]), gpu->free_buffer(dkv[u]);
    free(dkv_host);
  }
  float *out_want = host_act(cpu, Out.c, n_out), *dqkv_want = host_act(cpu, Dqkv.c, n_qkv);
  report("ring attention on the device (pieces 60, 70 x key blocks 50, 1, 79): merged out vs whole",
         part_gap(out_all, out_want, NULL, n_out, n_out, 0, n_out), 1e-4);
  report_qkv("ring attention on the device: summed block backward vs whole", dqkv, dqkv_want, NULL, n_qkv, C,
             RING_TOL);
  free_twin(Qkv), free_twin(Dout), free_twin(Out), free_twin(Dqkv), cpu->free_buffer(saved);
  free(qkv), free(dout), free(out_all), free(dqkv), free(out_want), free(dqkv_want);
}

/* --------------------------------------------------- linear attention */

/* λ_h = exp(−2^(−8(h+1)/NH)), the ALiBi / Lightning slopes (test_kernels_sp.c) */
static float *slopes(int NH) {
  float *lambda = malloc((size_t)NH * sizeof *lambda);
  for (int h = 0; h < NH; h++) lambda[h] = (float)exp(-pow(2.0, -8.0 * (h + 1) / NH));
  return lambda;
}

typedef struct linear_case {
  int B, T, NH, HS, chunk;
  bool decays, with_dstate;
} linear_case;

static void test_linear_attention(linear_case k) {
  const int B = k.B, T = k.T, NH = k.NH, HS = k.HS, C = NH * HS;
  const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_state = (size_t)B * NH * HS * HS;
  char what[128], name[320];
  snprintf(what, sizeof what, "linear attention B %d T %d NH %d HS %d chunk %d %s", B, T, NH, HS, k.chunk,
           k.decays ? "slopes" : "no decay");
  float *qkv = random_bf16(n_qkv, -1, 1), *dout = random_bf16(n_out, -1, 1), *lambda = slopes(NH);
  float *s_in = random_array(n_state, -1, 1), *g = random_array(n_state, -1, 1), *garbage = random_bf16(n_qkv, -9, 9);
  float *state_garbage = random_array(n_state, -9, 9);
  float *out0 = random_bf16(n_out, -1, 1), *dqkv0 = random_bf16(n_qkv, -0.5f, 0.5f);
  twin Qkv = twin_act(qkv, n_qkv), Dout = twin_act(dout, n_out), Out = twin_act(garbage, n_out);
  twin Dqkv = twin_act(garbage, n_qkv);
  twin32 Decay = twin_f32(lambda, (size_t)NH), State = twin_f32(NULL, n_state), Sin = twin_f32(s_in, n_state);
  twin32 G = twin_f32(g, n_state);
  const f32_t *dc = k.decays ? Decay.c : NULL, *dg = k.decays ? Decay.g : NULL;
  /* forward from a zero start, with the final state */
  cpu->linear_attention_forward(Out.c, State.c, Qkv.c, dc, B, T, C, NH, k.chunk);
  gpu->linear_attention_forward(Out.g, State.g, Qkv.g, dg, B, T, C, NH, k.chunk);
  snprintf(name, sizeof name, "%s: forward out", what);
  expect_act(name, Out, FWD_TOL);
  snprintf(name, sizeof name, "%s: forward state", what);
  expect_f32(name, State, 1e-4);
  /* without the state (the last chunk's state step is skipped) */
  gpu->act_from_host(Out.g, garbage, n_out);
  gpu->linear_attention_forward(Out.g, NULL, Qkv.g, dg, B, T, C, NH, k.chunk);
  snprintf(name, sizeof name, "%s: forward out, state NULL", what);
  expect_act(name, Out, FWD_TOL);
  /* the state entering the piece: out += diag(λ^{i+1}) Q S_in */
  cpu->act_from_host(Out.c, out0, n_out), gpu->act_from_host(Out.g, out0, n_out);
  cpu->linear_attention_state_forward(Out.c, Qkv.c, Sin.c, dc, B, T, C, NH);
  gpu->linear_attention_state_forward(Out.g, Qkv.g, Sin.g, dg, B, T, C, NH);
  snprintf(name, sizeof name, "%s: state_forward (accumulates)", what);
  expect_act_added(name, Out, out0, FWD_TOL);
  /* backward from dout and (optionally) the final state's gradient; overwrites */
  cpu->linear_attention_backward(Dqkv.c, Dout.c, Qkv.c, k.with_dstate ? G.c : NULL, dc, B, T, C, NH, k.chunk);
  gpu->linear_attention_backward(Dqkv.g, Dout.g, Qkv.g, k.with_dstate ? G.g : NULL, dg, B, T, C, NH, k.chunk);
  snprintf(name, sizeof name, "%s: backward%s (overwrites)", what, k.with_dstate ? " with dstate" : "");
  expect_qkv(name, Dqkv, NULL, C, BWD_TOL);
  /* the state's backward: dQ accumulates, k and v untouched, dstate_in overwritten */
  twin32 Dsin = twin_f32(state_garbage, n_state);
  cpu->act_from_host(Dqkv.c, dqkv0, n_qkv), gpu->act_from_host(Dqkv.g, dqkv0, n_qkv);
  cpu->linear_attention_state_backward(Dqkv.c, Dsin.c, Dout.c, Qkv.c, Sin.c, dc, B, T, C, NH);
  gpu->linear_attention_state_backward(Dqkv.g, Dsin.g, Dout.g, Qkv.g, Sin.g, dg, B, T, C, NH);
  snprintf(name, sizeof name, "%s: state_backward dq (accumulates)", what);
  expect_act_part(name, Dqkv, dqkv0, 3 * (size_t)C, 0, (size_t)C, BWD_TOL);
  float *after = host_act(gpu, Dqkv.g, n_qkv);
  size_t kv_moved = 0;
  for (size_t i = 0; i < n_qkv; i++) kv_moved += i % (3 * (size_t)C) >= (size_t)C && after[i] != dqkv0[i];
  CHECK(kv_moved == 0, "%s: state_backward leaves the k and v parts alone (%zu moved)", what, kv_moved);
  snprintf(name, sizeof name, "%s: state_backward dstate_in (overwrites)", what);
  expect_f32(name, Dsin, 1e-4);
  /* state_combine: state = λ^T state + piece_state */
  cpu->f32_from_host(State.c, s_in, n_state), gpu->f32_from_host(State.g, s_in, n_state);
  cpu->linear_attention_state_combine(State.c, G.c, dc, T, B, NH, HS);
  gpu->linear_attention_state_combine(State.g, G.g, dg, T, B, NH, HS);
  snprintf(name, sizeof name, "%s: state_combine", what);
  expect_f32(name, State, 1e-6);
  free_twin(Qkv), free_twin(Dout), free_twin(Out), free_twin(Dqkv);
  free_twin32(Decay), free_twin32(State), free_twin32(Sin), free_twin32(G), free_twin32(Dsin);
  free(qkv), free(dout), free(lambda), free(s_in), free(g), free(garbage), free(state_garbage), free(out0),
      free(dqkv0), free(after);
}

/* A sequence in two pieces on the device (sequence parallelism): forward
 * per piece, states chained with state_combine, state_forward added;
 * backward from the last piece down with the dstate chained the same way;
 * against the CPU's whole sequence. */
static void test_linear_attention_pieces(void) {
  const int B = 2, T = 61, NH = 2, HS = 24, C = NH * HS, chunk = 8, len[2] = {25, 36};
  const size_t n_qkv = (size_t)B * T * 3 * C, n_out = (size_t)B * T * C, n_state = (size_t)B * NH * HS * HS;
  float *qkv = random_bf16(n_qkv, -1, 1), *dout = random_bf16(n_out, -1, 1), *lambda = slopes(NH);
  float *g = random_array(n_state, -1, 1);
  /* the reference */
  twin Qkv = twin_act(qkv, n_qkv), Dout = twin_act(dout, n_out), Out = twin_act(dout, n_out);
  twin Dqkv = twin_act(qkv, n_qkv);
  twin32 Decay = twin_f32(lambda, (size_t)NH), State = twin_f32(NULL, n_state), G = twin_f32(g, n_state);
  cpu->linear_attention_forward(Out.c, State.c, Qkv.c, Decay.c, B, T, C, NH, chunk);
  cpu->linear_attention_backward(Dqkv.c, Dout.c, Qkv.c, G.c, Decay.c, B, T, C, NH, chunk);
  /* the device */
  act_t *qp[2], *dop[2], *op[2], *dp[2];
  f32_t *m = gpu->alloc_f32(n_state, "test"), *s_in1 = gpu->alloc_f32(n_state, "test");
  f32_t *s = gpu->alloc_f32(n_state, "test"), *ds = gpu->alloc_f32(n_state, "test");
  f32_t *dl = gpu->alloc_f32(n_state, "test");
  for (int p = 0, t0 = 0; p < 2; t0 += len[p], p++) {
    const size_t rows = (size_t)B * len[p];
    float *h_q = malloc(rows * 3 * C * sizeof *h_q), *h_do = malloc(rows * C * sizeof *h_do);
    take_rows(h_q, qkv, B, T, t0, len[p], 3 * C);
    take_rows(h_do, dout, B, T, t0, len[p], C);
    qp[p] = gpu->alloc_act(rows * 3 * C, "test"), dop[p] = gpu->alloc_act(rows * C, "test");
    op[p] = gpu->alloc_act(rows * C, "test"), dp[p] = gpu->alloc_act(rows * 3 * C, "test");
    gpu->act_from_host(qp[p], h_q, rows * 3 * C);
    gpu->act_from_host(dop[p], h_do, rows * C);
    free(h_q), free(h_do);
  }
  gpu->zero_f32(s, n_state);
  for (int p = 0; p < 2; p++) {
    gpu->linear_attention_forward(op[p], m, qp[p], Decay.g, B, len[p], C, NH, chunk);
    if (p == 1) {
      float *h = host_f32(gpu, s, n_state); /* S_in of piece 1, kept for its backward */
      gpu->f32_from_host(s_in1, h, n_state);
      free(h);
      gpu->linear_attention_state_forward(op[p], qp[p], s_in1, Decay.g, B, len[p], C, NH);
    }
    gpu->linear_attention_state_combine(s, m, Decay.g, len[p], B, NH, HS);
  }
  gpu->f32_from_host(ds, g, n_state);
  for (int p = 1; p >= 0; p--) {
    gpu->linear_attention_backward(dp[p], dop[p], qp[p], ds, Decay.g, B, len[p], C, NH, chunk);
    if (p == 1) {
      gpu->linear_attention_state_backward(dp[p], dl, dop[p], qp[p], s_in1, Decay.g, B, len[p], C, NH);
      gpu->linear_attention_state_combine(ds, dl, Decay.g, len[p], B, NH, HS);
    }
  }
  float *out = malloc(n_out * sizeof *out), *dqkv = malloc(n_qkv * sizeof *dqkv);
  for (int p = 0, t0 = 0; p < 2; t0 += len[p], p++) {
    const size_t rows = (size_t)B * len[p];
    float *h_o = host_act(gpu, op[p], rows * C), *h_d = host_act(gpu, dp[p], rows * 3 * C);
    put_rows(out, h_o, B, T, t0, len[p], C);
    put_rows(dqkv, h_d, B, T, t0, len[p], 3 * C);
    free(h_o), free(h_d);
    gpu->free_buffer(qp[p]), gpu->free_buffer(dop[p]), gpu->free_buffer(op[p]), gpu->free_buffer(dp[p]);
  }
  float *out_want = host_act(cpu, Out.c, n_out), *dqkv_want = host_act(cpu, Dqkv.c, n_qkv);
  float *s_got = host_f32(gpu, s, n_state), *s_want = host_f32(cpu, State.c, n_state);
  report("linear attention in pieces (25, 36) on the device: out vs whole",
         part_gap(out, out_want, NULL, n_out, n_out, 0, n_out), BWD_TOL);
  report("linear attention in pieces on the device: chained final state vs whole",
         part_gap(s_got, s_want, NULL, n_state, n_state, 0, n_state), 1e-4);
  report_qkv("linear attention in pieces on the device: dqkv vs whole", dqkv, dqkv_want, NULL, n_qkv, C, BWD_TOL);
  gpu->free_buffer(m), gpu->free_buffer(s_in1), gpu->free_buffer(s), gpu->free_buffer(ds), gpu->free_buffer(dl);
  free_twin(Qkv), free_twin(Dout), free_twin(Out), free_twin(Dqkv);
  free_twin32(Decay), free_twin32(State), free_twin32(G);
  free(qkv), free(dout), free(lambda), free(g), free(out), free(dqkv), free(out_want), free(dqkv_want), free(s_got),
      free(s_want);
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

/* adamw_multi and sum_squares_multi against the CPU ops, on segment lists
 * out of order with gaps, 1-element, 3-element and empty segments, and
 * lengths that cross the kernels' 2048-element tiles mid-way. Tolerances:
 *   AdamW: the same fp32 arithmetic on both sides from the same bf16
 *     gradients and fp32 state (only fused multiply-adds differ): 1e-6 of
 *     the largest value, as for adamw. The GPU's multi-tensor step against
 *     its own per-segment adamw: the same device function, so 0 expected;
 *     reported with the same 1e-6.
 *   Gaps: elements outside every segment must keep their values exactly.
 *   Sums: the same bf16 values, each square exact in double, summed in
 *     double in another order: |Δ| ≤ (terms)·2⁻⁵³ of the sum (all terms
 *     are positive) = 2.4e-10 for 2.1M terms; 1e-9.
 * `big` lists more elements than the sum kernel's grid covers in one
 * sweep (1024 blocks × 2048), so its blocks loop over tiles. */
static void test_multi_tensor(const char *what, const tensor_segment *segments, int n_segments, size_t n, int n_groups) {
  float *w = random_array(n, -1, 1), *g = random_bf16(n, -0.1f, 0.1f), *m = random_array(n, -0.01f, 0.01f);
  float *v = random_array(n, 0, 1e-4f);
  twin G = twin_act(g, n);
  twin32 W = twin_f32(w, n), M = twin_f32(m, n), Vv = twin_f32(v, n);
  twin32 W1 = twin_f32(w, n), M1 = twin_f32(m, n), V1 = twin_f32(v, n); /* the GPU's per-segment adamw */
  segment_table *tc = cpu->segments_create(segments, n_segments), *tg = gpu->segments_create(segments, n_segments);
  for (int step = 1; step <= 3; step++) {
    cpu->adamw_multi(W.c, G.c, M.c, Vv.c, tc, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.8f, step);
    gpu->adamw_multi(W.g, G.g, M.g, Vv.g, tg, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.8f, step);
    for (int s = 0; s < n_segments; s++) {
      const size_t o = segments[s].offset;
      gpu->adamw(f32_at(W1.g, o), act_at(gpu, G.g, o), f32_at(M1.g, o), f32_at(V1.g, o), segments[s].n_elems, 1e-3f,
                 0.9f, 0.95f, 1e-8f, segments[s].weight_decay, 0.8f, step);
    }
  }
  char name[160];
  snprintf(name, sizeof name, "adamw_multi master (%s)", what);
  expect_f32(name, W, 1e-6);
  snprintf(name, sizeof name, "adamw_multi m (%s)", what);
  expect_f32(name, M, 1e-6);
  snprintf(name, sizeof name, "adamw_multi v (%s)", what);
  expect_f32(name, Vv, 1e-6);
  float *wg = host_f32(gpu, W.g, n), *mg = host_f32(gpu, M.g, n), *vg = host_f32(gpu, Vv.g, n);
  float *w1 = host_f32(gpu, W1.g, n), *m1 = host_f32(gpu, M1.g, n), *v1 = host_f32(gpu, V1.g, n);
  double own = fmax(relative_gap(wg, w1, n), fmax(relative_gap(mg, m1, n), relative_gap(vg, v1, n)));
  snprintf(name, sizeof name, "adamw_multi against the GPU's per-segment adamw (%s)", what);
  report(name, own, 1e-6);
  size_t gaps_moved = 0, gap_elems = 0;
  for (size_t i = 0; i < n; i++) {
    bool inside = false;
    for (int s = 0; s < n_segments && !inside; s++)
      inside = i >= segments[s].offset && i < segments[s].offset + segments[s].n_elems;
    if (inside) continue;
    gap_elems++;
    gaps_moved += wg[i] != w[i] || mg[i] != m[i] || vg[i] != v[i];
  }
  printf("  adamw_multi (%s): %zu of %zu elements outside every segment moved\n", what, gaps_moved, gap_elems);
  CHECK(gaps_moved == 0, "adamw_multi (%s) left elements outside the segments alone: %zu moved", what, gaps_moved);

  double sc[SEGMENT_MAX_GROUPS + 1], sg[SEGMENT_MAX_GROUPS + 1];
  for (int k = 0; k <= SEGMENT_MAX_GROUPS; k++) sc[k] = sg[k] = -1;
  cpu->sum_squares_multi(G.c, tc, sc, n_groups);
  gpu->sum_squares_multi(G.g, tg, sg, n_groups);
  for (int k = 0; k < n_groups; k++) {
    const double gap = sc[k] > 0 ? fabs(sg[k] - sc[k]) / sc[k] : fabs(sg[k] - sc[k]);
    snprintf(name, sizeof name, "sum_squares_multi group %d (%s): %.12g vs %.12g", k, what, sg[k], sc[k]);
    report(name, gap, 1e-9);
  }
  CHECK(sg[n_groups] == -1, "sum_squares_multi (%s) writes no group past n_groups", what);
  double again[SEGMENT_MAX_GROUPS];
  gpu->sum_squares_multi(G.g, tg, again, n_groups);
  CHECK(memcmp(again, sg, (size_t)n_groups * sizeof *again) == 0, "sum_squares_multi (%s) repeats bit for bit", what);
  cpu->segments_free(tc), gpu->segments_free(tg);
  free_twin(G), free_twin32(W), free_twin32(M), free_twin32(Vv), free_twin32(W1), free_twin32(M1), free_twin32(V1);
  free(w), free(g), free(m), free(v), free(wg), free(mg), free(vg), free(w1), free(m1), free(v1);
}

static void test_multi_tensor_cases(void) {
  /* 11 segments over 14000 elements: gaps at 0–4, between most segments and at the end */
  const tensor_segment mixed[] = {
      {.offset = 5000, .n_elems = 4099, .weight_decay = 0.1f, .group = 1},  /* crosses two tiles mid-way */
      {.offset = 5, .n_elems = 768, .weight_decay = 0.0f, .group = 0},      /* a GPT-2 bias */
      {.offset = 780, .n_elems = 1, .weight_decay = 0.0f, .group = 2},
      {.offset = 781, .n_elems = 3, .weight_decay = 0.1f, .group = 0},      /* adjacent to the previous */
      {.offset = 790, .n_elems = 0, .weight_decay = 0.1f, .group = 3},      /* empty */
      {.offset = 800, .n_elems = 2047, .weight_decay = 0.05f, .group = 1},
      {.offset = 2900, .n_elems = 2049, .weight_decay = 0.0f, .group = 0},
      {.offset = 9200, .n_elems = 33, .weight_decay = 0.1f, .group = 2},
      {.offset = 9240, .n_elems = 2500, .weight_decay = 0.0f, .group = 1},
      {.offset = 11800, .n_elems = 2150, .weight_decay = 0.1f, .group = 0},
      {.offset = 13955, .n_elems = 7, .weight_decay = 0.0f, .group = 2},
  };
  test_multi_tensor("11 segments, gaps", mixed, (int)(sizeof mixed / sizeof mixed[0]), 14000, 4);
  const tensor_segment big[] = {
      {.offset = 100, .n_elems = 1500000, .weight_decay = 0.1f, .group = 1},
      {.offset = 3, .n_elems = 90, .weight_decay = 0.0f, .group = 0},
      {.offset = 1500200, .n_elems = 700001, .weight_decay = 0.0f, .group = 0},
  };
  test_multi_tensor("big: 2.2M elements", big, 3, 2200300, 2);
  const tensor_segment one[] = {{.offset = 0, .n_elems = 1, .weight_decay = 0.1f, .group = 0}};
  test_multi_tensor("one element", one, 1, 1, 1);
}

int main(void) {
  random_seed(0x9E3779B97F4A7C15ULL);
  cpu = backend_cpu();
  gpu = backend_cuda();
  if (!gpu) {
    printf("test_kernels_cuda: no CUDA backend in this build or no GPU here: skipped\n");
    return 77;
  }
  test_gemm();
  test_gemm_bias();
  test_elementwise();
  test_swiglu();
  test_embedding();
  test_layernorm(1e-5);
  test_rmsnorm(75, 97, true, 1e-5);
  test_rmsnorm(300, 45, false, 1e-5);
  test_rope(61, 3, 24);
  test_rope(37, 2, 64);
  const int shapes[][4] = {{2, 1, 3, 64},   {2, 37, 3, 64}, {1, 130, 2, 64}, {2, 257, 2, 32},
                           {1, 300, 4, 16}, {1, 77, 2, 128}, {2, 37, 3, 24}, {1, 130, 2, 40}};
  for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
    test_attention(shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
  test_attention_merge();
  test_attention_delta();
  const block_case blocks[] = {
      {2, 37, 37, 3, 24, 0, 0, true},       /* the diagonal block: causal from row 0 */
      {2, 37, 53, 2, 64, 100, 60, false},   /* partly visible: row 0 sees 41 keys */
      {1, 130, 130, 2, 64, 0, 130, false},  /* fully masked: lse −∞, out 0, nothing added */
      {1, 130, 67, 2, 64, 200, 0, false},   /* fully visible */
      {2, 45, 77, 2, 128, 50, 20, false},   /* several key tiles and key blocks, partial */
      {1, 37, 150, 3, 40, 10, 20, false},   /* rows 0–9 see nothing; key blocks no query sees */
      {2, 130, 130, 2, 16, 0, 0, true},     /* head size 16, causal */
      {1, 70, 200, 2, 32, 150, 0, false},   /* keys over two tiles, partly visible */
  };
  for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) test_attention_block(blocks[i]);
  test_attention_ring();
  const linear_case linear[] = {
      {2, 37, 3, 24, 16, true, true},     /* 16 does not divide 37 */
      {1, 130, 2, 64, 64, true, true},    /* 130 = 2·64 + 2 */
      {2, 77, 2, 128, 100, false, true},  /* chunk above the kernels' cap, no decay */
      {1, 130, 2, 40, 7, true, false},    /* many short chunks, no dstate */
      {2, 5, 2, 32, 3, true, true},       /* T shorter than two chunks */
      {1, 37, 1, 24, 1, true, true},      /* one row per chunk */
  };
  for (size_t i = 0; i < sizeof linear / sizeof linear[0]; i++) test_linear_attention(linear[i]);
  test_linear_attention_pieces();
  test_crossentropy();
  test_adamw();
  test_multi_tensor_cases();
  /* an eps the kernels must not ignore (rstd ~10% from eps 1e-5's); last,
   * so that the cases above keep their random inputs */
  test_layernorm(0.25);
  test_rmsnorm(75, 97, true, 0.3);
  return test_summary("test_kernels_cuda");
}

/* test_model_grad — the whole model's backward against finite differences of
 * its forward, on tiny models (2 blocks, 2 heads, d_model 8, vocab 11, T 5,
 * B 2) of every architecture option: GPT-2; Llama-style (RMSNorm, SwiGLU,
 * RoPE, no biases), also with an untied output head (lm_head, every element
 * checked) and another norm ε; linear attention with and without decay and with a
 * chunk that does not divide T; a hybrid of linear and softmax layers; and
 * each recompute mode (whose gradients must be the same bits). Every
 * parameter is set to a random value (norm gains near 1, biases nonzero) so
 * that no term of the gradient hides behind a zero.
 *
 * Central differences with h = 2e-3 on the mean token loss, in fp32. The
 * forward's rounding (~1e-7 relative on a loss of ~2.4, summed over 10
 * tokens) divided by 2h gives ~1e-4 of noise per component. The h² truncation
 * term matters for linear attention: its per-head RMSNorm over 4-element
 * heads is strongly curved where a head's output is small, and the error
 * fell as h² from 6.6% at h = 1e-2 to 0.1% at h = 2e-3 (measured while
 * choosing h). Over 400 sampled components the relative error of the whole
 * vector ‖g_fd − g‖/‖g‖ is 2e-4..1e-3 (observed); we allow 2e-3. A missing
 * or wrong term in any backward (a dropped residual, a transposed GEMM, a
 * wrong decay power) gives errors of order 1. Recomputation must not change
 * a single bit of the gradient: compared exactly.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "model.h"
#include "param_init.h"
#include "testing.h"

static double normal(uint64_t i) { return param_init_normal(2024, "test", (int64_t)i); }

enum { N_SAMPLES = 400 };

/* The components to check: the first element of every tensor, all of
 * focus (when not NULL), then random ones; N_SAMPLES of them. */
static int pick_components(const registry *reg, const param_spec *focus, size_t picks[N_SAMPLES]) {
  int n = 0;
  for (int p = 0; p < reg->n_params && n < N_SAMPLES; p++) picks[n++] = reg->params[p].offset;
  for (size_t i = 0; focus && i < focus->n_local && n < N_SAMPLES; i++) picks[n++] = focus->offset + i;
  for (uint64_t s = 0; n < N_SAMPLES; s++) picks[n++] = (size_t)(hash_mix64(s + 77) % reg->n_local_total);
  return n;
}

/* Checks one model; copies its gradient (first pass) into grads_out when not
 * NULL. Every element of the tensor named `whole` (NULL: none) is checked
 * too, besides the sampled ones. */
static void check_model(const char *label, model_shape shape, recompute_kind recompute, float *grads_out,
                        const char *whole) {
  const backend *be = backend_cpu();
  const int B = 2, T = 5, N = B * T;
  model m;
  const model_options options = {.recompute = recompute};
  model_create(&m, be, shape, B, T, &options);
  const size_t n_params = m.layout.reg.n_local_total;
  float *params = be->host_pointer(m.w.params);
  const float *grads = be->host_pointer(m.w.grads);
  size_t k = 0;
  for (int p = 0; p < m.layout.reg.n_params; p++) {
    const param_spec *spec = &m.layout.reg.params[p];
    for (size_t i = 0; i < spec->n_local; i++, k++) {
      const double base = spec->init == INIT_ONES ? 1.0 : 0.0;
      params[spec->offset + i] = (float)(base + 0.3 * normal(k));
    }
  }
  int32_t inputs[10], targets[10];
  for (int i = 0; i < N; i++) {
    inputs[i] = (int32_t)((7 * i + 3) % shape.vocab_size);
    targets[i] = (int32_t)((5 * i + 1) % shape.vocab_size);
  }

  be->zero_act(m.w.grads, n_params);
  double loss = model_forward_backward(&m, inputs, targets, B, T, 1.0f / N) / N;
  CHECK(loss > 1.0 && loss < 10.0, "plausible mean loss %g", loss);
  /* the loss of forward_backward equals the forward-only loss */
  CHECK_CLOSE(model_forward_loss(&m, inputs, targets, B, T) / N, loss, 1e-6, 0, "same loss");

  size_t picks[N_SAMPLES];
  const param_spec *focus = whole ? registry_find(&m.layout.reg, whole) : NULL;
  CHECK(!whole || focus, "%s: the model has %s", label, whole);
  const int n_picks = pick_components(&m.layout.reg, focus, picks);

  const float h = 2e-3f;
  double err_sq = 0, ref_sq = 0, worst = 0;
  for (int s = 0; s < n_picks; s++) {
    size_t i = picks[s];
    float saved = params[i];
    params[i] = saved + h;
    double up = model_forward_loss(&m, inputs, targets, B, T) / N;
    params[i] = saved - h;
    double down = model_forward_loss(&m, inputs, targets, B, T) / N;
    params[i] = saved;
    double fd = (up - down) / (2.0 * h);
    err_sq += (fd - grads[i]) * (fd - grads[i]);
    ref_sq += fd * fd;
    if (fabs(fd - grads[i]) > worst) worst = fabs(fd - grads[i]);
  }
  if (focus) { /* the tensor is used: its gradient is no small part of the whole */
    double focus_sq = 0;
    for (size_t i = 0; i < focus->n_local; i++) focus_sq += (double)grads[focus->offset + i] * grads[focus->offset + i];
    CHECK(sqrt(focus_sq) > 0.1 * sqrt(ref_sq), "%s: |dL/d%s| = %.3g of |g| %.3g over the samples", label, whole,
          sqrt(focus_sq), sqrt(ref_sq));
  }
  double rel = sqrt(err_sq / ref_sq);
  printf("%s: relative gradient error %.3g over %d components (worst abs %.3g, |g| %.3g)\n", label,
         rel, n_picks, worst, sqrt(ref_sq));
  CHECK(rel < 2e-3, "%s: model gradient matches finite differences: rel %g", label, rel);

  /* gradients accumulate: a second pass doubles them */
  float *first = malloc(n_params * sizeof *first);
  for (size_t i = 0; i < n_params; i++) first[i] = grads[i];
  if (grads_out) memcpy(grads_out, first, n_params * sizeof *first);
  model_forward_backward(&m, inputs, targets, B, T, 1.0f / N);
  double dev = 0;
  for (size_t i = 0; i < n_params; i++) dev = fmax(dev, fabs(grads[i] - 2 * first[i]));
  CHECK(dev < 1e-6, "%s: second micro-batch accumulates (max deviation %g)", label, dev);
  free(first);
  model_free(&m);
}

/* Where an untied head lives: lm_head [V, C] on the stage with the head,
 * wte only on the first (a tied model's last stage holds a copy of wte),
 * both counted in the model's parameters. */
static void check_untied_layout(model_shape untied) {
  model_shape tied = untied;
  tied.untied_head = false;
  const int64_t V = untied.vocab_size, C = untied.d_model;
  CHECK(model_n_params(&untied) == model_n_params(&tied) + V * C, "lm_head counted: %lld = %lld + %lld",
        (long long)model_n_params(&untied), (long long)model_n_params(&tied), (long long)(V * C));
  model_stage first = model_stage_whole(1), last = model_stage_whole(1);
  first.has_head = false;
  last.has_embedding = false, last.chunk_first_layer[0] = 1;
  registry reg;
  registry_init(&reg, 1, 2); /* tp rank 1 of 2: V = 11 rows padded to 12, this rank holds 6, 5 of them real */
  model_register(&reg, &untied, &last);
  const param_spec *head = registry_find(&reg, "lm_head");
  CHECK(head && !registry_find(&reg, "wte"), "the untied last stage holds lm_head and no wte");
  CHECK(head && head->local_shape[0] == 6 && head->local_valid == 5 && head->local_start == 6 && head->weight_decay &&
            head->init == INIT_NORMAL,
        "lm_head: split over tp as wte, decayed, initialised normal");
  CHECK(head && head->offset + head->n_local == reg.n_local_total, "lm_head is last in the flat order");
  registry_free(&reg);
  registry_init(&reg, 0, 1);
  model_register(&reg, &untied, &first);
  CHECK(registry_find(&reg, "wte") && !registry_find(&reg, "lm_head"), "the first stage holds wte, no lm_head");
  registry_free(&reg);
  registry_init(&reg, 0, 1);
  model_register(&reg, &tied, &last);
  CHECK(registry_find(&reg, "wte") && !registry_find(&reg, "lm_head"), "a tied last stage holds wte's copy");
  registry_free(&reg);
}

/* ε is the model's: the same weights give another loss with ε 0.1 than with
 * 1e-5 (by far more than rounding), and the default (0) is 1e-5 exactly. */
static void check_norm_eps(model_shape shape) {
  const backend *be = backend_cpu();
  const int B = 2, T = 5;
  int32_t inputs[10], targets[10];
  for (int i = 0; i < B * T; i++) inputs[i] = (int32_t)((3 * i + 1) % shape.vocab_size), targets[i] = (int32_t)(i % 7);
  double loss[3];
  const double eps[3] = {0, 1e-5, 0.1};
  for (int k = 0; k < 3; k++) {
    model m;
    shape.norm_eps = eps[k];
    model_create(&m, be, shape, B, T, NULL);
    float *params = be->host_pointer(m.w.params);
    for (size_t i = 0; i < m.layout.reg.n_local_total; i++) params[i] = (float)(0.05 * normal(i));
    loss[k] = model_forward_loss(&m, inputs, targets, B, T);
    model_free(&m);
  }
  CHECK(loss[0] == loss[1], "eps 0 means 1e-5: %.17g vs %.17g", loss[0], loss[1]);
  CHECK(fabs(loss[2] - loss[1]) > 1e-4 * fabs(loss[1]), "eps 0.1 changes the loss: %.9g vs %.9g", loss[2], loss[1]);
}

int main(void) {
  const model_shape gpt2 = model_shape_gpt2(2, 2, 8, 11, 5);
  check_model("GPT-2", gpt2, RECOMPUTE_NONE, NULL, NULL);
  model_shape llama = gpt2;
  llama.norm = NORM_RMSNORM, llama.mlp = MLP_SWIGLU, llama.position = POSITION_ROPE, llama.no_bias = true;
  check_model("Llama-style", llama, RECOMPUTE_NONE, NULL, NULL);
  /* Llama's own head and ε; every element of lm_head checked */
  model_shape untied = llama;
  untied.untied_head = true, untied.norm_eps = 1e-6;
  check_model("Llama-style, untied head, eps 1e-6", untied, RECOMPUTE_NONE, NULL, "lm_head");
  model_shape untied_gpt2 = gpt2;
  untied_gpt2.untied_head = true, untied_gpt2.norm_eps = 0.1;
  check_model("GPT-2, untied head, eps 0.1", untied_gpt2, RECOMPUTE_NONE, NULL, "lm_head");
  check_untied_layout(untied);
  check_norm_eps(llama);
  check_norm_eps(gpt2);
  model_shape linear = gpt2;
  snprintf(linear.layer_pattern, sizeof linear.layer_pattern, "L");
  linear.linear_chunk = 2; /* does not divide T = 5 */
  check_model("linear attention, no decay, chunk 2", linear, RECOMPUTE_NONE, NULL, NULL);
  linear.decay_base = 8;
  linear.position = POSITION_NONE;
  check_model("linear attention with decay, no positions", linear, RECOMPUTE_NONE, NULL, NULL);
  model_shape hybrid = llama;
  snprintf(hybrid.layer_pattern, sizeof hybrid.layer_pattern, "LS");
  hybrid.decay_base = 4;
  static float kept[1 << 16], selective[1 << 16], full[1 << 16];
  check_model("hybrid LS, Llama-style", hybrid, RECOMPUTE_NONE, kept, NULL);
  check_model("hybrid, selective recompute", hybrid, RECOMPUTE_SELECTIVE, selective, NULL);
  check_model("hybrid, full recompute", hybrid, RECOMPUTE_FULL, full, NULL);
  registry reg;
  registry_init(&reg, 0, 1);
  model_register(&reg, &hybrid, NULL);
  CHECK(reg.n_local_total <= (1 << 16), "test buffers hold the gradient");
  CHECK(memcmp(kept, selective, reg.n_local_total * sizeof(float)) == 0 &&
            memcmp(kept, full, reg.n_local_total * sizeof(float)) == 0,
        "recomputation gives the same gradient bits");
  registry_free(&reg);
  return test_summary("test_model_grad");
}

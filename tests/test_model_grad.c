/* test_model_grad — the whole model's backward against finite differences of
 * its forward, on a tiny GPT-2 (2 blocks, 2 heads, d_model 8, vocab 11, T 5,
 * B 2). Every parameter is set to a random value (norm gains near 1, biases
 * nonzero) so that no term of the gradient hides behind a zero.
 *
 * Central differences with h = 1e-2 on the mean token loss, in fp32. The
 * forward's rounding (~1e-7 relative on a loss of ~2.4, summed over 10
 * tokens) divided by 2h gives ~2e-5 of noise per component; the h² truncation
 * term is of the same order. Over 400 sampled components the relative error
 * of the whole vector ‖g_fd − g‖/‖g‖ is then ~1e-4 (observed 1.1e-4); we allow 2e-3. A missing
 * or wrong term in any backward (a dropped residual, a transposed GEMM) gives
 * errors of order 1.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "backend.h"
#include "model.h"
#include "param_init.h"
#include "testing.h"

static double normal(uint64_t i) { return param_init_normal(2024, "test", (int64_t)i); }

int main(void) {
  const backend *be = backend_cpu();
  model_shape shape = {.n_layer = 2, .n_head = 2, .d_model = 8, .vocab_size = 11, .seq_len = 5};
  const int B = 2, T = 5, N = B * T;
  model m;
  model_create(&m, be, shape, B, T, NULL);
  const size_t n_params = m.reg.n_local_total;
  float *params = be->host_pointer(m.params);
  const float *grads = be->host_pointer(m.grads);
  size_t k = 0;
  for (int p = 0; p < m.reg.n_params; p++) {
    const param_spec *spec = &m.reg.params[p];
    for (size_t i = 0; i < spec->n_local; i++, k++) {
      double base = spec->init == INIT_ONES ? 1.0 : 0.0;
      params[spec->offset + i] = (float)(base + 0.3 * normal(k));
    }
  }
  int32_t inputs[10], targets[10];
  for (int i = 0; i < N; i++) {
    inputs[i] = (int32_t)((7 * i + 3) % shape.vocab_size);
    targets[i] = (int32_t)((5 * i + 1) % shape.vocab_size);
  }

  be->zero_act(m.grads, n_params);
  double loss = model_forward_backward(&m, inputs, targets, B, T, 1.0f / N, NULL, NULL) / N;
  CHECK(loss > 1.0 && loss < 10.0, "plausible mean loss %g", loss);
  /* the loss of forward_backward equals the forward-only loss */
  CHECK_CLOSE(model_forward_loss(&m, inputs, targets, B, T) / N, loss, 1e-6, 0, "same loss");

  /* sample components: the first element of every tensor plus random ones */
  enum { N_SAMPLES = 400 };
  size_t picks[N_SAMPLES];
  int n_picks = 0;
  for (int p = 0; p < m.reg.n_params && n_picks < N_SAMPLES; p++) picks[n_picks++] = m.reg.params[p].offset;
  for (uint64_t s = 0; n_picks < N_SAMPLES; s++)
    picks[n_picks++] = (size_t)(hash_mix64(s + 77) % n_params);

  const float h = 1e-2f;
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
  double rel = sqrt(err_sq / ref_sq);
  printf("whole model: relative gradient error %.3g over %d components (worst abs %.3g, |g| %.3g)\n",
         rel, n_picks, worst, sqrt(ref_sq));
  CHECK(rel < 2e-3, "model gradient matches finite differences: rel %g", rel);

  /* gradients accumulate: a second pass doubles them */
  float *first = malloc(n_params * sizeof *first);
  for (size_t i = 0; i < n_params; i++) first[i] = grads[i];
  model_forward_backward(&m, inputs, targets, B, T, 1.0f / N, NULL, NULL);
  double dev = 0;
  for (size_t i = 0; i < n_params; i++) dev = fmax(dev, fabs(grads[i] - 2 * first[i]));
  CHECK(dev < 1e-6, "second micro-batch accumulates (max deviation %g)", dev);
  free(first);
  model_free(&m);
  return test_summary("test_model_grad");
}

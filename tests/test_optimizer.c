/* test_optimizer — AdamW with clipping and the learning-rate schedule,
 * against values computed by hand from their definitions, and the
 * multi-tensor step against the per-tensor step it replaced. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "lr_schedule.h"
#include "model.h"
#include "optimizer.h"
#include "testing.h"

static void test_schedule(void) {
  lr_schedule s = {.peak_lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .total_steps = 110};
  CHECK_CLOSE(lr_at_step(&s, 1), 0.1, 1e-12, 0, "warmup step 1 = 1/10 of peak");
  CHECK_CLOSE(lr_at_step(&s, 5), 0.5, 1e-12, 0, "warmup step 5");
  CHECK_CLOSE(lr_at_step(&s, 10), 1.0, 1e-12, 0, "end of warmup = peak");
  /* halfway through the decay: cos(π/2) = 0, so min + (peak − min)/2 = 0.55 */
  CHECK_CLOSE(lr_at_step(&s, 60), 0.55, 1e-12, 0, "halfway");
  /* a quarter: 0.1 + 0.45·(1 + cos(π/4)) = 0.1 + 0.45·1.70711 = 0.868198 */
  CHECK_CLOSE(lr_at_step(&s, 35), 0.8681980515, 1e-9, 0, "quarter");
  CHECK_CLOSE(lr_at_step(&s, 110), 0.1, 1e-12, 0, "end = floor");
  CHECK_CLOSE(lr_at_step(&s, 500), 0.1, 1e-12, 0, "past the end stays at the floor");
  lr_schedule flat = {.peak_lr = 2.0, .min_lr = 2.0, .warmup_steps = 0, .total_steps = 10};
  CHECK_CLOSE(lr_at_step(&flat, 3), 2.0, 1e-12, 0, "no warmup, constant");
}

/* What both optimizer tests start from: a CPU model (one sequence of
 * shape.seq_len tokens) whose n parameters are init[i] = init_value(i), and
 * its optimizer: AdamW β₁ 0.9, β₂ 0.95, ε 1e-8, weight decay 0.1, clip 1. */
typedef struct optimizer_fixture {
  model m;
  optimizer opt;
  float *init;
  size_t n;
} optimizer_fixture;
static void fixture_create(optimizer_fixture *f, const backend *be, model_shape shape, float (*init_value)(size_t)) {
  model_create(&f->m, be, shape, 1, shape.seq_len, NULL);
  f->n = f->m.layout.reg.n_local_total;
  f->init = malloc(f->n * sizeof *f->init);
  for (size_t i = 0; i < f->n; i++) f->init[i] = init_value(i);
  be->act_from_host(f->m.w.params, f->init, f->n);
  adamw_settings settings = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .grad_clip = 1.0};
  optimizer_create(&f->opt, be, &f->m, f->init, settings, NULL);
}
static void fixture_free(optimizer_fixture *f) {
  optimizer_free(&f->opt);
  model_free(&f->m);
  free(f->init);
}

static float init_steps(size_t i) { return 0.5f + 0.01f * (float)(i % 7); }

static void test_adamw_and_clipping(void) {
  const backend *be = backend_cpu();
  optimizer_fixture f;
  fixture_create(&f, be, (model_shape){.n_layer = 1, .n_head = 1, .d_model = 4, .vocab_size = 5, .seq_len = 3},
                 init_steps);
  model *m = &f.m;
  optimizer *opt = &f.opt;
  const size_t n = f.n;
  const float *init = f.init;
  float *grads = be->host_pointer(m->w.grads);
  for (size_t i = 0; i < n; i++) grads[i] = (i % 2 ? 1.0f : -2.0f) * (float)(1 + i % 3);
  double sum_sq = 0;
  for (size_t i = 0; i < n; i++) sum_sq += (double)grads[i] * grads[i];
  double norm = optimizer_grad_norm(opt, m);
  CHECK_CLOSE(norm, sqrt(sum_sq), 1e-12, 0, "gradient norm");
  double clip = optimizer_step(opt, m, 0.01, norm);
  CHECK_CLOSE(clip, 1.0 / (norm + 1e-6), 1e-12, 0, "clip factor = clip/(norm+1e-6)");

  /* step 1 by hand: g = c·grad; m = 0.1 g; v = 0.05 g²; m̂ = g, v̂ = g²;
   * w ← w − lr (g/(|g|+eps) + wd·w)   (wd only where the registry says) */
  const float *master_host = (const float *)be->host_pointer(opt->master);
  const float *m_host = (const float *)be->host_pointer(opt->m);
  const float *v_host = (const float *)be->host_pointer(opt->v);
  int bad = 0;
  for (int p = 0; p < m->layout.reg.n_params; p++) {
    const param_spec *spec = &m->layout.reg.params[p];
    double wd = spec->weight_decay ? 0.1 : 0.0;
    for (size_t i = spec->offset; i < spec->offset + spec->n_local; i++) {
      double g = clip * grads[i];
      double want = init[i] - 0.01 * (g / (fabs(g) + 1e-8) + wd * init[i]);
      bad += fabs(master_host[i] - want) > 1e-6;
      bad += fabs(m_host[i] - 0.1 * g) > 1e-6 * fabs(g);
      bad += fabs(v_host[i] - 0.05 * g * g) > 1e-6 * g * g;
    }
  }
  CHECK(bad == 0, "AdamW step 1 matches the hand formula (%d mismatches)", bad);
  /* a literal worked by hand: element 0 of wte has w = 0.5, grad = −2 → g < 0,
   * so w ← 0.5 − 0.01·(−1 + 0.1·0.5) = 0.5 + 0.0095 = 0.5095 */
  CHECK_CLOSE(master_host[0], 0.5095, 1e-6, 0, "worked example");
  /* compute weights follow the master copy */
  const float *params = be->host_pointer(m->w.params);
  CHECK(params[5] == master_host[5], "compute weights refreshed");

  /* step 2 with zero gradient: moments decay, weight decay acts on matrices
   * only; norm gains (ones-initialised here to 0.5+...) move only by Adam's
   * momentum, never by decay */
  for (size_t i = 0; i < n; i++) grads[i] = 0;
  float before[64];
  for (int i = 0; i < 64 && (size_t)i < n; i++) before[i] = master_host[i];
  optimizer_step(opt, m, 0.01, 0.0);
  const param_spec *ln = registry_find(&m->layout.reg, "layers.0.ln1.weight");
  const size_t j = ln->offset;
  /* m₂ = 0.9 m₁, v₂ = 0.95 v₁; m̂ = m₂/(1−0.81), v̂ = v₂/(1−0.9025) */
  double g1 = clip * (j % 2 ? 1.0 : -2.0) * (double)(1 + j % 3);
  double m2 = 0.9 * 0.1 * g1, v2 = 0.95 * 0.05 * g1 * g1;
  double want = before[j] - 0.01 * ((m2 / 0.19) / (sqrt(v2 / 0.0975) + 1e-8));
  CHECK_CLOSE(master_host[j], want, 1e-6, 0, "step 2 bias correction, no decay on a norm gain");
  fixture_free(&f);
}

/* The optimizer's step is one sum_squares_multi and one adamw_multi over
 * segment tables built at optimizer_create. Against the per-tensor loop it
 * replaced (sum_squares per tensor added per tp group, adamw per tensor with
 * its decay), run here on copies of the same state: the same norm and the
 * same master weights, moments and compute weights, bit for bit, over steps
 * with and without clipping. */
static float init_waves(size_t i) { return 0.3f * sinf(0.7f * (float)i) + 0.01f * (float)(i % 5); }

static void test_multi_tensor_step(void) {
  const backend *be = backend_cpu();
  optimizer_fixture f;
  fixture_create(&f, be, (model_shape){.n_layer = 2, .n_head = 2, .d_model = 8, .vocab_size = 11, .seq_len = 5},
                 init_waves);
  model *m = &f.m;
  optimizer *opt = &f.opt;
  const size_t n = f.n;
  const float *init = f.init;
  float *w_ref = malloc(n * sizeof *w_ref), *m_ref = calloc(n, sizeof *m_ref), *v_ref = calloc(n, sizeof *v_ref);
  memcpy(w_ref, init, n * sizeof *w_ref);
  float *grads = be->host_pointer(m->w.grads);
  const double scales[] = {3.0, 0.01, 0.5}; /* norms ≈ 90, 0.3, 15: clipped, not, clipped */
  size_t differ = 0;
  int norm_differ = 0;
  for (int step = 1; step <= 3; step++) {
    for (size_t i = 0; i < n; i++) grads[i] = (float)(scales[step - 1] * cos(1.3 * (double)i + step));
    double sums[2] = {0, 0};
    for (int k = 0; k < m->layout.reg.n_params; k++) {
      const param_spec *p = &m->layout.reg.params[k];
      sums[p->tp_split_dim >= 0] += be->sum_squares(act_at(be, m->w.grads, p->offset), p->n_local);
    }
    const double norm_ref = sqrt(sums[0] + sums[1]);
    const double norm = optimizer_grad_norm(opt, m);
    norm_differ += norm != norm_ref;
    const double clip = optimizer_step(opt, m, 0.01, norm);
    printf("  step %d: grad norm %.6g, clip factor %.6g\n", step, norm, clip);
    for (int k = 0; k < m->layout.reg.n_params; k++) {
      const param_spec *p = &m->layout.reg.params[k];
      be->adamw((f32_t *)(w_ref + p->offset), act_at(be, m->w.grads, p->offset), (f32_t *)(m_ref + p->offset),
                (f32_t *)(v_ref + p->offset), p->n_local, 0.01f, 0.9f, 0.95f, 1e-8f, p->weight_decay ? 0.1f : 0.0f,
                (float)clip, step);
    }
    const float *w = be->host_pointer(opt->master), *mo = be->host_pointer(opt->m), *vo = be->host_pointer(opt->v);
    const float *params = be->host_pointer(m->w.params);
    for (size_t i = 0; i < n; i++)
      differ += memcmp(&w[i], &w_ref[i], 4) || memcmp(&mo[i], &m_ref[i], 4) || memcmp(&vo[i], &v_ref[i], 4) ||
                memcmp(&params[i], &w_ref[i], 4);
  }
  CHECK(norm_differ == 0, "grad norm by sum_squares_multi equals the per-tensor sum (%d steps differ)", norm_differ);
  CHECK(differ == 0, "adamw_multi step equals the per-tensor step bit for bit (%zu element-steps differ of %zu)",
        differ, 3 * n);
  fixture_free(&f);
  free(w_ref), free(m_ref), free(v_ref);
}

int main(void) {
  test_schedule();
  test_adamw_and_clipping();
  test_multi_tensor_step();
  return test_summary("test_optimizer");
}

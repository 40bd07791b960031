/* adamw — AdamW on fp32 master weights: one contiguous range (adamw) or a
 * list of segments in one pass (adamw_multi, the optimizer's whole ZeRO
 * range with a weight decay per tensor).
 *
 * Loshchilov & Hutter's decoupled weight decay, as PyTorch's AdamW:
 *   g = grad·grad_scale                    (grad_scale carries the clipping)
 *   m = β1·m + (1−β1)·g,   v = β2·v + (1−β2)·g²
 *   m̂ = m/(1−β1ᵗ),         v̂ = v/(1−β2ᵗ)
 *   w = w − lr·(m̂/(√v̂ + ε) + λ·w)
 * with t the optimizer step counted from 1. The decay is applied to the
 * weight before this step's update (w on the right is the old value).
 * Both ops run the same per-element function, so a segment's result is
 * adamw's bit for bit (the build does not contract to FMAs: ISO C mode).
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "fail.h"

static inline void adamw_element(float *w, float *mom, float *var, float grad, float lr, float beta1, float beta2,
                                 float eps, float weight_decay, float grad_scale, float correction1,
                                 float correction2) {
  float g = grad * grad_scale;
  float mi = beta1 * *mom + (1.0f - beta1) * g;
  float vi = beta2 * *var + (1.0f - beta2) * g * g;
  *mom = mi;
  *var = vi;
  float m_hat = mi / correction1, v_hat = vi / correction2;
  *w -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * *w);
}

void cpu_adamw(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, float grad_scale,
               int64_t step_t) {
  float *w = F(master), *mom = F(m), *var = F(v);
  const float *gr = CF(grad);
  const float correction1 = 1.0f - powf(beta1, (float)step_t);
  const float correction2 = 1.0f - powf(beta2, (float)step_t);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++)
    adamw_element(&w[i], &mom[i], &var[i], gr[i], lr, beta1, beta2, eps, weight_decay, grad_scale, correction1,
                  correction2);
}

segment_table *cpu_segments_create(const tensor_segment *segments, int n_segments) {
  size_t total_elems;
  int n_groups;
  segments_check(segments, n_segments, &total_elems, &n_groups);
  cpu_segment_table *t = xmalloc(sizeof *t + (size_t)n_segments * sizeof *segments, "segment table");
  t->n_segments = n_segments;
  t->n_groups = n_groups;
  for (int s = 0; s < n_segments; s++) t->segments[s] = segments[s];
  return (segment_table *)t;
}

void cpu_segments_free(segment_table *table) { free(table); }

/* One parallel region for the whole list: each segment is a worksharing
 * loop without a barrier after it (segments share no element), so the
 * threads meet once, not once per tensor. */
void cpu_adamw_multi(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, const segment_table *segments,
                     float lr, float beta1, float beta2, float eps, float grad_scale, int64_t step_t) {
  const cpu_segment_table *t = (const cpu_segment_table *)segments;
  const float correction1 = 1.0f - powf(beta1, (float)step_t);
  const float correction2 = 1.0f - powf(beta2, (float)step_t);
#pragma omp parallel
  for (int s = 0; s < t->n_segments; s++) {
    const tensor_segment *seg = &t->segments[s];
    float *w = F(master) + seg->offset, *mom = F(m) + seg->offset, *var = F(v) + seg->offset;
    const float *gr = CF(grad) + seg->offset;
#pragma omp for schedule(static) nowait
    for (size_t i = 0; i < seg->n_elems; i++)
      adamw_element(&w[i], &mom[i], &var[i], gr[i], lr, beta1, beta2, eps, seg->weight_decay, grad_scale,
                    correction1, correction2);
  }
}

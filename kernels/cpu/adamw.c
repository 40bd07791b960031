/* adamw — AdamW on one contiguous range of fp32 master weights.
 *
 * Loshchilov & Hutter's decoupled weight decay, as PyTorch's AdamW:
 *   g = grad·grad_scale                    (grad_scale carries the clipping)
 *   m = β1·m + (1−β1)·g,   v = β2·v + (1−β2)·g²
 *   m̂ = m/(1−β1ᵗ),         v̂ = v/(1−β2ᵗ)
 *   w = w − lr·(m̂/(√v̂ + ε) + λ·w)
 * with t the optimizer step counted from 1. The decay is applied to the
 * weight before this step's update (w on the right is the old value).
 */
#include <math.h>

#include "cpu_ops.h"

void cpu_adamw(f32_t *master, const act_t *grad, f32_t *m, f32_t *v, size_t n, float lr,
               float beta1, float beta2, float eps, float weight_decay, float grad_scale,
               int64_t step_t) {
  float *w = F(master), *mom = F(m), *var = F(v);
  const float *gr = CF(grad);
  const float correction1 = 1.0f - powf(beta1, (float)step_t);
  const float correction2 = 1.0f - powf(beta2, (float)step_t);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float g = gr[i] * grad_scale;
    float mi = beta1 * mom[i] + (1.0f - beta1) * g;
    float vi = beta2 * var[i] + (1.0f - beta2) * g * g;
    mom[i] = mi;
    var[i] = vi;
    float m_hat = mi / correction1, v_hat = vi / correction2;
    w[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * w[i]);
  }
}

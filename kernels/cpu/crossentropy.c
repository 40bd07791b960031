/* crossentropy — fused softmax and cross-entropy over the vocabulary.
 *
 * Per row n of logits[N, V_stride] (first V columns real, the rest padding):
 *   p = softmax(logits[n, :V]),  loss[n] = −log p[target]
 * computed stably as logsumexp − logit[target]. When dlogits_scale ≠ 0 the
 * row is overwritten IN PLACE by the gradient of dlogits_scale·loss:
 *   dlogits = (p − onehot(target))·dlogits_scale, padding columns 0,
 * so the full-size probabilities never need a buffer of their own (as in
 * llm.c's fused classifier). Rows with target < 0 are ignored: loss 0, zero
 * gradient.
 */
#include <math.h>

#include "cpu_ops.h"

void cpu_softmax_crossentropy(f32_t *losses, act_t *logits, const ids_t *targets, int N, int V,
                              int V_stride, float dlogits_scale) {
  float *loss = F(losses), *z = F(logits);
  const int32_t *tgt = IDS(targets);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float *row = z + (size_t)n * V_stride;
    const int32_t target = tgt[n];
    if (target < 0) {
      loss[n] = 0.0f;
      if (dlogits_scale != 0.0f)
        for (int v = 0; v < V_stride; v++) row[v] = 0.0f;
      continue;
    }
    float max_logit = -INFINITY;
    for (int v = 0; v < V; v++) max_logit = fmaxf(max_logit, row[v]);
    /* exponentials in float (each ≤ 1 after the max shift), their sum in double */
    double sum = 0;
    for (int v = 0; v < V; v++) sum += expf(row[v] - max_logit);
    const double log_sum = log(sum) + max_logit;
    loss[n] = (float)(log_sum - row[target]);
    if (dlogits_scale != 0.0f) {
      const float shift = (float)log_sum;
      for (int v = 0; v < V; v++) row[v] = expf(row[v] - shift) * dlogits_scale;
      row[target] -= dlogits_scale;
      for (int v = V; v < V_stride; v++) row[v] = 0.0f;
    }
  }
}

/* crossentropy — softmax cross-entropy over a vocabulary split in shards.
 *
 * Megatron's vocab-parallel cross-entropy: each tensor-parallel rank holds
 * the logits of its vocabulary shard only, and three small reductions over
 * the shards (a MAX of N row maxima, a SUM of 2N numbers) give every rank the
 * exact loss without ever gathering the full [N, V] logits:
 *   m = max_v z_v,  s = Σ_v exp(z_v − m),  loss = log s + m − z_target.
 * The last phase overwrites the shard's logits IN PLACE with the gradient of
 * dlogits_scale·loss: (softmax − onehot)·dlogits_scale, padding columns 0, so
 * the probabilities need no buffer of their own (as llm.c's fused
 * classifier). With one shard the reductions are the identity. Exponentials
 * are taken in float (each ≤ 1 after the shift), their sums in double.
 * Rows whose target is < 0 are ignored: loss 0 and a zero gradient row.
 */
#include <math.h>

#include "cpu_ops.h"

void cpu_crossentropy_max(f32_t *row_max, const act_t *logits, int N, int V, int V_stride) {
  float *mx = F(row_max);
  const float *z = CF(logits);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *row = z + (size_t)n * V_stride;
    float m = -INFINITY;
    for (int v = 0; v < V; v++) m = fmaxf(m, row[v]);
    mx[n] = m;
  }
}

void cpu_crossentropy_sumexp(f32_t *stats, const act_t *logits, const f32_t *row_max,
                             const ids_t *targets, int N, int V, int V_stride, int vocab_start) {
  float *st = F(stats);
  const float *z = CF(logits), *mx = CF(row_max);
  const int32_t *tgt = IDS(targets);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *row = z + (size_t)n * V_stride;
    double sum = 0;
    for (int v = 0; v < V; v++) sum += expf(row[v] - mx[n]);
    const int32_t local = tgt[n] - vocab_start;
    st[2 * n] = (float)sum;
    st[2 * n + 1] = tgt[n] >= 0 && local >= 0 && local < V ? row[local] : 0.0f;
  }
}

void cpu_crossentropy_finish(f32_t *losses, act_t *logits, const f32_t *row_max, const f32_t *stats,
                             const ids_t *targets, int N, int V, int V_stride, int vocab_start,
                             float dlogits_scale) {
  float *loss = F(losses), *z = F(logits);
  const float *mx = CF(row_max), *st = CF(stats);
  const int32_t *tgt = IDS(targets);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    float *row = z + (size_t)n * V_stride;
    if (tgt[n] < 0) {
      loss[n] = 0.0f;
      if (dlogits_scale != 0.0f)
        for (int v = 0; v < V_stride; v++) row[v] = 0.0f;
      continue;
    }
    const double log_sum = log((double)st[2 * n]) + mx[n];
    loss[n] = (float)(log_sum - st[2 * n + 1]);
    if (dlogits_scale == 0.0f) continue;
    const float shift = (float)log_sum;
    for (int v = 0; v < V; v++) row[v] = expf(row[v] - shift) * dlogits_scale;
    for (int v = V; v < V_stride; v++) row[v] = 0.0f;
    const int32_t local = tgt[n] - vocab_start;
    if (local >= 0 && local < V) row[local] -= dlogits_scale;
  }
}

/* test_param_init — initial values are a pure function of (seed, name,
 * logical index): the same on every call, different between seeds and names,
 * standard normal in distribution, and — what principle 2 is for — the shard
 * a tensor-parallel rank initialises equals the matching slice of the whole
 * tensor. */
#include <math.h>
#include <stdlib.h>

#include "param_init.h"
#include "registry.h"
#include "testing.h"

int main(void) {
  CHECK(param_init_normal(1, "w", 5) == param_init_normal(1, "w", 5), "deterministic");
  CHECK(param_init_normal(1, "w", 5) != param_init_normal(2, "w", 5), "seed matters");
  CHECK(param_init_normal(1, "w", 5) != param_init_normal(1, "v", 5), "name matters");

  /* moments over 200000 draws: the standard error of the mean is 1/sqrt(n) =
   * 0.0022, of the variance sqrt(2/n) = 0.0032; 5 standard errors of slack */
  const int n = 200000;
  double sum = 0, sum_sq = 0;
  for (int i = 0; i < n; i++) {
    double x = param_init_normal(42, "layers.0.attn.wqkv", i);
    sum += x;
    sum_sq += x * x;
  }
  double mean = sum / n, var = sum_sq / n - mean * mean;
  CHECK(fabs(mean) < 0.011, "mean %g ~ 0", mean);
  CHECK(fabs(var - 1) < 0.016, "variance %g ~ 1", var);

  /* tp layout independence, for a split on dim 1 of a 3-D tensor and dim 0 of a 2-D one */
  const int64_t shape3[] = {3, 4, 5}, shape2[] = {6, 7};
  registry whole;
  registry_init(&whole, 0, 1);
  registry_add(&whole, "a", 3, shape3, 1, INIT_NORMAL, 0.02, true, 0);
  registry_add(&whole, "b", 2, shape2, 0, INIT_NORMAL, 0.5, true, 0);
  registry_add(&whole, "c", 1, (int64_t[]){9}, -1, INIT_ONES, 0, false, 0);
  float *full = malloc(whole.n_local_total * sizeof *full);
  param_init_all(&whole, 99, full);
  const param_spec *a_whole = registry_find(&whole, "a"), *b_whole = registry_find(&whole, "b");
  for (int tp = 2; tp <= 2; tp++) {
    for (int rank = 0; rank < tp; rank++) {
      registry shard;
      registry_init(&shard, rank, tp);
      registry_add(&shard, "a", 3, shape3, 1, INIT_NORMAL, 0.02, true, 0);
      registry_add(&shard, "b", 2, shape2 /* 6 rows split in 2 */, 0, INIT_NORMAL, 0.5, true, 0);
      registry_add(&shard, "c", 1, (int64_t[]){9}, -1, INIT_ONES, 0, false, 0);
      float *local = malloc(shard.n_local_total * sizeof *local);
      param_init_all(&shard, 99, local);
      const param_spec *a = registry_find(&shard, "a"), *b = registry_find(&shard, "b");
      CHECK(a->n_local == 30 && b->n_local == 21, "shard sizes %zu %zu", a->n_local, b->n_local);
      int mismatches = 0;
      for (int i = 0; i < 3; i++)
        for (int h = 0; h < 2; h++)
          for (int j = 0; j < 5; j++) {
            float got = local[a->offset + (size_t)(i * 2 + h) * 5 + j];
            float want = full[a_whole->offset + (size_t)(i * 4 + rank * 2 + h) * 5 + j];
            mismatches += got != want;
          }
      for (int r = 0; r < 3; r++)
        for (int c = 0; c < 7; c++)
          mismatches += local[b->offset + (size_t)r * 7 + c] !=
                        full[b_whole->offset + (size_t)(rank * 3 + r) * 7 + c];
      CHECK(mismatches == 0, "tp rank %d of %d: %d values differ from the whole tensor", rank, tp,
            mismatches);
      CHECK(local[registry_find(&shard, "c")->offset + 8] == 1.0f, "ones init");
      free(local);
      registry_free(&shard);
    }
  }
  free(full);
  registry_free(&whole);
  return test_summary("test_param_init");
}

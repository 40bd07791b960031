/* pipeline_partition — see pipeline_partition.h. */
#include "pipeline_partition.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

typedef struct cut_cost {
  double largest, squares; /* compared in this order */
} cut_cost;

static int better(cut_cost a, cut_cost b) {
  const double tol = 1e-9 * (b.largest > 0 ? b.largest : 1);
  if (a.largest < b.largest - tol) return 1;
  if (a.largest > b.largest + tol) return 0;
  return a.squares < b.squares;
}

int pipe_partition_balanced(int n_layer, int n_chunks, const double *layer_costs, double first_cost,
                            double last_cost, int *counts, char *err, size_t err_bytes) {
  if (n_chunks < 1 || n_layer < n_chunks) {
    snprintf(err, err_bytes,
             "%d model chunks (--pp × --pp-virtual) need at least one layer each, but n_layer is %d: "
             "lower --pp or --pp-virtual, or use more layers",
             n_chunks, n_layer);
    return -1;
  }
  /* best[g][l]: the first g chunks hold the first l layers; choice = size of chunk g−1 */
  const size_t stride = (size_t)n_layer + 1;
  double *prefix = xmalloc(stride * sizeof *prefix, "pipeline partition"); /* cost of layers [0, l) */
  prefix[0] = 0;
  for (int l = 0; l < n_layer; l++) prefix[l + 1] = prefix[l] + layer_costs[l];
  cut_cost *best = xmalloc((size_t)(n_chunks + 1) * stride * sizeof *best, "pipeline partition");
  int *choice = xcalloc((size_t)(n_chunks + 1) * stride, sizeof *choice, "pipeline partition");
  for (size_t i = 0; i < (size_t)(n_chunks + 1) * stride; i++) best[i] = (cut_cost){1e300, 1e300};
  best[0] = (cut_cost){0, 0};
  for (int g = 1; g <= n_chunks; g++)
    for (int l = g; l <= n_layer - (n_chunks - g); l++)
      for (int size = 1; size <= l - (g - 1); size++) {
        const cut_cost before = best[(size_t)(g - 1) * stride + (size_t)(l - size)];
        if (before.largest >= 1e300) continue;
        double cost = prefix[l] - prefix[l - size];
        if (g == 1) cost += first_cost;
        if (g == n_chunks) cost += last_cost;
        const cut_cost with = {before.largest > cost ? before.largest : cost, before.squares + cost * cost};
        if (better(with, best[(size_t)g * stride + (size_t)l])) {
          best[(size_t)g * stride + (size_t)l] = with;
          choice[(size_t)g * stride + (size_t)l] = size;
        }
      }
  for (int g = n_chunks, l = n_layer; g >= 1; g--) {
    counts[g - 1] = choice[(size_t)g * stride + (size_t)l];
    l -= counts[g - 1];
  }
  free(best);
  free(choice);
  free(prefix);
  return 0;
}

int pipe_partition_parse(const char *text, int n_layer, int n_chunks, int *counts, char *err,
                         size_t err_bytes) {
  int n = 0, sum = 0;
  const char *p = text;
  while (*p) {
    char *end = NULL;
    errno = 0;
    long value = strtol(p, &end, 10);
    if (end == p || errno || (*end && *end != ',')) {
      snprintf(err, err_bytes, "--pp-layers '%s' is not a comma-separated list of layer counts", text);
      return -1;
    }
    if (value < 1) {
      snprintf(err, err_bytes, "--pp-layers '%s': every chunk needs at least one layer", text);
      return -1;
    }
    if (value > n_layer) { /* also keeps (int)value and the sum from wrapping: 4294967297 is not 1 */
      snprintf(err, err_bytes, "--pp-layers '%s': a chunk of %ld layers, more than n_layer %d", text, value,
               n_layer);
      return -1;
    }
    if (n < n_chunks) counts[n] = (int)value;
    n++;
    sum += (int)value;
    p = *end ? end + 1 : end;
  }
  if (n != n_chunks) {
    snprintf(err, err_bytes, "--pp-layers '%s' gives %d counts; --pp × --pp-virtual makes %d chunks", text, n,
             n_chunks);
    return -1;
  }
  if (sum != n_layer) {
    snprintf(err, err_bytes, "--pp-layers '%s' sums to %d layers, but n_layer is %d", text, sum, n_layer);
    return -1;
  }
  return 0;
}

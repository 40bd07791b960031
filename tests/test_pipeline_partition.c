/* test_pipeline_partition — the layer partition of a pipeline:
 *  - balanced: against brute force over every cut of n_layer ≤ 10 layers into
 *    up to 5 chunks, with uniform layers and with heavy first/last chunks,
 *    the chosen cut has the smallest largest chunk cost, and among those the
 *    smallest sum of squares; every chunk holds ≥ 1 layer and they sum to
 *    n_layer;
 *  - known cases: 12 uniform layers on 4 chunks is 3,3,3,3; layers of
 *    different cost (a hybrid model) are weighed one by one; a head worth
 *    five layers on the last of 4 chunks of 12 layers leaves it fewer layers
 *    (GPT-2 124M's proportions);
 *  - more chunks than layers is refused with a message;
 *  - --pp-layers: a good list parses; a wrong count, a zero, a sum other
 *    than n_layer and text that is not a list are each refused with a
 *    message naming the problem.
 * Costs are small integers here, so comparisons are exact. */
#include <stdio.h>
#include <string.h>

#include "pipeline_partition.h"
#include "testing.h"

static double chunk_cost(int g, int n_chunks, int size, double layer, double first, double last) {
  return size * layer + (g == 0 ? first : 0) + (g == n_chunks - 1 ? last : 0);
}

/* the best (largest, squares) over every cut, by enumeration */
static void brute_force(int n_layer, int n_chunks, double layer, double first, double last, double *best_largest,
                        double *best_squares) {
  int sizes[16];
  *best_largest = 1e300, *best_squares = 1e300;
  /* enumerate compositions of n_layer into n_chunks positive parts */
  for (int i = 0; i < n_chunks; i++) sizes[i] = 1;
  sizes[n_chunks - 1] = n_layer - (n_chunks - 1);
  for (;;) {
    double largest = 0, squares = 0;
    for (int g = 0; g < n_chunks; g++) {
      const double c = chunk_cost(g, n_chunks, sizes[g], layer, first, last);
      if (c > largest) largest = c;
      squares += c * c;
    }
    if (largest < *best_largest || (largest == *best_largest && squares < *best_squares))
      *best_largest = largest, *best_squares = squares;
    /* next composition: move one layer rightwards, odometer style */
    int g = n_chunks - 2;
    while (g >= 0) {
      int rest = 0;
      for (int h = g + 1; h < n_chunks; h++) rest += sizes[h];
      if (rest - (n_chunks - 1 - g) > 0) break; /* chunk g can grow */
      g--;
    }
    if (g < 0) break;
    sizes[g]++;
    int used = 0;
    for (int h = 0; h <= g; h++) used += sizes[h];
    for (int h = g + 1; h < n_chunks - 1; h++) sizes[h] = 1, used++;
    sizes[n_chunks - 1] = n_layer - used;
  }
}

int main(void) {
  char err[512];
  int counts[64];
  const double costs[][3] = {{1, 0, 0}, {4, 1, 0}, {4, 0, 9}, {3, 2, 17}, {2, 5, 5}};
  int cases = 0;
  for (size_t c = 0; c < sizeof costs / sizeof costs[0]; c++)
    for (int L = 1; L <= 10; L++)
      for (int n = 1; n <= 5 && n <= L; n++) {
        const double layer = costs[c][0], first = costs[c][1], last = costs[c][2];
        double layer_costs[16];
        for (int i = 0; i < L; i++) layer_costs[i] = layer;
        CHECK(pipe_partition_balanced(L, n, layer_costs, first, last, counts, err, sizeof err) == 0, "L %d n %d: %s",
              L, n, err);
        int sum = 0, positive = 1;
        double largest = 0, squares = 0;
        for (int g = 0; g < n; g++) {
          sum += counts[g];
          positive &= counts[g] >= 1;
          const double cost = chunk_cost(g, n, counts[g], layer, first, last);
          if (cost > largest) largest = cost;
          squares += cost * cost;
        }
        double want_largest, want_squares;
        brute_force(L, n, layer, first, last, &want_largest, &want_squares);
        CHECK(sum == L && positive, "L %d n %d: counts sum to %d, each >= 1: %d", L, n, sum, positive);
        CHECK(largest == want_largest && squares == want_squares,
              "L %d n %d costs %g/%g/%g: largest %g squares %g, best %g %g", L, n, layer, first, last, largest,
              squares, want_largest, want_squares);
        cases++;
      }
  printf("balanced partitions checked against brute force: %d\n", cases);

  const double ones[12] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1};
  CHECK(pipe_partition_balanced(12, 4, ones, 0, 0, counts, err, sizeof err) == 0 && counts[0] == 3 && counts[1] == 3 &&
            counts[2] == 3 && counts[3] == 3,
        "12 uniform layers on 4 chunks: %d,%d,%d,%d", counts[0], counts[1], counts[2], counts[3]);
  CHECK(pipe_partition_balanced(12, 4, ones, 0, 5, counts, err, sizeof err) == 0 && counts[3] < counts[0],
        "a heavy head leaves the last chunk fewer layers: %d,%d,%d,%d", counts[0], counts[1], counts[2], counts[3]);
  printf("12 layers, head worth 5: %d,%d,%d,%d\n", counts[0], counts[1], counts[2], counts[3]);
  CHECK(pipe_partition_balanced(3, 4, ones, 0, 0, counts, err, sizeof err) != 0 && strstr(err, "n_layer is 3"),
        "more chunks than layers refused: '%s'", err);

  /* a hybrid model: softmax layers (cost 3) every fourth among linear ones
   * (cost 1): 8 layers LLLSLLLS on 2 chunks split 4,4 (cost 6 each) */
  const double hybrid[8] = {1, 1, 1, 3, 1, 1, 1, 3};
  CHECK(pipe_partition_balanced(8, 2, hybrid, 0, 0, counts, err, sizeof err) == 0 && counts[0] == 4 && counts[1] == 4,
        "per-layer costs: %d,%d", counts[0], counts[1]);
  const double front[6] = {5, 1, 1, 1, 1, 1};
  CHECK(pipe_partition_balanced(6, 2, front, 0, 0, counts, err, sizeof err) == 0 && counts[0] == 1 && counts[1] == 5,
        "a heavy first layer stands alone: %d,%d", counts[0], counts[1]);
  CHECK(pipe_partition_parse("3,4,4,3", 14, 4, counts, err, sizeof err) == 0 && counts[1] == 4 && counts[3] == 3,
        "a good --pp-layers parses");
  const struct { const char *text; int n_layer, n_chunks; const char *says; } bad[] = {
      {"3,4,4", 11, 4, "gives 3 counts"},
      {"3,0,4,4", 11, 4, "at least one layer"},
      {"3,4,4,4", 14, 4, "sums to 15"},
      {"3;4", 7, 2, "not a comma-separated list"},
      {"", 7, 2, "gives 0 counts"},
      {"3,,4", 7, 3, "not a comma-separated list"},
      {"4294967297,1", 2, 2, "more than n_layer 2"}, /* wrapped to 1,1 before: a sum of 2 */
      {"99999999999999999999,1", 2, 2, "not a comma-separated list"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = '\0';
    const int status = pipe_partition_parse(bad[i].text, bad[i].n_layer, bad[i].n_chunks, counts, err, sizeof err);
    CHECK(status != 0 && strstr(err, bad[i].says), "--pp-layers '%s': '%s' should say '%s'", bad[i].text, err,
          bad[i].says);
  }
  return test_summary("test_pipeline_partition");
}

/* compare_params — compares two parameter dumps (`--dump_params`: raw fp32,
 * logical layout) element by element. Prints the relative L2 difference
 * ‖a − b‖/‖b‖ and the largest absolute difference; exits 0 when the relative
 * difference is at most the tolerance given, 1 otherwise, 2 on bad input.
 * usage: compare_params A B TOLERANCE */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: compare_params A B TOLERANCE\n");
    return 2;
  }
  FILE *a = fopen(argv[1], "rb"), *b = fopen(argv[2], "rb");
  if (!a || !b) {
    fprintf(stderr, "compare_params: cannot open %s\n", a ? argv[2] : argv[1]);
    return 2;
  }
  const double tolerance = atof(argv[3]);
  double diff_sq = 0, ref_sq = 0, worst = 0;
  long n = 0;
  float x, y;
  for (;;) {
    size_t got_a = fread(&x, sizeof x, 1, a), got_b = fread(&y, sizeof y, 1, b);
    if (got_a != got_b) {
      fprintf(stderr, "compare_params: the files differ in length (after %ld values)\n", n);
      return 2;
    }
    if (!got_a) break;
    diff_sq += ((double)x - y) * ((double)x - y);
    ref_sq += (double)y * y;
    if (fabs((double)x - y) > worst || isnan(x)) worst = isnan(x) ? INFINITY : fabs((double)x - y);
    n++;
  }
  const double relative = ref_sq > 0 ? sqrt(diff_sq / ref_sq) : sqrt(diff_sq);
  printf("%ld parameters: relative difference %.3g, largest %.3g\n", n, relative, worst);
  return n > 0 && relative <= tolerance && isfinite(worst) ? 0 : 1;
}

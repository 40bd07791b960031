/* elementwise — the ops that touch each element once: residual adds, scaling,
 * the GELU activation and the sum of squares behind the gradient norm.
 *
 * GELU is GPT-2's tanh approximation:
 *   gelu(x) = ½x(1 + tanh(s(x + 0.044715x³))),  s = √(2/π)
 * and its derivative, written out so the backward needs only the input:
 *   gelu'(x) = ½(1 + t) + ½x(1 − t²)·s(1 + 3·0.044715x²),  t = tanh(s(x + 0.044715x³)).
 * gelu_backward OVERWRITES dinp (dinp may alias dout: each element is read
 * before it is written).
 */
#include <math.h>
#include <string.h>

#include "cpu_ops.h"

#define GELU_SCALE 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_CUBIC 0.044715f

void cpu_add(act_t *out, const act_t *a, const act_t *b, size_t n) {
  float *o = F(out);
  const float *x = CF(a), *y = CF(b);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) o[i] = x[i] + y[i];
}

void cpu_accumulate(act_t *dst, const act_t *src, size_t n) {
  float *d = F(dst);
  const float *s = CF(src);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) d[i] += s[i];
}

void cpu_copy_rows(act_t *dst, int ld_dst, const act_t *src, int ld_src, int rows, int cols) {
  float *d = F(dst);
  const float *s = CF(src);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; r++) memcpy(d + (size_t)r * ld_dst, s + (size_t)r * ld_src, (size_t)cols * sizeof *d);
}

void cpu_scale(act_t *x, float factor, size_t n) {
  float *v = F(x);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) v[i] *= factor;
}

void cpu_gelu_forward(act_t *out, const act_t *inp, size_t n) {
  float *o = F(out);
  const float *x = CF(inp);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float xi = x[i];
    o[i] = 0.5f * xi * (1.0f + tanhf(GELU_SCALE * (xi + GELU_CUBIC * xi * xi * xi)));
  }
}

void cpu_gelu_backward(act_t *dinp, const act_t *inp, const act_t *dout, size_t n) {
  float *di = F(dinp);
  const float *x = CF(inp), *d = CF(dout);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) {
    float xi = x[i];
    float t = tanhf(GELU_SCALE * (xi + GELU_CUBIC * xi * xi * xi));
    float local = 0.5f * (1.0f + t) +
                  0.5f * xi * (1.0f - t * t) * GELU_SCALE * (1.0f + 3.0f * GELU_CUBIC * xi * xi);
    di[i] = local * d[i];
  }
}

double cpu_sum_squares(const act_t *x, size_t n) {
  const float *v = CF(x);
  double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
  for (size_t i = 0; i < n; i++) sum += (double)v[i] * v[i];
  return sum;
}

/* elementwise — the ops that touch each element once: residual adds, scaling,
 * copies and the fp32 -> act_t cast, the GELU activation and the sums of
 * squares behind the gradient norm (one range, or a segment list summed per
 * group: sum_squares_multi).
 *
 * GELU is GPT-2's tanh approximation:
 *   gelu(x) = ½x(1 + tanh(s(x + 0.044715x³))),  s = √(2/π)
 * and its derivative, written out so the backward needs only the input:
 *   gelu'(x) = ½(1 + t) + ½x(1 − t²)·s(1 + 3·0.044715x²),  t = tanh(s(x + 0.044715x³)).
 * gelu_backward OVERWRITES dinp (dinp may alias dout: each element is read
 * before it is written).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_ops.h"
#include "fail.h"
#ifdef _OPENMP
#include <omp.h>
#endif

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

/* act_t is fp32 here: the cast is a copy (dst may equal src) */
void cpu_cast_f32_to_act(act_t *dst, const f32_t *src, size_t n) { memmove(dst, src, n * sizeof(float)); }

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

/* Σ x² of each of n_segments segments into seg_sums[s], in double (each
 * x² of an fp32 x is exact in double). Thread t sums its static-schedule
 * chunk of every segment into partial[s·T + t] in one parallel region; the
 * chunks are then added in thread order, so the sum is the same on every
 * run (an OpenMP reduction adds them in the order threads arrive). With one
 * thread it is the plain left-to-right sum. */
static void sum_squares_segments(const float *x, const tensor_segment *segments, int n_segments, double *seg_sums) {
#ifdef _OPENMP
  const int n_threads = omp_get_max_threads();
#else
  const int n_threads = 1;
#endif
  double *partial = xcalloc((size_t)n_segments * (size_t)n_threads, sizeof *partial, "sum of squares");
#pragma omp parallel
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num();
#else
    const int t = 0;
#endif
    for (int s = 0; s < n_segments; s++) {
      const float *v = x + segments[s].offset;
      double sum = 0;
#pragma omp for schedule(static) nowait
      for (size_t i = 0; i < segments[s].n_elems; i++) sum += (double)v[i] * v[i];
      partial[(size_t)s * n_threads + t] = sum;
    }
  }
  for (int s = 0; s < n_segments; s++) {
    double sum = 0;
    for (int t = 0; t < n_threads; t++) sum += partial[(size_t)s * n_threads + t];
    seg_sums[s] = sum;
  }
  free(partial);
}

double cpu_sum_squares(const act_t *x, size_t n) {
  const tensor_segment whole = {.offset = 0, .n_elems = n};
  double sum;
  sum_squares_segments(CF(x), &whole, 1, &sum);
  return sum;
}

/* per segment exactly as cpu_sum_squares, then added to its group in table
 * order: the optimizer's old per-tensor loop, bit for bit */
void cpu_sum_squares_multi(const act_t *x, const segment_table *segments, double *sums_by_group, int n_groups) {
  const cpu_segment_table *t = (const cpu_segment_table *)segments;
  segments_sums_start(t->n_groups, sums_by_group, n_groups);
  double *seg_sums = xmalloc((size_t)(t->n_segments ? t->n_segments : 1) * sizeof *seg_sums, "sum of squares");
  sum_squares_segments(CF(x), t->segments, t->n_segments, seg_sums);
  for (int s = 0; s < t->n_segments; s++) sums_by_group[t->segments[s].group] += seg_sums[s];
  free(seg_sums);
}

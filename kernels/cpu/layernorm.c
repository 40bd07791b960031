/* layernorm — LayerNorm over the last dimension, forward and backward.
 *
 * Forward, per row x of C values (eps the caller's, biased variance):
 *   μ = mean(x), r = 1/sqrt(var(x) + eps), x̂ = (x − μ)·r, y = x̂·w + b
 * μ and r are saved for the backward. Backward, with g = dy·w:
 *   dx = r·(g − mean(g) − x̂·mean(g·x̂)),  dw += Σ_rows dy·x̂,  db += Σ_rows dy
 * and dx ACCUMULATES into dinp (the residual stream's gradient flows through).
 * Row statistics are computed in double: C is up to a few thousand values.
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "fail.h"

void cpu_layernorm_forward(act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp,
                           const act_t *weight, const act_t *bias, int N, int C, double eps) {
  float *o = F(out), *mu = F(mean), *rs = F(rstd);
  const float *x = CF(inp), *w = CF(weight), *b = CF(bias);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C;
    double sum = 0, sum_sq = 0;
    for (int c = 0; c < C; c++) sum += xr[c];
    double m = sum / C;
    for (int c = 0; c < C; c++) sum_sq += (xr[c] - m) * (xr[c] - m);
    double r = 1.0 / sqrt(sum_sq / C + eps);
    float *orow = o + (size_t)n * C;
    for (int c = 0; c < C; c++) orow[c] = (float)((xr[c] - m) * r) * w[c] + b[c];
    mu[n] = (float)m;
    rs[n] = (float)r;
  }
}

void cpu_layernorm_backward(act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                            const act_t *inp, const act_t *weight, const f32_t *mean,
                            const f32_t *rstd, int N, int C) {
  float *dx = F(dinp), *dw = F(dweight), *db = F(dbias);
  const float *dy = CF(dout), *x = CF(inp), *w = CF(weight), *mu = CF(mean), *rs = CF(rstd);
  /* Rows are independent for dx; dw and db sum over rows, so each thread
   * sums its rows into private double arrays, merged once at the end in
   * thread order (one pass over memory instead of a strided column pass). */
  int n_rows;
  double *partials_dw = thread_partials_create((size_t)C, &n_rows);
  double *partials_db = thread_partials_create((size_t)C, &n_rows);
#pragma omp parallel
  {
    double *local_dw = thread_partials_row(partials_dw, (size_t)C);
    double *local_db = thread_partials_row(partials_db, (size_t)C);
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *dyr = dy + (size_t)n * C, *xr = x + (size_t)n * C;
      const double m = mu[n], r = rs[n];
      double mean_g = 0, mean_gx = 0;
      for (int c = 0; c < C; c++) {
        double xhat = (xr[c] - m) * r;
        double g = (double)dyr[c] * w[c];
        mean_g += g;
        mean_gx += g * xhat;
        local_dw[c] += dyr[c] * xhat;
        local_db[c] += dyr[c];
      }
      mean_g /= C;
      mean_gx /= C;
      float *dxr = dx + (size_t)n * C;
      for (int c = 0; c < C; c++) {
        double xhat = (xr[c] - m) * r;
        double g = (double)dyr[c] * w[c];
        dxr[c] += (float)(r * (g - mean_g - xhat * mean_gx));
      }
    }
  }
  thread_partials_finish(dw, partials_dw, n_rows, (size_t)C);
  thread_partials_finish(db, partials_db, n_rows, (size_t)C);
}

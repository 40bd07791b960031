/* rmsnorm — RMSNorm over the last dimension (Llama's norm), forward and backward.
 *
 * Forward, per row x of C values (eps the caller's):
 *   r = 1/sqrt(mean(x²) + eps),  x̂ = x·r,  y = x̂·w      (w = 1 when weight is NULL)
 * r is saved for the backward. Backward, with g = dy·w:
 *   dx = r·(g − x̂·mean(g·x̂)),  dw += Σ_rows dy·x̂
 * dx ACCUMULATES into dinp (the residual stream's gradient flows through) and
 * dw into dweight, as in layernorm.c. Row statistics are computed in double;
 * dweight is summed in per-thread double arrays merged once (see layernorm.c).
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "fail.h"

void cpu_rmsnorm_forward(act_t *out, f32_t *rstd, const act_t *inp, const act_t *weight, int N,
                         int C, double eps) {
  float *o = F(out), *rs = F(rstd);
  const float *x = CF(inp), *w = weight ? CF(weight) : NULL;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *xr = x + (size_t)n * C;
    double sum_sq = 0;
    for (int c = 0; c < C; c++) sum_sq += (double)xr[c] * xr[c];
    const double r = 1.0 / sqrt(sum_sq / C + eps);
    float *orow = o + (size_t)n * C;
    for (int c = 0; c < C; c++) orow[c] = (float)(xr[c] * r) * (w ? w[c] : 1.0f);
    rs[n] = (float)r;
  }
}

void cpu_rmsnorm_backward(act_t *dinp, act_t *dweight, const act_t *dout, const act_t *inp,
                          const act_t *weight, const f32_t *rstd, int N, int C) {
  float *dx = F(dinp), *dw = dweight ? F(dweight) : NULL;
  const float *dy = CF(dout), *x = CF(inp), *w = weight ? CF(weight) : NULL, *rs = CF(rstd);
  int n_rows = 0;
  double *partials = dw ? thread_partials_create((size_t)C, &n_rows) : NULL;
#pragma omp parallel
  {
    double *local_dw = partials ? thread_partials_row(partials, (size_t)C) : NULL;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      const float *dyr = dy + (size_t)n * C, *xr = x + (size_t)n * C;
      const double r = rs[n];
      double mean_gx = 0;
      for (int c = 0; c < C; c++) {
        const double xhat = xr[c] * r, g = (double)dyr[c] * (w ? w[c] : 1.0f);
        mean_gx += g * xhat;
        if (local_dw) local_dw[c] += dyr[c] * xhat;
      }
      mean_gx /= C;
      float *dxr = dx + (size_t)n * C;
      for (int c = 0; c < C; c++) {
        const double xhat = xr[c] * r, g = (double)dyr[c] * (w ? w[c] : 1.0f);
        dxr[c] += (float)(r * (g - xhat * mean_gx));
      }
    }
  }
  if (partials) thread_partials_finish(dw, partials, n_rows, (size_t)C);
}

/* swiglu — the SwiGLU gate of Llama's MLP, forward and backward.
 *
 * inp is [N, 2H], each row [gate (H) | up (H)] (one GEMM makes both halves);
 *   out[n, j] = silu(g)·u,  silu(g) = g·σ(g),  g = gate[n, j], u = up[n, j].
 * Backward, with σ = σ(g):
 *   dgate = dout·u·σ·(1 + g·(1 − σ)),  dup = dout·silu(g)
 * dinp [N, 2H] is OVERWRITTEN. dinp may alias inp: each (g, u) pair is read
 * before either is written. σ is computed as 1/(1 + e^{−g}), which saturates
 * cleanly to 0 or 1 for large |g| (no NaN: e^{−g} = inf gives σ = 0).
 */
#include <math.h>

#include "cpu_ops.h"

void cpu_swiglu_forward(act_t *out, const act_t *inp, int N, int H) {
  float *o = F(out);
  const float *x = CF(inp);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *gate = x + (size_t)n * 2 * H, *up = gate + H;
    float *orow = o + (size_t)n * H;
    for (int j = 0; j < H; j++) {
      const float g = gate[j], sig = 1.0f / (1.0f + expf(-g));
      orow[j] = g * sig * up[j];
    }
  }
}

void cpu_swiglu_backward(act_t *dinp, const act_t *inp, const act_t *dout, int N, int H) {
  float *dx = F(dinp);
  const float *x = CF(inp), *dy = CF(dout);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const float *gate = x + (size_t)n * 2 * H, *up = gate + H, *d = dy + (size_t)n * H;
    float *dgate = dx + (size_t)n * 2 * H, *dup = dgate + H;
    for (int j = 0; j < H; j++) {
      const float g = gate[j], u = up[j], sig = 1.0f / (1.0f + expf(-g));
      dgate[j] = d[j] * u * sig * (1.0f + g * (1.0f - sig));
      dup[j] = d[j] * g * sig;
    }
  }
}

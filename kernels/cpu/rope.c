/* rope — rotary position embedding (RoPE) on the q and k parts of qkv rows.
 *
 * qkv rows are [3, NH, HS] (q, k, v of every head, C = NH·HS each); q and k
 * of every head are rotated in place, v is untouched. Pairing is the
 * half-split one of GPT-NeoX and Hugging Face Llama (rotate_half), not the
 * interleaved (2i, 2i+1) one of the original RoFormer/Meta Llama code: for
 * i < HS/2 the pair (x[i], x[i + HS/2]) turns by
 *   angle = positions[n] · theta^(−2i/HS)
 *   x[i] ← x[i]·cos − x[i+HS/2]·sin,   x[i+HS/2] ← x[i+HS/2]·cos + x[i]·sin
 * so checkpoints converted from HF Llama need no permutation of wq, wk.
 * The backward applies the transpose, a rotation by −angle, to dq and dk in
 * place (dv untouched). Angles, cos and sin are computed in double once per
 * row (HS/2 of them), shared by the 2·NH heads' q and k; positions[n] is the
 * row's position in its sequence (a sequence-parallel piece passes its own).
 */
#include <math.h>
#include <stdlib.h>

#include "cpu_ops.h"
#include "fail.h"

/* direction +1: forward rotation, −1: its transpose */
static void rope_rotate(float *x, const int32_t *pos, int N, int C, int NH, float theta,
                        int direction) {
  const int HS = C / NH, half = HS / 2;
  ENSURE(HS % 2 == 0 && HS * NH == C, "rope: head size %d (C %d, %d heads) must be even", HS, C,
         NH);
  /* inverse frequencies theta^(−2i/HS), in double */
  double *inv_freq = xmalloc((size_t)half * sizeof *inv_freq, "rope frequencies");
  for (int i = 0; i < half; i++) inv_freq[i] = pow((double)theta, -2.0 * i / HS);
#pragma omp parallel
  {
    float *cs = xmalloc((size_t)2 * half * sizeof *cs, "rope scratch"), *sn = cs + half;
#pragma omp for schedule(static)
    for (int n = 0; n < N; n++) {
      for (int i = 0; i < half; i++) {
        const double angle = (double)pos[n] * inv_freq[i];
        cs[i] = (float)cos(angle);
        sn[i] = (float)(direction * sin(angle));
      }
      float *row = x + (size_t)n * 3 * C;
      for (int head = 0; head < 2 * NH; head++) { /* q heads, then k heads */
        float *lo = row + (size_t)head * HS, *hi = lo + half;
        for (int i = 0; i < half; i++) {
          const float a = lo[i], b = hi[i];
          lo[i] = a * cs[i] - b * sn[i];
          hi[i] = b * cs[i] + a * sn[i];
        }
      }
    }
    free(cs);
  }
  free(inv_freq);
}

void cpu_rope_forward(act_t *qkv, const ids_t *positions, int N, int C, int NH, float theta) {
  rope_rotate(F(qkv), IDS(positions), N, C, NH, theta, +1);
}

void cpu_rope_backward(act_t *dqkv, const ids_t *positions, int N, int C, int NH, float theta) {
  rope_rotate(F(dqkv), IDS(positions), N, C, NH, theta, -1);
}

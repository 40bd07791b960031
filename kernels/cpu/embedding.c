/* embedding — token plus learned position embedding.
 *
 *   out[b,t,:] = wte[tokens[b,t], :] + wpe[t, :]      (wpe may be NULL)
 * The backward scatters dout back into the rows that were read and
 * ACCUMULATES into dwte and dwpe. Rows of dwte can repeat within a batch, so
 * the scatter loops sequentially over tokens and in parallel over channels.
 */
#include "cpu_ops.h"

void cpu_embedding_forward(act_t *out, const ids_t *tokens, const act_t *wte, const act_t *wpe,
                           int B, int T, int C) {
  float *o = F(out);
  const float *te = CF(wte), *pe = wpe ? CF(wpe) : NULL;
  const int32_t *ids = IDS(tokens);
#pragma omp parallel for schedule(static)
  for (int n = 0; n < B * T; n++) {
    const float *row = te + (size_t)ids[n] * C;
    const float *pos = pe ? pe + (size_t)(n % T) * C : NULL;
    float *dst = o + (size_t)n * C;
    for (int c = 0; c < C; c++) dst[c] = row[c] + (pos ? pos[c] : 0.0f);
  }
}

void cpu_embedding_backward(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens, int B,
                            int T, int C) {
  float *dte = F(dwte), *dpe = dwpe ? F(dwpe) : NULL;
  const float *d = CF(dout);
  const int32_t *ids = IDS(tokens);
  for (int n = 0; n < B * T; n++) {
    const float *src = d + (size_t)n * C;
    float *row = dte + (size_t)ids[n] * C;
    for (int c = 0; c < C; c++) row[c] += src[c];
    if (dpe) {
      float *pos = dpe + (size_t)(n % T) * C;
      for (int c = 0; c < C; c++) pos[c] += src[c];
    }
  }
}

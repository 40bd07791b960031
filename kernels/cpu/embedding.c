/* embedding — token plus learned position embedding, vocabulary-parallel.
 *
 *   out[n,:] = wte[tokens[n] − vocab_start, :] + wpe[positions[n], :]   (wpe may be NULL)
 * over N rows, each with its own position id (a sequence-parallel rank's
 * rows start at its first position, not at 0). This rank holds the n_vocab
 * rows [vocab_start, vocab_start + n_vocab); a token outside them contributes
 * zeros, so summing the outputs of all tensor-parallel shards gives the full
 * lookup (Megatron's vocab-parallel embedding). The backward scatters dout
 * into the rows that were read and ACCUMULATES into dwte and dwpe. Rows of
 * dwte and dwpe can repeat within a batch, so the scatter runs sequentially
 * over tokens. positions is read only when wpe (dwpe) is not NULL.
 */
#include "cpu_ops.h"

void cpu_embedding_forward(act_t *out, const ids_t *tokens, const ids_t *positions,
                           const act_t *wte, const act_t *wpe, int N, int C, int vocab_start,
                           int n_vocab) {
  float *o = F(out);
  const float *te = CF(wte), *pe = wpe ? CF(wpe) : NULL;
  const int32_t *ids = IDS(tokens), *pos_ids = wpe ? IDS(positions) : NULL;
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; n++) {
    const int32_t local = ids[n] - vocab_start;
    const float *row = local >= 0 && local < n_vocab ? te + (size_t)local * C : NULL;
    const float *pos = pe ? pe + (size_t)pos_ids[n] * C : NULL;
    float *dst = o + (size_t)n * C;
    for (int c = 0; c < C; c++) dst[c] = (row ? row[c] : 0.0f) + (pos ? pos[c] : 0.0f);
  }
}

void cpu_embedding_backward(act_t *dwte, act_t *dwpe, const act_t *dout, const ids_t *tokens,
                            const ids_t *positions, int N, int C, int vocab_start, int n_vocab) {
  float *dte = F(dwte), *dpe = dwpe ? F(dwpe) : NULL;
  const float *d = CF(dout);
  const int32_t *ids = IDS(tokens), *pos_ids = dwpe ? IDS(positions) : NULL;
  for (int n = 0; n < N; n++) {
    const float *src = d + (size_t)n * C;
    const int32_t local = ids[n] - vocab_start;
    if (dte && local >= 0 && local < n_vocab) {
      float *row = dte + (size_t)local * C;
      for (int c = 0; c < C; c++) row[c] += src[c];
    }
    if (dpe) {
      float *pos = dpe + (size_t)pos_ids[n] * C;
      for (int c = 0; c < C; c++) pos[c] += src[c];
    }
  }
}

/* sampler — see sampler.h. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "param_init.h"
#include "tokenizer.h"

int sampler_pick(const float *logits, int n, int top_k, double u) {
  /* threshold: the k-th largest logit (all when top_k <= 0 or >= n) */
  float threshold = -INFINITY;
  if (top_k > 0 && top_k < n) {
    float *sorted = xmalloc((size_t)n * sizeof *sorted, "top-k scratch");
    memcpy(sorted, logits, (size_t)n * sizeof *sorted);
    for (int i = 0; i < top_k; i++) { /* partial selection: k is small */
      int best = i;
      for (int j = i + 1; j < n; j++)
        if (sorted[j] > sorted[best]) best = j;
      float tmp = sorted[i];
      sorted[i] = sorted[best];
      sorted[best] = tmp;
    }
    threshold = sorted[top_k - 1];
    free(sorted);
  }
  float max_logit = -INFINITY;
  for (int i = 0; i < n; i++)
    if (logits[i] > max_logit) max_logit = logits[i];
  double total = 0;
  for (int i = 0; i < n; i++)
    if (logits[i] >= threshold) total += exp((double)logits[i] - max_logit);
  double target = u * total, running = 0;
  int last = 0;
  for (int i = 0; i < n; i++) {
    if (logits[i] < threshold) continue;
    running += exp((double)logits[i] - max_logit);
    last = i;
    if (running > target) return i;
  }
  return last;
}

void sampler_model_logits(void *context, const int32_t *tokens, int T, float *logits) {
  model_forward_last_logits(context, tokens, T, logits);
}

/* The prompt's ids the model can take, in tokens; their count. */
static size_t encode_prompt(tokenizer *tok, const char *prompt, int vocab_size, int32_t *tokens) {
  const size_t n = tokenizer_encode(tok, prompt, strlen(prompt), tokens);
  size_t kept = 0;
  for (size_t i = 0; i < n; i++)
    if (tokens[i] < vocab_size) tokens[kept++] = tokens[i];
  const int32_t eot = tokenizer_eot(tok);
  if (kept == 0 && eot >= 0 && eot < vocab_size) tokens[kept++] = eot; /* start of a document */
  if (kept == 0) tokens[kept++] = 0;
  return kept;
}

void sampler_generate_text(sampler_logits_fn logits_of, void *context, int seq_len, int vocab_size, tokenizer *tok,
                           const char *prompt, int n_new, int top_k, uint64_t seed, FILE *out) {
  const int T_max = seq_len, V = vocab_size;
  const size_t capacity = strlen(prompt) + (size_t)n_new + 1;
  int32_t *tokens = xmalloc(capacity * sizeof *tokens, "sample tokens");
  float *logits = xmalloc((size_t)V * sizeof *logits, "sample logits");
  tokenizer *bytes_tok = tok ? NULL : tokenizer_bytes();
  if (!tok && !bytes_tok) fail_local(EXIT_USER_ERROR, "out of memory for the bytes tokenizer");
  if (!tok) tok = bytes_tok;
  size_t n_tokens = encode_prompt(tok, prompt, V, tokens);
  char scratch[32];
  const char *bytes;
  for (size_t i = 0; i < n_tokens && out; i++) {
    if (tokens[i] == tokenizer_eot(tok)) continue;
    const size_t n_bytes = tokenizer_token_bytes(tok, tokens[i], scratch, &bytes);
    fwrite(bytes, 1, n_bytes, out);
  }
  for (int i = 0; i < n_new; i++) {
    size_t n_context = n_tokens < (size_t)T_max ? n_tokens : (size_t)T_max;
    logits_of(context, tokens + n_tokens - n_context, (int)n_context, logits);
    double u = (double)(hash_mix64(seed * 0x9e3779b97f4a7c15ULL + (uint64_t)i) >> 11) * 0x1.0p-53;
    int32_t next = sampler_pick(logits, V, top_k, u);
    tokens[n_tokens++] = next;
    const size_t n_bytes = tokenizer_token_bytes(tok, next, scratch, &bytes);
    if (out) fwrite(bytes, 1, n_bytes, out);
  }
  if (out) {
    fputc('\n', out);
    fflush(out);
  }
  free(tokens);
  free(logits);
  tokenizer_free(bytes_tok);
}

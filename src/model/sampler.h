/* sampler — text generation from the model, for the samples a run prints.
 *
 * Autoregressive sampling at temperature 1 (optionally top-k) on one rank,
 * re-running the forward over the last seq_len tokens for each new token (no
 * KV cache: samples are short and rare, simplicity wins). The random choice
 * of token i is a pure function of (seed, i), so a sample is reproducible.
 */
#ifndef TESSERA_SAMPLER_H
#define TESSERA_SAMPLER_H

#include <stdint.h>
#include <stdio.h>

#include "model.h"
#include "tokenizer.h"

/* The logits of position T−1 after a forward over tokens[0..T): a whole
 * model's model_forward_last_logits, or a pipeline's pass over its stages.
 * Every rank that takes part gets all vocab_size logits. */
typedef void (*sampler_logits_fn)(void *context, const int32_t *tokens, int T, float *logits);

/* Adapter: context is a model holding every layer. */
void sampler_model_logits(void *context, const int32_t *tokens, int T, float *logits);

/* Encodes prompt with tok (the tokenizer the model was trained with; NULL:
 * bytes), generates n_new tokens with a context of up to seq_len, writes
 * the decoded text (prompt included) to out (NULL: generate without
 * printing, as the other ranks of the printing replica do). Prompt ids the
 * model's vocabulary lacks are left out (callers check the tokenizer's
 * size against vocab_size). */
void sampler_generate_text(sampler_logits_fn logits_of, void *context, int seq_len, int vocab_size, tokenizer *tok,
                           const char *prompt, int n_new, int top_k, uint64_t seed, FILE *out);

/* Draws an index from softmax(logits[0..n)) restricted to the top_k largest
 * (top_k <= 0: all), using uniform u in [0, 1). */
int sampler_pick(const float *logits, int n, int top_k, double u);

#endif

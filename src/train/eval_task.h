/* eval_task — multiple-choice completion accuracy (HellaSwag as llm.c scores
 * it) on a run built for evaluation (run_create_for_eval).
 *
 * Each candidate is the context's tokens followed by the ending's, the
 * ending encoded as " " + ending (llm.c's convention: GPT-2's tokens carry
 * their leading space). A candidate longer than seq_len + 1 tokens loses
 * tokens on the left (counted and reported: `truncated`). The model reads the
 * candidate and each ending token's cross-entropy is kept (the per-position
 * losses of pipeline_forward_token_losses); an ending scores
 *   sum  = Σ its tokens' losses          → acc:      the lowest sum wins,
 *   mean = sum / its number of tokens    → acc_norm: the lowest mean wins
 * (llm.c reports acc_norm; ties go to the first ending, as argmin). An
 * ending longer than seq_len tokens is scored on its last seq_len tokens.
 *
 * Parallelism: the examples are split in contiguous slices over the
 * data-parallel replicas; inside a replica tp, pp and sp work as in
 * training. A replica scores its candidates micro_batch_size rows at a
 * time, each micro-batch padded on the right to the longest candidate
 * (rounded up to model_padded_length), which a causal model's scored
 * positions never see. No collective crosses replicas until the end, when
 * every ending's (sum, token count) reaches every rank in one all-reduce.
 */
#ifndef TESSERA_EVAL_TASK_H
#define TESSERA_EVAL_TASK_H

#include <stdint.h>
#include <stdio.h>

#include "run.h"
#include "task_file.h"
#include "tokenizer.h"

typedef struct task_score {
  int64_t n_examples, n_candidates;
  int64_t n_truncated;        /* candidates cut on the left to fit seq_len + 1 */
  int64_t correct, correct_norm;
  double acc, acc_norm;       /* correct / n_examples, correct_norm / n_examples */
  int64_t tokens;             /* positions run through the model, padding included, over all replicas */
  double seconds;             /* the scoring, from the first forward to the last result */
} task_score;

/* Collective over the world. `verbose` (world rank 0's stream, NULL
 * elsewhere or for none) gets one line per example with every ending's
 * loss sum, token count and mean. All token ids must be below the model's
 * vocab_size (the caller checks the tokenizer's size). */
task_score eval_task(run *r, const task_set *set, tokenizer *tok, FILE *verbose);

#endif

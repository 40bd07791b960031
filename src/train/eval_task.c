/* eval_task — see eval_task.h. */
#include "eval_task.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "fail.h"

/* One ending after its context, as the model reads it. */
typedef struct candidate {
  int32_t *tokens;  /* context + ending, cut on the left to at most seq_len + 1 */
  int n_tokens;
  int n_scored;     /* the ending's tokens that are predicted (its last ones) */
  int64_t index;    /* among all candidates of the task, in file order */
} candidate;

/* text's tokens (allocated; *n_ids of them). */
static int32_t *encode(tokenizer *tok, const char *text, size_t n_bytes, int *n_ids) {
  int32_t *ids = xmalloc((n_bytes ? n_bytes : 1) * sizeof *ids, "task tokens");
  *n_ids = (int)tokenizer_encode(tok, text, n_bytes, ids);
  return ids;
}

/* The candidates of examples [first, last), each of seq_len + 1 tokens at
 * most; counts the cut ones in *truncated. */
static candidate *make_candidates(const task_set *set, int64_t first, int64_t last, tokenizer *tok, int seq_len,
                                  int64_t *n_out, int64_t *truncated) {
  int64_t n = 0, index = 0;
  for (int64_t e = 0; e < first; e++) index += set->examples[e].n_endings;
  for (int64_t e = first; e < last; e++) n += set->examples[e].n_endings;
  candidate *c = xcalloc((size_t)(n ? n : 1), sizeof *c, "task candidates");
  int64_t k = 0;
  for (int64_t e = first; e < last; e++) {
    const task_example *ex = &set->examples[e];
    int n_ctx;
    int32_t *ctx = encode(tok, ex->ctx, strlen(ex->ctx), &n_ctx);
    for (int j = 0; j < ex->n_endings; j++, k++) {
      const size_t n_bytes = strlen(ex->endings[j]) + 1;
      char *spaced = xmalloc(n_bytes + 1, "task ending");
      spaced[0] = ' '; /* llm.c: enc.encode(" " + ending) */
      memcpy(spaced + 1, ex->endings[j], n_bytes);
      int n_end;
      int32_t *end = encode(tok, spaced, n_bytes, &n_end);
      free(spaced);
      const int whole = n_ctx + n_end, cut = whole > seq_len + 1 ? whole - (seq_len + 1) : 0;
      c[k].n_tokens = whole - cut;
      c[k].tokens = xmalloc((size_t)c[k].n_tokens * sizeof(int32_t), "candidate tokens");
      for (int t = cut; t < whole; t++) c[k].tokens[t - cut] = t < n_ctx ? ctx[t] : end[t - n_ctx];
      /* every ending token that has a token before it in the window */
      c[k].n_scored = n_end < c[k].n_tokens - 1 ? n_end : c[k].n_tokens - 1;
      c[k].index = index++;
      *truncated += cut > 0;
      free(end);
    }
    free(ctx);
  }
  *n_out = n;
  return c;
}

/* Rows c[0..B) as one micro-batch: inputs and targets padded on the right
 * to T_run (token 0: any valid id, never seen by a scored position). */
static void fill_micro_batch(const candidate *c, int B, int T_run, int32_t *inputs, int32_t *targets) {
  memset(inputs, 0, (size_t)B * T_run * sizeof *inputs);
  memset(targets, 0, (size_t)B * T_run * sizeof *targets);
  for (int b = 0; b < B; b++)
    for (int t = 0; t + 1 < c[b].n_tokens; t++) {
      inputs[(size_t)b * T_run + t] = c[b].tokens[t];
      targets[(size_t)b * T_run + t] = c[b].tokens[t + 1];
    }
}

/* Scores this replica's candidates: sums[index] and counts[index] (the
 * replica's first rank writes them; the others leave zeros for the sum over
 * the world). Returns the positions run. */
static int64_t score_candidates(run *r, const candidate *c, int64_t n, double *sums, double *counts) {
  const int M = r->cfg->micro_batch_size, T_max = r->cfg->seq_len;
  const bool writes = r->grid.tp_rank == 0 && r->grid.sp_rank == 0 && r->grid.pp_rank == 0;
  int32_t *full_in = xmalloc((size_t)M * T_max * sizeof(int32_t), "eval inputs");
  int32_t *full_tg = xmalloc((size_t)M * T_max * sizeof(int32_t), "eval targets");
  float *losses = xmalloc((size_t)M * T_max * sizeof(float), "eval token losses");
  int64_t positions = 0;
  for (int64_t k0 = 0; k0 < n; k0 += M) {
    const int B = n - k0 < M ? (int)(n - k0) : M;
    int longest = 1;
    for (int b = 0; b < B; b++)
      if (c[k0 + b].n_tokens - 1 > longest) longest = c[k0 + b].n_tokens - 1;
    const int T_run = model_padded_length(&r->mdl, longest);
    ENSURE(T_run <= T_max, "a candidate of %d positions padded to %d, past seq_len %d", longest, T_run, T_max);
    fill_micro_batch(c + k0, B, T_run, full_in, full_tg);
    model_take_local(&r->mdl, B, T_run, full_in, r->inputs);
    model_take_local(&r->mdl, B, T_run, full_tg, r->targets);
    pipeline_forward_token_losses(&r->pipe, r->inputs, r->targets, B, T_run, losses);
    positions += (int64_t)B * T_run;
    if (!writes) continue;
    for (int b = 0; b < B; b++) {
      const candidate *k = &c[k0 + b];
      double sum = 0;
      /* the ending's tokens are the last n_scored targets: positions n_tokens − 1 − n_scored .. n_tokens − 2 */
      for (int t = k->n_tokens - 1 - k->n_scored; t < k->n_tokens - 1; t++) sum += losses[(size_t)b * T_run + t];
      sums[k->index] = sum;
      counts[k->index] = k->n_scored;
    }
  }
  free(full_in);
  free(full_tg);
  free(losses);
  return positions;
}

/* The decisions from every ending's (sum, count); one line per example to
 * verbose. */
static void decide(const task_set *set, const double *sums, const double *counts, task_score *s, FILE *verbose) {
  int64_t index = 0;
  for (int64_t e = 0; e < set->n_examples; e++) {
    const task_example *ex = &set->examples[e];
    const double *sum = sums + index, *count = counts + index;
    int best = 0, best_norm = 0;
    for (int j = 1; j < ex->n_endings; j++) {
      if (sum[j] < sum[best]) best = j;
      if (sum[j] / count[j] < sum[best_norm] / count[best_norm]) best_norm = j;
    }
    s->correct += best == ex->label;
    s->correct_norm += best_norm == ex->label;
    if (verbose) {
      fprintf(verbose, "example line %lld label %d pred %d pred_norm %d endings", (long long)ex->line, ex->label,
              best, best_norm);
      for (int j = 0; j < ex->n_endings; j++)
        fprintf(verbose, " [sum %.9g tokens %d mean %.9g]", sum[j], (int)count[j], sum[j] / count[j]);
      fprintf(verbose, "\n");
    }
    index += ex->n_endings;
  }
}

task_score eval_task(run *r, const task_set *set, tokenizer *tok, FILE *verbose) {
  task_score s = {.n_examples = set->n_examples, .n_candidates = set->n_candidates};
  comm_quiet_barrier(&r->grid.world);
  const double start = now_seconds();
  /* this replica's contiguous slice of the examples */
  const int64_t dp = r->grid.shape.dp, rank = r->grid.dp_rank;
  const int64_t first = rank * set->n_examples / dp, last = (rank + 1) * set->n_examples / dp;
  int64_t n = 0, truncated = 0;
  candidate *c = make_candidates(set, first, last, tok, r->cfg->seq_len, &n, &truncated);
  /* sums | counts | [truncated, positions] in one buffer, one all-reduce */
  const size_t N = (size_t)set->n_candidates;
  double *all = xcalloc(2 * N + 2, sizeof *all, "task scores");
  const int64_t positions = score_candidates(r, c, n, all, all + N);
  const bool writes = r->grid.tp_rank == 0 && r->grid.sp_rank == 0 && r->grid.pp_rank == 0;
  if (writes) all[2 * N] = (double)truncated, all[2 * N + 1] = (double)positions;
  comm_allreduce_sum_f64(&r->grid.world, all, 2 * N + 2);
  s.seconds = now_seconds() - start;
  s.n_truncated = (int64_t)all[2 * N];
  s.tokens = (int64_t)all[2 * N + 1];
  decide(set, all, all + N, &s, verbose);
  s.acc = (double)s.correct / (double)s.n_examples;
  s.acc_norm = (double)s.correct_norm / (double)s.n_examples;
  for (int64_t k = 0; k < n; k++) free(c[k].tokens);
  free(c);
  free(all);
  return s;
}

/* train_loop — see train_loop.h. */
#include "train_loop.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fail.h"
#include "lr_schedule.h"
#include "sampler.h"

/* Every rank checks its tokens; one all-reduce tells all of them whether any
 * rank saw an id outside the vocabulary, so the error is reported once. The
 * reduction orders ids by token_id_badness, so a negative id wins and is
 * reported as itself. */
static void check_token_ids(run *r, int32_t max_id, int64_t max_sample, const char *path, const char *what) {
  int64_t worst_badness = token_id_badness(max_id);
  comm_allreduce_max_i64(&r->grid.dp_sp, &worst_badness, 1);
  const int32_t worst = token_id_from_badness(worst_badness);
  if (worst < 0 || worst >= r->cfg->vocab_size) {
    /* name one offending sample: the ranks holding the worst id offer theirs */
    int64_t sample = max_id == worst ? max_sample : -1;
    comm_allreduce_max_i64(&r->grid.dp_sp, &sample, 1);
    if (worst < 0)
      fail_collective(EXIT_IO_ERROR, "%s '%s': token id %lld in global sample %lld is negative; the data file is "
                      "damaged or was not written as token ids", what, path, (long long)worst, (long long)sample);
    fail_collective(EXIT_IO_ERROR,
                    "%s '%s': token id %lld in global sample %lld is >= vocab_size %d; the data was "
                    "made with a larger vocabulary — set vocab_size to at least %lld",
                    what, path, (long long)worst, (long long)sample, r->cfg->vocab_size, (long long)worst + 1);
  }
}

/* A data file truncated while mapped raises SIGBUS on the next read of the
 * lost pages: every rank compares its files with what it mapped before reading
 * (doc/design.md says why this and not a SIGBUS handler), and all stop together. */
static int data_files_changed(const run *r, char *err, size_t err_bytes) {
  int status = r->loader.train.ds ? dataset_check_unchanged(r->loader.train.ds, err, err_bytes) : 0;
  if (!status && r->loader.val.ds && r->loader.val.ds != r->loader.train.ds)
    status = dataset_check_unchanged(r->loader.val.ds, err, err_bytes);
  return status;
}

static void check_data_unchanged(run *r) {
  char err[MESSAGE_BYTES] = "";
  int status = data_files_changed(r, err, sizeof err);
  int64_t any = status;
  comm_allreduce_max_i64(&r->grid.world, &any, 1);
  if (!any) return;
  /* another rank saw the change first (its stat came later): look again, so
   * rank 0 names the file too */
  if (!status) status = data_files_changed(r, err, sizeof err);
  fail_collective(EXIT_IO_ERROR, "%s", status ? err : "a data file changed on another rank's node while training");
}

/* The step's micro-batches: the same whole sequences on every sp rank of a
 * replica, each keeping its pieces. */
static void load_step(run *r, int64_t step) {
  const config *cfg = r->cfg;
  const int M = cfg->micro_batch_size, T = cfg->seq_len;
  const size_t micro_tokens = (size_t)M * model_local_tokens(&r->mdl, T);
  int32_t max_id = 0;
  int64_t max_sample = -1;
  check_data_unchanged(r);
  for (int k = 0; k < r->accum_steps; k++) {
    int64_t sample = -1;
    int32_t id = batch_load_train(&r->loader, step, k, r->loaded_inputs, r->loaded_targets, &sample);
    if (k == 0 || token_id_worse(id, max_id)) max_id = id, max_sample = sample;
    model_take_local(&r->mdl, M, T, r->loaded_inputs, r->inputs + k * micro_tokens);
    model_take_local(&r->mdl, M, T, r->loaded_targets, r->targets + k * micro_tokens);
  }
  check_token_ids(r, max_id, max_sample, cfg->data, "training data");
}

step_result train_step(run *r, int64_t step) {
  const config *cfg = r->cfg;
  step_result res;
  const int M = cfg->micro_batch_size, T = cfg->seq_len;
  const double start = now_seconds();
  profile_mark(r->profile, PROFILE_DATA, false);
  load_step(r, step);

  /* mean over every token of the global batch: each rank's sum is scaled by
   * 1/global_tokens, and the reduction sums the ranks */
  const float dloss_scale = 1.0f / (float)((double)cfg->batch_size * T);
  model_zero_grads(&r->mdl);
  zero_begin_step(&r->zero);
  double loss_sum = pipeline_train_step(&r->pipe, r->inputs, r->targets, M, T, dloss_scale);
  profile_mark(r->profile, PROFILE_GRAD_SYNC, true);
  zero_finish_gradients(&r->zero);
  comm_allreduce_sum_f64(&r->grid.dp_sp, &loss_sum, 1);
  if (r->grid.shape.pp > 1) comm_allreduce_sum_f64(&r->grid.pp, &loss_sum, 1); /* the last stage's */
  res.bubble = pipeline_measured_bubble(&r->pipe);
  res.loss = loss_sum / ((double)cfg->batch_size * T);

  profile_mark(r->profile, PROFILE_OPTIMIZER, false);
  res.grad_norm = optimizer_grad_norm(&r->opt, &r->mdl);
  const lr_schedule schedule = {cfg->lr, cfg->min_lr, cfg->warmup_steps, cfg->steps};
  res.lr = lr_at_step(&schedule, step);
  optimizer_step(&r->opt, &r->mdl, res.lr, res.grad_norm);
  r->be->synchronize();
  res.seconds = now_seconds() - start;
  profile_end_step(r->profile, res.seconds);
  return res;
}

double validate(run *r) {
  const config *cfg = r->cfg;
  const int M = cfg->micro_batch_size, T = cfg->seq_len;
  if (r->loader.val.n_windows == 0 || cfg->val_sequences == 0) return NAN;
  /* this rank's contiguous slice of the S validation sequences */
  const int64_t S = cfg->val_sequences, dp = r->grid.shape.dp, rank = r->grid.dp_rank;
  const int64_t first = rank * S / dp, last = (rank + 1) * S / dp;
  /* every rank runs the same number of rounds (the token check is collective) */
  const int64_t rounds = (S / dp + 1 + M - 1) / M;
  double sums[2] = {0, 0}; /* loss sum, token count */
  check_data_unchanged(r);
  for (int64_t round = 0; round < rounds; round++) {
    int64_t start = first + round * M;
    int rows = start < last ? (int)(last - start < M ? last - start : M) : 0;
    int64_t sample = -1;
    int32_t max_id = rows ? batch_load_val(&r->loader, start, rows, r->loaded_inputs, r->loaded_targets, &sample)
                          : 0; /* no rows: id 0 passes every check */
    if (rows) {
      model_take_local(&r->mdl, rows, T, r->loaded_inputs, r->inputs);
      model_take_local(&r->mdl, rows, T, r->loaded_targets, r->targets);
    }
    check_token_ids(r, max_id, sample, r->separate_val ? cfg->val_data : cfg->data, "validation data");
    if (rows == 0) {
      /* with ZeRO 3 a forward is collective over dp×sp: run one row and discard it */
      if (cfg->zero >= 3) {
        memset(r->inputs, 0, (size_t)T * sizeof *r->inputs);
        memset(r->targets, 0, (size_t)T * sizeof *r->targets);
        pipeline_forward_loss(&r->pipe, r->inputs, r->targets, 1, T);
      }
      continue;
    }
    sums[0] += pipeline_forward_loss(&r->pipe, r->inputs, r->targets, rows, T);
    sums[1] += (double)rows * model_local_tokens(&r->mdl, T); /* this rank's tokens: sp ranks share sequences */
  }
  comm_allreduce_sum_f64(&r->grid.dp_sp, sums, 2);
  return sums[0] / sums[1];
}

/* Test-only, never set in production: TESSERA_TEST_SLOW_SAMPLE=SECONDS makes
 * the ranks that generate a sample take that much longer, as on a machine
 * whose cores are busy (tests/slow_phase.sh). */
static void test_slow_sample(void) {
  const char *v = getenv("TESSERA_TEST_SLOW_SAMPLE");
  if (!v || !*v) return;
  char *end;
  const double seconds = strtod(v, &end);
  if (*end || !(seconds >= 0 && seconds <= 3600))
    fail_local(EXIT_USER_ERROR, "TESSERA_TEST_SLOW_SAMPLE='%s': want seconds, 0 to 3600", v);
  struct timespec left = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
  while (nanosleep(&left, &left) != 0 && errno == EINTR) {
  }
}

/* The first model replica generates (all its tp ranks and pipeline stages
 * take part in every forward and draw the same tokens); world rank 0 prints. */
static void generate_sample(run *r, int64_t step) {
  const config *cfg = r->cfg;
  if (!r->data_tok.tok) { /* GPT-2 ids with nothing to read them (data_tokenizer.h) */
    progress_print(&r->pg, "---- no sample at step %lld: the data's GPT-2 tokens need GPT-2's tokenizer to be "
                   "read; set `tokenizer` in [data] ----\n", (long long)step);
    return;
  }
  FILE *out = r->rt->world_rank == 0 ? stdout : NULL;
  progress_print(&r->pg, "---- sample at step %lld ----\n", (long long)step);
  sampler_generate_text(pipeline_last_logits, &r->pipe, cfg->seq_len, cfg->vocab_size, r->data_tok.tok,
                        cfg->sample_prompt, cfg->sample_tokens, 0, (uint64_t)cfg->seed + (uint64_t)step, out);
  test_slow_sample();
  progress_print(&r->pg, "----\n");
}

void print_sample(run *r, int64_t step) {
  const config *cfg = r->cfg;
  if (cfg->sample_tokens <= 0) return;
  /* with ZeRO 3 every forward gathers weights over dp×sp: all replicas generate */
  if (r->grid.dp_rank == 0 || cfg->zero >= 3) generate_sample(r, step);
  /* the other replicas wait here, asleep and under the watchdog's phase
   * bound, not in their next collective under the plain one (comm.h) */
  comm_phase_wait(&r->grid.world, "sample");
}

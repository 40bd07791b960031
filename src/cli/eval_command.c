/* eval_command — `tessera eval --ckpt PATH (--task FILE.jsonl | --val-data
 * PATH) [layout options]`: a checkpoint's multiple-choice accuracy
 * (src/train/eval_task.h: HellaSwag's acc and acc_norm as llm.c computes
 * them) or its mean loss and perplexity over every whole window of a
 * dataset (the validation of training, over all windows).
 *
 * The model is the checkpoint's (its shape and tokenizer from the file);
 * the layout is the user's (--tp, --pp, --sp and the other [run] settings
 * below, parsed by the same key table as `tessera train`): examples and
 * windows are split over the data-parallel replicas, and the run is built
 * by the same code as training's (run_create_for_eval). Rank 0 prints the
 * result and, with --out FILE, writes it as one JSON line (written beside
 * and renamed into place).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "ckpt_tokenizer.h"
#include "cli_settings.h"
#include "commands.h"
#include "dataset_tokenizer.h"
#include "eval_task.h"
#include "fail.h"
#include "run.h"
#include "runtime.h"
#include "task_file.h"
#include "tokenizer.h"
#include "train_loop.h"

/* The settings of the key table eval takes: how the model is laid out and
 * run, never what it is (the checkpoint says that). */
static const char *const layout_keys[] = {"tp",           "pp",         "sp",        "sp_kind",         "tp_seq_shard",
                                          "backend",      "comm",       "pp_schedule", "pp_virtual",    "pp_layers",
                                          "micro_batch_size", "head_chunk_rows", "watchdog", "watchdog_phase", NULL};

typedef struct eval_options {
  const char *ckpt, *task, *val_data, *out;
  int64_t max_windows; /* 0: every window */
  bool verbose;
} eval_options;

static void print_usage(void) {
  printf("usage: tessera eval --ckpt PATH (--task FILE.jsonl | --val-data PATH) [options]\n"
         "       (mpirun -np N tessera eval ... splits the examples over the data-parallel replicas)\n\n"
         "  --ckpt PATH          a checkpoint file, or a save directory (its `latest`)\n"
         "  --task FILE.jsonl    multiple choice, HellaSwag's format: one {\"ctx\", \"endings\", \"label\"}\n"
         "                       per line; prints acc (lowest loss sum) and acc_norm (lowest mean)\n"
         "  --val-data PATH      a token dataset (PREFIX of `tessera prep`, or an llm.c .bin shard):\n"
         "                       mean loss and perplexity over every whole window of seq_len + 1 tokens\n"
         "  --max-windows N      with --val-data: the first N windows only\n"
         "  --out FILE           also write the result as one JSON line to FILE\n"
         "  --verbose            with --task: every ending's loss sum, token count and mean\n"
         "  -h, --help           this text\n\n"
         "Layout, as for `tessera train` (--key=value or --key value):\n");
  config_print_keys_help(stdout, layout_keys);
}

static bool is_layout_key(const char *key) {
  for (int k = 0; layout_keys[k]; k++)
    if (strcmp(key, layout_keys[k]) == 0) return true;
  return false;
}

/* The record is written at the end: its folder must take it, known before
 * the work starts. */
static void check_out_folder(const char *out) {
  char folder[PATH_BYTES];
  snprintf(folder, sizeof folder, "%s", out);
  char *slash = strrchr(folder, '/');
  if (slash) slash[slash == folder ? 1 : 0] = '\0'; /* "/x" keeps "/" */
  if (access(slash ? folder : ".", W_OK) != 0)
    fail_collective(EXIT_USER_ERROR, "eval: --out '%s': its folder '%s' is not writable: %s", out,
                    slash ? folder : ".", strerror(errno));
}

/* eval's own options into o, layout settings into cfg. */
static void parse_arguments(int argc, char **argv, eval_options *o, config *cfg) {
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i], *value = NULL;
    if (strcmp(arg, "--verbose") == 0) { /* a switch: never takes the next argument */
      o->verbose = true;
      continue;
    }
    char key[64];
    const int consumed = cli_option_key_value(argc, argv, i, key, sizeof key, &value);
    if (consumed == 0)
      fail_collective(EXIT_USER_ERROR, "eval: unexpected argument '%s' (see `tessera eval --help`)", arg);
    i += consumed - 1;
    if (is_layout_key(key)) {
      cli_set_option(cfg, "eval", arg, key, value);
      continue;
    }
    if (!value) fail_collective(EXIT_USER_ERROR, "eval: option '%s' needs a value", arg);
    if (strcmp(key, "ckpt") == 0) o->ckpt = value;
    else if (strcmp(key, "task") == 0) o->task = value;
    else if (strcmp(key, "val_data") == 0) o->val_data = value;
    else if (strcmp(key, "out") == 0) o->out = value;
    else if (strcmp(key, "max_windows") == 0) o->max_windows = cli_int_option("eval", "--max-windows", value, 1, INT64_MAX);
    else
      fail_collective(EXIT_USER_ERROR, "eval: unknown option '%s' (see `tessera eval --help`)", arg);
  }
  if (!o->ckpt) fail_collective(EXIT_USER_ERROR, "eval: name a checkpoint with --ckpt PATH");
  if (!o->task == !o->val_data)
    fail_collective(EXIT_USER_ERROR, "eval: give exactly one of --task FILE.jsonl and --val-data PATH");
  if (o->max_windows && !o->val_data) fail_collective(EXIT_USER_ERROR, "eval: --max-windows goes with --val-data");
  if (o->verbose && !o->task) fail_collective(EXIT_USER_ERROR, "eval: --verbose goes with --task");
  if (o->out) check_out_folder(o->out);
}

/* The checkpoint's model and tokenizer (every rank reads them). */
static tokenizer *read_model(const char *given, char *path, size_t path_bytes, model_shape *shape) {
  char err[MESSAGE_BYTES];
  ckpt_resolve_resume(given, "", -1, path, path_bytes); /* a file or a directory's latest, header checked */
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  if (ckpt_read_model_shape(&f, shape, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  tokenizer *tok = ckpt_read_tokenizer(&f, err, sizeof err); /* the bytes tokenizer when it carries none */
  ckpt_file_close(&f);
  if (!tok) fail_collective(EXIT_IO_ERROR, "%s", err);
  if (tokenizer_vocab_size(tok) > shape->vocab_size)
    fail_collective(EXIT_USER_ERROR,
                    "checkpoint '%s': its tokenizer, %s, makes ids up to %d, outside the model's vocabulary of %d",
                    path, tokenizer_description(tok), tokenizer_vocab_size(tok) - 1, shape->vocab_size);
  return tok;
}

/* Rank 0 writes `record` as one line to path (beside, then renamed); every
 * rank learns whether that worked. */
static void write_record(grid *g, const char *path, json_t *record) {
  char err[MESSAGE_BYTES] = "";
  int64_t failed = 0;
  if (g->world_rank == 0) {
    char tmp[JOINED_PATH_BYTES];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    char *text = json_dumps(record, JSON_COMPACT | JSON_REAL_PRECISION(17));
    FILE *file = text ? fopen(tmp, "w") : NULL;
    bool ok = file && fprintf(file, "%s\n", text) >= 0;
    if (file) ok = fclose(file) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
      snprintf(err, sizeof err, "eval: cannot write --out '%s': %s", path, strerror(errno));
      unlink(tmp);
      failed = 1;
    }
    free(text);
  }
  comm_allreduce_max_i64(&g->world, &failed, 1);
  if (failed) fail_collective(EXIT_IO_ERROR, "%s", g->world_rank == 0 ? err : "cannot write the --out file");
}

static json_t *run_task(run *r, const eval_options *o, const task_set *set, tokenizer *tok) {
  const bool printer = r->rt->world_rank == 0;
  const task_score s = eval_task(r, set, tok, printer && o->verbose ? stdout : NULL);
  const double per_s = s.seconds > 0 ? 1.0 / s.seconds : 0;
  if (printer) {
    printf("eval %s: %lld examples, acc %.4f (%lld right), acc_norm %.4f (%lld right)\n", o->task,
           (long long)s.n_examples, s.acc, (long long)s.correct, s.acc_norm, (long long)s.correct_norm);
    printf("eval: %lld endings scored in %.2f s: %.1f examples/s, %.0f tokens/s", (long long)s.n_candidates,
           s.seconds, s.n_examples * per_s, s.tokens * per_s);
    if (s.n_truncated)
      printf("; %lld candidates were longer than seq_len + 1 = %d tokens and lost tokens on the left",
             (long long)s.n_truncated, r->cfg->seq_len + 1);
    printf("\n");
  }
  return json_pack("{s:s, s:I, s:I, s:f, s:f, s:I, s:I, s:I, s:f, s:f, s:f}", "task", o->task, "examples",
                   (json_int_t)s.n_examples, "endings", (json_int_t)s.n_candidates, "acc", s.acc, "acc_norm",
                   s.acc_norm, "correct", (json_int_t)s.correct, "correct_norm", (json_int_t)s.correct_norm,
                   "truncated", (json_int_t)s.n_truncated, "seconds", s.seconds, "examples_per_s",
                   s.n_examples * per_s, "tokens_per_s", s.tokens * per_s);
}

/* A dataset that records its tokenizer (the sidecar of `tessera prep`)
 * must have been made with the checkpoint's; one without is checked only
 * by its ids (validate() refuses ids outside the vocabulary). */
static void check_data_tokenizer(const char *path, const tokenizer *model_tok) {
  char err[MESSAGE_BYTES];
  tokenizer *data_tok = NULL;
  const int status = dataset_sidecar_read(path, &data_tok, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  if (data_tok && !tokenizers_agree(data_tok, model_tok))
    fail_collective(EXIT_USER_ERROR,
                    "eval: --val-data '%s' was made with the tokenizer %s, the checkpoint's model reads %s; "
                    "prepare the data with the checkpoint's tokenizer",
                    path, tokenizer_description(data_tok), tokenizer_description(model_tok));
  tokenizer_free(data_tok);
}

static json_t *run_val_data(run *r, config *cfg, const eval_options *o) {
  const uint64_t n_windows = r->loader.val.n_windows;
  if (n_windows == 0)
    fail_collective(EXIT_USER_ERROR, "eval: --val-data '%s' holds %llu tokens: not one window of seq_len + 1 = %d",
                    o->val_data, (unsigned long long)r->val_ds.n_tokens, cfg->seq_len + 1);
  uint64_t windows = o->max_windows && (uint64_t)o->max_windows < n_windows ? (uint64_t)o->max_windows : n_windows;
  if (windows > (uint64_t)INT32_MAX) windows = INT32_MAX; /* val_sequences is an int */
  cfg->val_sequences = (int)windows;
  comm_quiet_barrier(&r->grid.world);
  const double start = now_seconds();
  const double loss = validate(r); /* training's validation, over these windows */
  const double seconds = now_seconds() - start;
  const double tokens = (double)windows * cfg->seq_len, ppl = exp(loss);
  if (r->rt->world_rank == 0)
    printf("eval %s: %llu windows of %d tokens (of %llu): loss %.6f, perplexity %.4f; %.2f s, %.0f tokens/s\n",
           o->val_data, (unsigned long long)windows, cfg->seq_len, (unsigned long long)n_windows, loss, ppl, seconds,
           seconds > 0 ? tokens / seconds : 0);
  return json_pack("{s:s, s:I, s:I, s:f, s:f, s:f, s:f}", "val_data", o->val_data, "windows", (json_int_t)windows,
                   "tokens", (json_int_t)tokens, "loss", loss, "perplexity", ppl, "seconds", seconds, "tokens_per_s",
                   seconds > 0 ? tokens / seconds : 0);
}

/* The configuration of the run: the layout given, the checkpoint's model,
 * no ZeRO (each replica holds the weights). */
static void settle_config(config *cfg, const model_shape *shape, const eval_options *o, int world_size) {
  config_set_model_shape(cfg, shape);
  cfg->zero = 0;
  cfg->progress = PROGRESS_OFF;
  snprintf(cfg->val_data, sizeof cfg->val_data, "%s", o->val_data ? o->val_data : "");
  const grid_shape layout = cli_check_layout(cfg, shape, world_size);
  /* forwards only run one micro-batch through the stages at a time (slot
   * 0): GPipe's plan of one micro-batch needs no more; the interleaved
   * schedule keeps its chunks per stage and wants pp micro-batches */
  const bool interleaved = cfg->pp_schedule == PP_SCHEDULE_INTERLEAVED;
  if (!interleaved) cfg->pp_schedule = PP_SCHEDULE_GPIPE;
  cfg->batch_size = layout.dp * cfg->micro_batch_size * (interleaved ? cfg->pp : 1);
  cli_check_pipeline(cfg, shape, layout.dp);
  char err[MESSAGE_BYTES];
  const int status = config_validate(cfg, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
}

int eval_command(int argc, char **argv) {
  if (cli_asks_for_help(argc, argv)) {
    print_usage();
    return EXIT_OK;
  }
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  config cfg;
  config_set_defaults(&cfg);
  eval_options o = {0};
  parse_arguments(argc, argv, &o, &cfg);
  char path[JOINED_PATH_BYTES];
  model_shape shape;
  tokenizer *tok = read_model(o.ckpt, path, sizeof path, &shape);
  settle_config(&cfg, &shape, &o, rt.world_size);
  if (o.val_data) check_data_tokenizer(o.val_data, tok);
  task_set set = {0};
  if (o.task) { /* read before anything is built: a bad file fails at once */
    char err[MESSAGE_BYTES];
    const int status = task_file_read(o.task, &set, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
  }
  run *r = run_create_for_eval(&cfg, &shape, &rt, path);
  if (rt.world_rank == 0)
    printf("eval: %s (step %lld) on %d ranks: tp %d, pp %d, sp %d, dp %d, backend %s\n", path,
           (long long)r->resumed_step, rt.world_size, cfg.tp, cfg.pp, cfg.sp, r->grid.shape.dp, r->be->name);
  json_t *record = o.task ? run_task(r, &o, &set, tok) : run_val_data(r, &cfg, &o);
  task_set_free(&set);
  if (!record) fail_local(EXIT_INTERNAL_ERROR, "eval: building the result record failed");
  json_object_set_new(record, "ckpt", json_string(path));
  json_object_set_new(record, "step", json_integer(r->resumed_step));
  json_object_set_new(record, "layout", json_pack("{s:i, s:i, s:i, s:i}", "tp", cfg.tp, "pp", cfg.pp, "sp", cfg.sp,
                                                  "dp", r->grid.shape.dp));
  if (o.out) write_record(&r->grid, o.out, record);
  json_decref(record);
  run_free(r);
  tokenizer_free(tok);
  runtime_finalize();
  return EXIT_OK;
}

/* test_config — the INI parser and command-line overrides: defaults, sections,
 * comments, every kind of value, and that each bad input is refused with a
 * message naming the key and where it came from; the model keys of issue 15
 * (tie_embeddings, norm_eps) as far as the model shape and its differences;
 * issue 16: the comment and quoting rule, duplicate keys, a BOM, NUL bytes,
 * files that are not regular files, and the one checked number parser. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fail.h"
#include "testing.h"

static char dir[] = "/tmp/tessera-config-XXXXXX";

static const char *write_file(const char *name, const char *text) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return path;
}

/* A file of exactly n bytes (text may hold NUL bytes). */
static const char *write_bytes(const char *name, const char *text, size_t n) {
  static char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "wb");
  fwrite(text, 1, n, f);
  fclose(f);
  return path;
}

/* Defaults, a good file (sections, comments, every kind of value), and
 * command-line overrides. */
static void test_parse(void) {
  config cfg;
  char err[512];
  config_set_defaults(&cfg);
  CHECK(cfg.n_layer == 4 && cfg.vocab_size == 257 && cfg.zero == 0, "defaults");
  CHECK(cfg.backend == BACKEND_CHOICE_AUTO && cfg.progress == PROGRESS_AUTO, "choice defaults");
  CHECK(strcmp(cfg.metrics, "runs/metrics.jsonl") == 0, "string default");

  const char *good = write_file("good.ini",
                                "# a comment\n[model]\nn_layer = 6   # trailing comment\n"
                                "d_model=96\n n_head = 3 \n\n[train]\nlr = 3e-4\nsteps = 1000000000000\n"
                                "; another comment\n[run]\nbackend = cpu\n[data]\ndata = /some/path\n");
  CHECK(config_load_file(&cfg, good, err, sizeof err) == 0, "good file loads: %s", err);
  CHECK(cfg.n_layer == 6 && cfg.d_model == 96 && cfg.n_head == 3, "ints parsed");
  CHECK_CLOSE(cfg.lr, 3e-4, 0, 0, "double parsed exactly");
  CHECK(cfg.steps == 1000000000000LL, "int64 parsed");
  CHECK(cfg.backend == BACKEND_CHOICE_CPU, "choice parsed");
  CHECK(strcmp(cfg.data, "/some/path") == 0, "string parsed");
  CHECK(config_validate(&cfg, err, sizeof err) == 0, "valid: %s", err);

  CHECK(config_set(&cfg, "lr", "1e-3", "--lr", err, sizeof err) == 0, "override");
  CHECK_CLOSE(cfg.lr, 1e-3, 0, 0, "override applied");
  CHECK(cfg.comm_path == COMM_CHOICE_AUTO, "comm defaults to auto");
  CHECK(config_set(&cfg, "comm", "mpi", "--comm", err, sizeof err) == 0 && cfg.comm_path == COMM_CHOICE_MPI,
        "comm parsed: %s", err);
}

/* Each bad value, key, section or file is refused with status 1 and a
 * message naming the culprit. */
static void test_refusals(void) {
  config cfg;
  char err[512];
  config_set_defaults(&cfg);
  /* refusals: status 1 and a message naming the culprit */
  struct {
    const char *key, *value, *must_mention;
  } bad_values[] = {
      {"n_layer", "two", "n_layer"},     {"n_layer", "0", "out of range"},
      {"lr", "1e-3x", "lr"},             {"zero", "4", "zero"},
      {"backend", "gpu", "auto|cpu|cuda"}, {"nonsense", "1", "unknown key 'nonsense'"},
      {"comm", "gloo", "auto|nccl|mpi"},
      {"steps", "", "steps"},
  };
  for (size_t i = 0; i < sizeof bad_values / sizeof bad_values[0]; i++) {
    int status = config_set(&cfg, bad_values[i].key, bad_values[i].value, "--x", err, sizeof err);
    CHECK(status == EXIT_USER_ERROR, "%s=%s refused", bad_values[i].key, bad_values[i].value);
    CHECK(strstr(err, bad_values[i].must_mention) != NULL, "message '%s' mentions '%s'", err,
          bad_values[i].must_mention);
  }

  const char *unknown = write_file("unknown.ini", "[model]\nn_layer = 2\nn_heads = 4\n");
  CHECK(config_load_file(&cfg, unknown, err, sizeof err) == EXIT_USER_ERROR, "unknown key in file");
  CHECK(strstr(err, "unknown.ini:3") && strstr(err, "n_heads"), "names file:line and key: %s", err);
  const char *section = write_file("section.ini", "[train]\nn_layer = 2\n");
  CHECK(config_load_file(&cfg, section, err, sizeof err) == EXIT_USER_ERROR, "key in wrong section");
  CHECK(strstr(err, "[model]") != NULL, "names the right section: %s", err);
  const char *no_equals = write_file("noeq.ini", "[model]\nn_layer 2\n");
  CHECK(config_load_file(&cfg, no_equals, err, sizeof err) == EXIT_USER_ERROR, "line without =");
  const char *bad_section = write_file("badsec.ini", "[modle]\n");
  CHECK(config_load_file(&cfg, bad_section, err, sizeof err) == EXIT_USER_ERROR, "unknown section");
  CHECK(config_load_file(&cfg, "/nonexistent/x.ini", err, sizeof err) == EXIT_USER_ERROR,
        "missing file");
  CHECK(strstr(err, "/nonexistent/x.ini") != NULL, "names the missing file");
}

/* Checks across keys. */
static void test_validate(void) {
  config cfg;
  char err[512];
  config_set_defaults(&cfg);
  cfg.d_model = 100;
  cfg.n_head = 3;
  CHECK(config_validate(&cfg, err, sizeof err) == EXIT_USER_ERROR && strstr(err, "n_head"),
        "heads must divide d_model");
  config_set_defaults(&cfg);
  cfg.batch_size = 10;
  cfg.micro_batch_size = 4;
  CHECK(config_validate(&cfg, err, sizeof err) == EXIT_USER_ERROR && strstr(err, "micro_batch_size"),
        "batch must be a multiple of the micro-batch");
}

/* The head and ε keys: parsed, mapped into the model shape, refused out of
 * range; and a shape with another ε or head is a difference a resume
 * reports (model_shape_differences). */
static void test_head_and_eps(void) {
  config cfg;
  char err[512];
  config_set_defaults(&cfg);
  model_shape gpt2 = config_model_shape(&cfg);
  CHECK(cfg.tie_embeddings && !gpt2.untied_head && model_norm_eps(&gpt2) == 1e-5, "defaults: tied, eps 1e-5");
  const char *llama = write_file("llama.ini", "[model]\ntie_embeddings = false\nnorm_eps = 1e-6\n");
  CHECK(config_load_file(&cfg, llama, err, sizeof err) == 0, "tie_embeddings and norm_eps load: %s", err);
  model_shape s = config_model_shape(&cfg);
  CHECK(s.untied_head && s.norm_eps == 1e-6 && model_norm_eps(&s) == 1e-6, "mapped: untied, eps %g", s.norm_eps);
  CHECK(config_set(&cfg, "norm_eps", "0", "--norm_eps", err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "norm_eps") && strstr(err, "out of range"),
        "norm_eps 0 refused: %s", err);
  CHECK(config_set(&cfg, "tie_embeddings", "maybe", "--tie_embeddings", err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "tie_embeddings"),
        "tie_embeddings maybe refused: %s", err);
  char diff[512];
  model_shape_differences(&s, &s, diff, sizeof diff);
  CHECK(diff[0] == '\0', "a shape does not differ from itself: '%s'", diff);
  model_shape other_eps = s;
  other_eps.norm_eps = 1e-5;
  model_shape_differences(&s, &other_eps, diff, sizeof diff);
  CHECK(strcmp(diff, "norm_eps 1e-06 in the checkpoint, 1e-05 now") == 0, "another eps: '%s'", diff);
  model_shape_differences(&s, &gpt2, diff, sizeof diff);
  CHECK(strstr(diff, "tie_embeddings 0 in the checkpoint, 1 now") && strstr(diff, "norm_eps"), "tied now: '%s'", diff);
  model_shape zero_eps = gpt2, explicit_eps = gpt2;
  explicit_eps.norm_eps = 1e-5; /* 0 means 1e-5: the same model */
  model_shape_differences(&zero_eps, &explicit_eps, diff, sizeof diff);
  CHECK(diff[0] == '\0', "eps 0 and 1e-5 are the same: '%s'", diff);
}

/* The comment rule (doc/user-guide.md "Settings"): a line whose first
 * non-blank character is # or ; is a comment; after a value, a # or ; that
 * stands alone (whitespace before, whitespace or the end after) starts one;
 * a value in double quotes is everything between them. */
static void test_comments_and_quotes(void) {
  config cfg;
  char err[512];
  config_set_defaults(&cfg);
  const char *file = write_file("comments.ini",
                                "[eval]   # a header may carry a comment\n"
                                "sample_prompt = The #1 dog\n"
                                "[train]\nsteps = 19073             # 10B tokens\n"
                                "warmup_steps = 5 ; semicolon comment\n"
                                "[data]\ndata = corpus#2;v3   #\n"
                                "tokenizer = \"  spaced # kept ; too \"   # and a comment\n");
  CHECK(config_load_file(&cfg, file, err, sizeof err) == 0, "comments file loads: %s", err);
  CHECK(strcmp(cfg.sample_prompt, "The #1 dog") == 0, "a # followed by text is kept: '%s'", cfg.sample_prompt);
  CHECK(cfg.steps == 19073 && cfg.warmup_steps == 5, "trailing # and ; comments removed (%lld, %lld)",
        (long long)cfg.steps, (long long)cfg.warmup_steps);
  CHECK(strcmp(cfg.data, "corpus#2;v3") == 0, "# and ; after a non-space are kept, a lone # at the end is not: '%s'",
        cfg.data);
  CHECK(strcmp(cfg.tokenizer, "  spaced # kept ; too ") == 0, "a quoted value is kept verbatim: '%s'",
        cfg.tokenizer);

  const char *open_quote = write_file("openquote.ini", "[eval]\nsample_prompt = \"The dog\n");
  CHECK(config_load_file(&cfg, open_quote, err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "openquote.ini:2") && strstr(err, "no closing"),
        "an unclosed quote is refused: %s", err);
  const char *after_quote = write_file("afterquote.ini", "[eval]\nsample_prompt = \"The\" dog\n");
  CHECK(config_load_file(&cfg, after_quote, err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "afterquote.ini:2") && strstr(err, "after the closing"),
        "text after a closing quote is refused: %s", err);

  /* config_print quotes what would not read back unquoted */
  config_set_defaults(&cfg);
  snprintf(cfg.sample_prompt, sizeof cfg.sample_prompt, " lead # and trail ");
  char path[256];
  snprintf(path, sizeof path, "%s/quoted.ini", dir);
  FILE *printed = fopen(path, "w");
  config_print(&cfg, printed);
  fclose(printed);
  config again;
  config_set_defaults(&again);
  CHECK(config_load_file(&again, path, err, sizeof err) == 0 && strcmp(again.sample_prompt, cfg.sample_prompt) == 0,
        "a prompt with edge spaces and a lone # round-trips: '%s' %s", again.sample_prompt, err);
}

/* What the file itself may be: a key given twice, a BOM, a NUL byte, and
 * files that are not regular files. */
static void test_file_checks(void) {
  config cfg;
  char err[512];
  config_set_defaults(&cfg);
  const char *twice = write_file("twice.ini", "[train]\nsteps = 7\nlr = 1e-3\n# x\nsteps = 8\n");
  CHECK(config_load_file(&cfg, twice, err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "twice.ini:5: key 'steps' is set twice, on line 2 and on line 5"),
        "a duplicate key names both lines: %s", err);
  const char *bom = write_file("bom.ini", "\xEF\xBB\xBF[train]\nsteps = 9\n");
  CHECK(config_load_file(&cfg, bom, err, sizeof err) == 0 && cfg.steps == 9, "a UTF-8 BOM is accepted: %s", err);
  const char *nul = write_bytes("nul.ini", "[train]\nsteps = 9\nl\0r = 1\n", 22);
  CHECK(config_load_file(&cfg, nul, err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "nul.ini:3: a NUL byte at column 2"),
        "a NUL byte is reported with its line: %s", err);

  char fifo[256];
  snprintf(fifo, sizeof fifo, "%s/fifo.ini", dir);
  CHECK(mkfifo(fifo, 0600) == 0, "mkfifo");
  /* no writer ever opens it: reading it would block for ever */
  CHECK(config_load_file(&cfg, fifo, err, sizeof err) == EXIT_USER_ERROR && strstr(err, "not a regular file"),
        "a FIFO is refused, not read: %s", err);
  CHECK(config_load_file(&cfg, "/dev/zero", err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "'/dev/zero' is not a regular file"),
        "a device is refused: %s", err);
  CHECK(config_load_file(&cfg, dir, err, sizeof err) == EXIT_USER_ERROR && strstr(err, "is a directory"),
        "a directory is refused: %s", err);
}

/* The one numeric parser every command's options use. */
static void test_numbers(void) {
  char err[512];
  int64_t v = -1;
  CHECK(config_parse_int64("x: --n", "42", 0, 100, &v, err, sizeof err) == 0 && v == 42, "42 parsed");
  CHECK(config_parse_int64("x: --n", "abc", 0, 100, &v, err, sizeof err) == EXIT_USER_ERROR &&
            strcmp(err, "x: --n needs a whole number, got 'abc'") == 0 && v == 42,
        "text refused, value untouched: %s", err);
  CHECK(config_parse_int64("x: --n", "101", 0, 100, &v, err, sizeof err) == EXIT_USER_ERROR &&
            strcmp(err, "x: --n = 101 is out of range [0, 100]") == 0,
        "above the range: %s", err);
  CHECK(config_parse_int64("x: --n", "9223372036854775808", 0, INT64_MAX, &v, err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "9223372036854775808 is out of range"),
        "beyond int64 is out of range, not clamped: %s", err);
  config cfg;
  config_set_defaults(&cfg);
  CHECK(config_set(&cfg, "seq_len", "99999999999", "--seq_len", err, sizeof err) == EXIT_USER_ERROR &&
            strstr(err, "out of range") && cfg.seq_len == 128,
        "an int key never wraps: %s", err);
  double d = 0;
  CHECK(config_parse_double("x: --p", "nan", 0, 1, &d, err, sizeof err) == EXIT_USER_ERROR, "nan refused");
  CHECK(config_parse_double("x: --p", "0.5", 0, 1, &d, err, sizeof err) == 0 && d == 0.5, "0.5 parsed");
}

static void test_print_round_trip(void) {
  config cfg;
  char err[512];
  /* config_print writes a file that loads back to the same settings */
  config_set_defaults(&cfg);
  cfg.lr = 1.2345678e-4;
  cfg.n_layer = 7;
  char path[256];
  snprintf(path, sizeof path, "%s/printed.ini", dir);
  FILE *printed = fopen(path, "w");
  config_print(&cfg, printed);
  fclose(printed);
  config again;
  config_set_defaults(&again);
  CHECK(config_load_file(&again, path, err, sizeof err) == 0, "printed config loads: %s", err);
  CHECK(again.n_layer == 7 && again.lr == cfg.lr, "printed config round-trips");
}

int main(void) {
  if (!mkdtemp(dir)) return 99;
  test_parse();
  test_refusals();
  test_validate();
  test_head_and_eps();
  test_print_round_trip();
  test_comments_and_quotes();
  test_file_checks();
  test_numbers();
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary("test_config");
}

/* train_command — `tessera train`: parse the command line into a config,
 * check the layout against the world size, and hand over to the trainer.
 *
 * Every rank parses the same arguments, so every rank reaches the same
 * verdict: errors go through fail_collective and are printed once, by rank 0.
 * Options are applied in order (the config file first, wherever it appears),
 * so `--key=value` always overrides the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "fail.h"
#include "grid.h"
#include "model_io.h"
#include "pipeline_plan.h"
#include "runtime.h"
#include "sp_attention.h"
#include "trainer.h"

static void print_usage(void) {
  printf("usage: tessera train --config FILE.ini [--key=value ...]\n"
         "       (mpirun -np N tessera train ... runs N data-parallel ranks)\n\n"
         "  -c, --config FILE   INI file of settings (presets in jobs/configs/)\n"
         "  --print-config      print the settings in effect and exit\n"
         "  -h, --help          this text\n\n"
         "Every setting below can be given in the INI file or as --key=value / --key value:\n");
  config_print_help(stdout);
}

/* Splits "--key=value" / "--key value" into key and value. Returns the number
 * of argv entries consumed, or 0 when the option is not a setting. */
static int option_key_value(int argc, char **argv, int i, char *key, size_t key_bytes,
                            const char **value) {
  const char *arg = argv[i];
  if (strncmp(arg, "--", 2) != 0) return 0;
  const char *name = arg + 2, *equals = strchr(name, '=');
  size_t name_len = equals ? (size_t)(equals - name) : strlen(name);
  if (name_len == 0 || name_len >= key_bytes) return 0;
  memcpy(key, name, name_len);
  key[name_len] = '\0';
  for (char *c = key; *c; c++)
    if (*c == '-') *c = '_'; /* --val-data is val_data */
  if (equals) {
    *value = equals + 1;
    return 1;
  }
  if (config_key_is_switch(key) && (i + 1 >= argc || argv[i + 1][0] == '-')) {
    *value = "true"; /* a bare switch: --tp-seq-shard */
    return 1;
  }
  if (i + 1 >= argc) {
    *value = NULL;
    return 1;
  }
  *value = argv[i + 1];
  return 2;
}

static void parse_arguments(int argc, char **argv, config *cfg, bool *print_config) {
  char err[MESSAGE_BYTES];
  /* the config file first, so that options override it wherever they stand */
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
      if (i + 1 >= argc) fail_collective(EXIT_USER_ERROR, "%s needs a file name", argv[i]);
      int status = config_load_file(cfg, argv[++i], err, sizeof err);
      if (status) fail_collective(status, "%s", err);
    } else if (strncmp(argv[i], "--config=", 9) == 0) {
      int status = config_load_file(cfg, argv[i] + 9, err, sizeof err);
      if (status) fail_collective(status, "%s", err);
    }
  }
  for (int i = 1; i < argc; i++) {
    const char *arg = argv[i];
    if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
      i++;
      continue;
    }
    if (strncmp(arg, "--config=", 9) == 0) continue;
    if (strcmp(arg, "--print-config") == 0) {
      *print_config = true;
      continue;
    }
    char key[64];
    const char *value = NULL;
    int consumed = option_key_value(argc, argv, i, key, sizeof key, &value);
    if (consumed == 0)
      fail_collective(EXIT_USER_ERROR, "unexpected argument '%s' (see `tessera train --help`)", arg);
    if (!config_has_key(key))
      fail_collective(EXIT_USER_ERROR, "unknown option '%s' (see `tessera train --help`)", arg);
    if (!value) fail_collective(EXIT_USER_ERROR, "option '%s' needs a value", arg);
    char origin[80];
    snprintf(origin, sizeof origin, "--%s", key);
    int status = config_set(cfg, key, value, origin, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
    i += consumed - 1;
  }
}

/* Checks that need the world size: the layout and the batch arithmetic. */
static void check_layout(const config *cfg, const model_shape *arch, int world_size) {
  char err[MESSAGE_BYTES];
  grid_shape shape;
  if (grid_check_shape(world_size, cfg->tp, cfg->pp, cfg->sp, &shape, err, sizeof err))
    fail_collective(EXIT_USER_ERROR, "%s", err);
  if (cfg->n_head % cfg->tp != 0) {
    /* the nearest divisors of n_head below and above the request */
    int below = cfg->tp, above = cfg->tp;
    while (below > 1 && cfg->n_head % below) below--;
    while (above <= cfg->n_head && cfg->n_head % above) above++;
    char choices[64];
    if (above <= cfg->n_head) snprintf(choices, sizeof choices, "--tp %d or --tp %d", below, above);
    else snprintf(choices, sizeof choices, "--tp %d", below);
    fail_collective(EXIT_USER_ERROR,
                    "--tp %d does not divide n_head = %d: tensor parallelism splits whole heads; "
                    "use %s",
                    cfg->tp, cfg->n_head, choices);
  }
  if (model_ffn_hidden(arch) % cfg->tp != 0)
    fail_collective(EXIT_USER_ERROR,
                    "ffn_hidden = %d is not divisible by --tp %d: tensor parallelism splits the MLP's hidden "
                    "width; set ffn_hidden to a multiple of %d",
                    model_ffn_hidden(arch), cfg->tp, cfg->tp);
  if (cfg->tp_seq_shard && cfg->tp > 1 && cfg->seq_len % cfg->tp != 0)
    fail_collective(EXIT_USER_ERROR,
                    "--tp-seq-shard shards each sequence over the %d tp ranks, but seq_len = %d is "
                    "not divisible by %d; choose a seq_len that is a multiple of --tp",
                    cfg->tp, cfg->seq_len, cfg->tp);

  if (cfg->sp > 1) {
    /* ring attention over softmax layers cuts sequences in 2·sp zig-zag chunks */
    const sp_placement placement = sp_attention_placement((sp_kind)cfg->sp_kind, model_has_softmax(arch));
    const bool zigzag = placement == SP_ZIGZAG;
    const int chunks = cfg->sp * sp_placement_pieces(placement);
    if (cfg->seq_len % chunks != 0)
      fail_collective(EXIT_USER_ERROR,
                      "--sp %d%s cuts each sequence into %d chunks, but seq_len = %d is not a multiple of %d; "
                      "choose a seq_len that is%s",
                      cfg->sp, zigzag ? " with --sp-kind ring (zig-zag over softmax layers)" : "", chunks,
                      cfg->seq_len, chunks, zigzag ? ", or --sp-kind allgather" : "");
    if (cfg->tp_seq_shard && cfg->tp > 1 && (cfg->seq_len / cfg->sp) % cfg->tp != 0)
      fail_collective(EXIT_USER_ERROR,
                      "--tp-seq-shard shards each rank's %d tokens per sequence (seq_len / --sp) over --tp %d; "
                      "choose a seq_len that makes them a multiple of %d",
                      cfg->seq_len / cfg->sp, cfg->tp, cfg->tp);
  }
  if (cfg->save_every > 0 && !cfg->save_dir[0])
    fail_collective(EXIT_USER_ERROR, "--save-every %lld needs --save-dir DIR",
                    (long long)cfg->save_every);
  const int dp = shape.dp;
  if (cfg->batch_size % (dp * cfg->micro_batch_size) != 0) {
    int unit = dp * cfg->micro_batch_size;
    int lower = cfg->batch_size / unit * unit, upper = lower + unit;
    fail_collective(EXIT_USER_ERROR,
                    "batch_size %d is not divisible by dp %d x micro_batch_size %d = %d; use "
                    "batch_size %d or %d, or change micro_batch_size or the number of ranks",
                    cfg->batch_size, dp, cfg->micro_batch_size, unit, lower > 0 ? lower : unit,
                    upper);
  }
  if (cfg->pp > 1 && cfg->zero >= 2)
    fail_collective(EXIT_USER_ERROR,
                    "--zero %d with --pp %d: ZeRO-2 reduce-scatters each block's gradients as its "
                    "backward ends and ZeRO-3 gathers each block's weights before every use, so with "
                    "several micro-batches in flight per stage they would repeat that traffic for every "
                    "micro-batch (DeepSpeed refuses the same pairing); use --zero 1 with a pipeline",
                    cfg->zero, cfg->pp);
  pipeline_plan plan;
  const int status = pipeline_plan_make(&plan, cfg, arch, dp, err, sizeof err);
  pipeline_plan_free(&plan);
  if (status) fail_collective(status, "%s", err);
  if (!cfg->data[0])
    fail_collective(EXIT_USER_ERROR,
                    "no training data: pass --data PREFIX (a dataset made by `tessera prep`)");
  /* --backend and --comm are checked by the trainer (src/backend_select.c), which
   * can ask every rank whether it has a GPU */
}

/* --init-from: the model keys are the source's; keys set to other values
 * are one message listing them. Every rank opens the source and reaches
 * the same verdict. */
static void adopt_init_from_shape(config *cfg) {
  char err[MESSAGE_BYTES], differences[MESSAGE_BYTES];
  int status = 0;
  model_source *source = model_source_open(cfg->init_from, &status, err, sizeof err);
  if (!source) fail_collective(status, "--init-from: %s", err);
  config_adopt_model_shape(cfg, model_source_shape(source), differences, sizeof differences);
  model_source_close(source);
  if (differences[0])
    fail_collective(EXIT_USER_ERROR,
                    "--init-from '%s' holds another model than the model keys set (\"in the checkpoint\": the model's, "
                    "\"now\": the keys'): %s; the model keys come from the model started from: leave them out",
                    cfg->init_from, differences);
}

int train_command(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      print_usage();
      return EXIT_OK;
    }
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  config cfg;
  config_set_defaults(&cfg);
  bool print_config = false;
  parse_arguments(argc, argv, &cfg, &print_config);
  if (cfg.init_from[0]) adopt_init_from_shape(&cfg);
  char err[512];
  int status = config_validate(&cfg, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  if (print_config) {
    if (rt.world_rank == 0) config_print(&cfg, stdout);
    runtime_finalize();
    return EXIT_OK;
  }
  const model_shape shape = config_model_shape(&cfg); /* the one derivation of the model's shape */
  check_layout(&cfg, &shape, rt.world_size);
  status = trainer_run(&cfg, &shape, &rt);
  runtime_finalize();
  return status;
}

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

#include "cli_settings.h"
#include "commands.h"
#include "config.h"
#include "fail.h"
#include "grid.h"
#include "layout_rules.h"
#include "model_io.h"
#include "pipeline_plan.h"
#include "runtime.h"
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
    int consumed = cli_option_key_value(argc, argv, i, key, sizeof key, &value);
    if (consumed == 0)
      fail_collective(EXIT_USER_ERROR, "unexpected argument '%s' (see `tessera train --help`)", arg);
    cli_set_option(cfg, "train", arg, key, value);
    i += consumed - 1;
  }
}

/* Checks that need the world size: the layout and the batch arithmetic. */
static void check_layout(const config *cfg, const model_shape *arch, int world_size) {
  const grid_shape shape = cli_check_layout(cfg, arch, world_size);
  if (cfg->save_every > 0 && !cfg->save_dir[0])
    fail_collective(EXIT_USER_ERROR, "--save-every %lld needs --save-dir DIR",
                    (long long)cfg->save_every);
  const int dp = shape.dp;
  char err[MESSAGE_BYTES];
  const int status = layout_rules_batch(cfg, dp, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  cli_check_pipeline(cfg, arch, dp);
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
  if (cli_asks_for_help(argc, argv)) {
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

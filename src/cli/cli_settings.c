/* cli_settings — see cli_settings.h. */
#include "cli_settings.h"

#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "layout_rules.h"

bool cli_asks_for_help(int argc, char **argv) {
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return true;
  return false;
}

int cli_option_key_value(int argc, char **argv, int i, char *key, size_t key_bytes, const char **value) {
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

int64_t cli_int_option(const char *command, const char *option, const char *text, int64_t min, int64_t max) {
  char what[160], err[MESSAGE_BYTES];
  snprintf(what, sizeof what, "%s: %s", command, option);
  int64_t value = 0;
  const int status = config_parse_int64(what, text, min, max, &value, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  return value;
}

void cli_set_option(config *cfg, const char *command, const char *arg, const char *key, const char *value) {
  if (!config_has_key(key))
    fail_collective(EXIT_USER_ERROR, "unknown option '%s' (see `tessera %s --help`)", arg, command);
  if (!value) fail_collective(EXIT_USER_ERROR, "option '%s' needs a value", arg);
  char origin[80], err[MESSAGE_BYTES];
  snprintf(origin, sizeof origin, "--%s", key);
  const int status = config_set(cfg, key, value, origin, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
}

grid_shape cli_check_layout(const config *cfg, const model_shape *arch, int world_size) {
  char err[MESSAGE_BYTES];
  grid_shape shape;
  const int status = layout_rules_grid(cfg, arch, world_size, &shape, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  return shape;
}

void cli_check_pipeline(const config *cfg, const model_shape *arch, int dp) {
  char err[MESSAGE_BYTES];
  const int status = layout_rules_pipeline(cfg, arch, dp, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
}

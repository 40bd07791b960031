/* cli_settings — see cli_settings.h. */
#include "cli_settings.h"

#include <stdio.h>
#include <string.h>

#include "fail.h"
#include "pipeline_plan.h"
#include "sp_attention.h"

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
    if (cfg->sp_kind == SP_KIND_CHOICE_ULYSSES && (arch->n_head / cfg->tp) % cfg->sp != 0)
      fail_collective(EXIT_USER_ERROR,
                      "--sp-kind ulysses gives each of the --sp %d ranks whole heads, but a tp rank's heads "
                      "(n_head %d / --tp %d = %d) are not divisible by %d; choose n_head, --tp and --sp so "
                      "that they are, or another --sp-kind",
                      cfg->sp, arch->n_head, cfg->tp, arch->n_head / cfg->tp, cfg->sp);
    /* ring attention and TokenRing over softmax layers cut sequences in 2·sp zig-zag chunks */
    const sp_placement placement = sp_attention_placement((sp_kind)cfg->sp_kind, model_has_softmax(arch));
    const bool zigzag = placement == SP_ZIGZAG;
    const int chunks = cfg->sp * sp_placement_pieces(placement);
    if (cfg->seq_len % chunks != 0)
      fail_collective(EXIT_USER_ERROR,
                      "--sp %d%s cuts each sequence into %d chunks, but seq_len = %d is not a multiple of %d; "
                      "choose a seq_len that is%s",
                      cfg->sp,
                      !zigzag                                       ? ""
                      : cfg->sp_kind == SP_KIND_CHOICE_TOKENRING ? " with --sp-kind tokenring (zig-zag over softmax layers)"
                                                                    : " with --sp-kind ring (zig-zag over softmax layers)",
                      chunks,
                      cfg->seq_len, chunks, zigzag ? ", or --sp-kind allgather" : "");
    if (cfg->tp_seq_shard && cfg->tp > 1 && (cfg->seq_len / cfg->sp) % cfg->tp != 0)
      fail_collective(EXIT_USER_ERROR,
                      "--tp-seq-shard shards each rank's %d tokens per sequence (seq_len / --sp) over --tp %d; "
                      "choose a seq_len that makes them a multiple of %d",
                      cfg->seq_len / cfg->sp, cfg->tp, cfg->tp);
  }
  return shape;
}

void cli_check_pipeline(const config *cfg, const model_shape *arch, int dp) {
  char err[MESSAGE_BYTES];
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
}

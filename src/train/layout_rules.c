/* layout_rules — see layout_rules.h. The rules moved here from the
 * commands (src/cli/cli_settings.c) so that `plan` calls the same ones. */
#include "layout_rules.h"

#include <stdarg.h>
#include <stdio.h>

#include "fail.h"
#include "param_layout.h"
#include "pipeline_plan.h"
#include "zero_partition.h"
#include "sp_attention.h"

/* One line into err; EXIT_USER_ERROR. */
static int refuse(char *err, size_t err_bytes, const char *format, ...) {
  va_list args;
  va_start(args, format);
  vsnprintf(err, err_bytes, format, args);
  va_end(args);
  return EXIT_USER_ERROR;
}

int layout_rules_grid(const config *cfg, const model_shape *arch, int world_size, grid_shape *shape, char *err,
                      size_t err_bytes) {
  if (grid_check_shape(world_size, cfg->tp, cfg->pp, cfg->sp, shape, err, err_bytes)) return EXIT_USER_ERROR;
  if (cfg->n_head % cfg->tp != 0) {
    /* the nearest divisors of n_head below and above the request */
    int below = cfg->tp, above = cfg->tp;
    while (below > 1 && cfg->n_head % below) below--;
    while (above <= cfg->n_head && cfg->n_head % above) above++;
    char choices[64];
    if (above <= cfg->n_head) snprintf(choices, sizeof choices, "--tp %d or --tp %d", below, above);
    else snprintf(choices, sizeof choices, "--tp %d", below);
    return refuse(err, err_bytes,
                    "--tp %d does not divide n_head = %d: tensor parallelism splits whole heads; "
                    "use %s",
                    cfg->tp, cfg->n_head, choices);
  }
  if (model_ffn_hidden(arch) % cfg->tp != 0)
    return refuse(err, err_bytes,
                    "ffn_hidden = %d is not divisible by --tp %d: tensor parallelism splits the MLP's hidden "
                    "width; set ffn_hidden to a multiple of %d",
                    model_ffn_hidden(arch), cfg->tp, cfg->tp);
  if (cfg->tp_seq_shard && cfg->tp > 1 && cfg->seq_len % cfg->tp != 0)
    return refuse(err, err_bytes,
                    "--tp-seq-shard shards each sequence over the %d tp ranks, but seq_len = %d is "
                    "not divisible by %d; choose a seq_len that is a multiple of --tp",
                    cfg->tp, cfg->seq_len, cfg->tp);

  if (cfg->sp > 1) {
    if (cfg->sp_kind == SP_KIND_CHOICE_ULYSSES && (arch->n_head / cfg->tp) % cfg->sp != 0)
      return refuse(err, err_bytes,
                      "--sp-kind ulysses gives each of the --sp %d ranks whole heads, but a tp rank's heads "
                      "(n_head %d / --tp %d = %d) are not divisible by %d; choose n_head, --tp and --sp so "
                      "that they are, or another --sp-kind",
                      cfg->sp, arch->n_head, cfg->tp, arch->n_head / cfg->tp, cfg->sp);
    /* ring attention and TokenRing over softmax layers cut sequences in 2·sp zig-zag chunks */
    const sp_placement placement = sp_attention_placement((sp_kind)cfg->sp_kind, model_has_softmax(arch));
    const bool zigzag = placement == SP_ZIGZAG;
    const int chunks = cfg->sp * sp_placement_pieces(placement);
    if (cfg->seq_len % chunks != 0)
      return refuse(err, err_bytes,
                      "--sp %d%s cuts each sequence into %d chunks, but seq_len = %d is not a multiple of %d; "
                      "choose a seq_len that is%s",
                      cfg->sp,
                      !zigzag                                    ? ""
                      : cfg->sp_kind == SP_KIND_CHOICE_TOKENRING ? " with --sp-kind tokenring (zig-zag over softmax layers)"
                                                                 : " with --sp-kind ring (zig-zag over softmax layers)",
                      chunks,
                      cfg->seq_len, chunks, zigzag ? ", or --sp-kind allgather" : "");
    if (cfg->tp_seq_shard && cfg->tp > 1 && (cfg->seq_len / cfg->sp) % cfg->tp != 0)
      return refuse(err, err_bytes,
                      "--tp-seq-shard shards each rank's %d tokens per sequence (seq_len / --sp) over --tp %d; "
                      "choose a seq_len that makes them a multiple of %d",
                      cfg->seq_len / cfg->sp, cfg->tp, cfg->tp);
  }
  return 0;
}

/* Each stage's flat buffer, whole or in ZeRO ranges over dp×sp, within
 * MPI's int counts (zero_partition_fits): refused here, before anything is
 * allocated, not as an internal error at start-up. */
static int stage_ranges(const config *cfg, const model_shape *arch, const pipeline_plan *plan, int dp, char *err,
                        size_t err_bytes) {
  const int ranks = cfg->zero >= 1 ? dp * cfg->sp : 1;
  /* no stage holds more than the whole model, a second wte (a tied head's
   * copy) and the vocabulary's padding to whole tp rows: when that fits,
   * every stage does (and no registry need be built) */
  const size_t bound = (size_t)model_n_params(arch) + 2 * ((size_t)arch->vocab_size + (size_t)cfg->tp) * arch->d_model;
  if (zero_partition_fits(bound, ranks)) return 0;
  for (int s = 0; s < plan->stages; s++) {
    const model_stage stage = pipeline_plan_stage(plan, s);
    param_layout pl;
    param_layout_create(&pl, arch, &stage, 0, cfg->tp);
    const size_t n = pl.reg.n_local_total;
    param_layout_free(&pl);
    if (!zero_partition_fits(n, ranks))
      return refuse(err, err_bytes,
                    "pipeline stage %d holds %zu parameter elements per tp rank, %zu per range over %d ZeRO rank(s): "
                    "more than MPI's counts (2^31 - 1); use more --tp or --pp ranks, or --zero 1 with more "
                    "data-parallel ranks", s, n, n / (size_t)ranks + 1, ranks);
  }
  return 0;
}

int layout_rules_pipeline(const config *cfg, const model_shape *arch, int dp, char *err, size_t err_bytes) {
  if (cfg->pp > 1 && cfg->zero >= 2)
    return refuse(err, err_bytes,
                    "--zero %d with --pp %d: ZeRO-2 reduce-scatters each block's gradients as its "
                    "backward ends and ZeRO-3 gathers each block's weights before every use, so with "
                    "several micro-batches in flight per stage they would repeat that traffic for every "
                    "micro-batch (DeepSpeed refuses the same pairing); use --zero 1 with a pipeline",
                    cfg->zero, cfg->pp);
  pipeline_plan plan;
  int status = pipeline_plan_make(&plan, cfg, arch, dp, err, err_bytes);
  if (!status) status = stage_ranges(cfg, arch, &plan, dp, err, err_bytes);
  pipeline_plan_free(&plan);
  return status;
}

int layout_rules_batch(const config *cfg, int dp, char *err, size_t err_bytes) {
  if (cfg->batch_size % (dp * cfg->micro_batch_size) == 0) return 0;
  const int unit = dp * cfg->micro_batch_size;
  const int lower = cfg->batch_size / unit * unit, upper = lower + unit;
  return refuse(err, err_bytes,
                "batch_size %d is not divisible by dp %d x micro_batch_size %d = %d; use "
                "batch_size %d or %d, or change micro_batch_size or the number of ranks",
                cfg->batch_size, dp, cfg->micro_batch_size, unit, lower > 0 ? lower : unit, upper);
}

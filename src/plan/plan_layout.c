/* plan_layout — a layout as config keys, its validity by train's own rules
 * (layout_rules.h, config_validate), and every valid layout of N ranks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "layout_rules.h"
#include "plan.h"

#define PLAN_MAX_VIRTUAL 8

void plan_layout_apply(config *cfg, const plan_layout *l) {
  cfg->tp = l->tp, cfg->pp = l->pp, cfg->sp = l->sp;
  cfg->zero = l->zero_stage;
  cfg->micro_batch_size = l->micro_batch;
  cfg->batch_size = l->dp * l->micro_batch * l->n_micro;
  cfg->pp_virtual = l->virtual_stages;
  cfg->pp_schedule = l->schedule;
  cfg->recompute = l->recompute;
  cfg->sp_kind = l->sp_kind;
  cfg->tp_seq_shard = l->tp_seq_shard;
}

int plan_layout_check(const config *cfg_in, const plan_layout *l, char *err, size_t err_bytes) {
  config cfg = *cfg_in;
  plan_layout_apply(&cfg, l);
  int status = config_validate(&cfg, err, err_bytes);
  if (status) return status;
  const model_shape shape = config_model_shape(&cfg);
  grid_shape grid;
  status = layout_rules_grid(&cfg, &shape, l->world, &grid, err, err_bytes);
  if (!status && grid.dp != l->dp) {
    snprintf(err, err_bytes, "dp %d x tp %d x pp %d x sp %d is not %d ranks", l->dp, l->tp, l->pp, l->sp, l->world);
    status = EXIT_USER_ERROR;
  }
  if (!status) status = layout_rules_batch(&cfg, grid.dp, err, err_bytes);
  if (!status) status = layout_rules_pipeline(&cfg, &shape, grid.dp, err, err_bytes);
  return status;
}

/* A growing list of layouts. */
typedef struct layout_list {
  plan_layout *items;
  int n, capacity;
} layout_list;

static void keep_if_valid(const config *cfg, layout_list *list, const plan_layout *l) {
  char err[MESSAGE_BYTES];
  if (plan_layout_check(cfg, l, err, sizeof err)) return;
  if (list->n == list->capacity) {
    list->capacity = list->capacity ? 2 * list->capacity : 256;
    plan_layout *grown = realloc(list->items, (size_t)list->capacity * sizeof *list->items);
    if (!grown) fail_local(EXIT_USER_ERROR, "out of memory listing %d layouts", list->n);
    list->items = grown;
  }
  list->items[list->n++] = *l;
}

/* The choices that only matter with a pipeline (schedule, virtual stages),
 * with sequence parallelism (its kind) or with tp (sequence sharding). */
static void enumerate_options(const config *cfg, layout_list *list, plan_layout l) {
  const int n_schedules = l.pp > 1 ? 3 : 1, n_kinds = l.sp > 1 ? 4 : 1, n_shard = l.tp > 1 ? 2 : 1;
  /* up to PLAN_MAX_VIRTUAL chunks per stage: more only adds pipeline traffic */
  int max_virtual = l.pp > 1 ? cfg->n_layer / l.pp : 1;
  if (max_virtual > PLAN_MAX_VIRTUAL) max_virtual = PLAN_MAX_VIRTUAL;
  for (int schedule = 0; schedule < n_schedules; schedule++)
    for (int v = 1; v <= max_virtual; v++) {
      /* only the interleaved schedule runs more than one chunk per stage */
      if ((v > 1) != (schedule == PP_SCHEDULE_INTERLEAVED) && l.pp > 1) continue;
      for (int kind = 0; kind < n_kinds; kind++)
        for (int shard = 0; shard < n_shard; shard++)
          for (int recompute = 0; recompute < 3; recompute++)
            for (int zero = 0; zero <= 3; zero++) {
              l.schedule = l.pp > 1 ? schedule : cfg->pp_schedule;
              l.virtual_stages = v;
              l.sp_kind = l.sp > 1 ? kind : cfg->sp_kind;
              l.tp_seq_shard = shard;
              l.recompute = recompute;
              l.zero_stage = zero;
              keep_if_valid(cfg, list, &l);
            }
    }
}

int plan_enumerate(const config *cfg, int world, int gpus_per_node, int global_batch, plan_layout **out) {
  layout_list list = {0};
  if (global_batch <= 0) global_batch = cfg->batch_size;
  for (int tp = 1; tp <= world; tp++)
    for (int pp = 1; tp * pp <= world; pp++)
      for (int sp = 1; tp * pp * sp <= world; sp++) {
        if (world % (tp * pp * sp)) continue;
        const int dp = world / (tp * pp * sp);
        if (global_batch % dp) continue;
        const int per_replica = global_batch / dp;
        for (int mb = 1; mb <= per_replica; mb++) {
          if (per_replica % mb) continue;
          const plan_layout l = {.world = world, .dp = dp, .tp = tp, .pp = pp, .sp = sp, .micro_batch = mb,
                                 .n_micro = per_replica / mb, .virtual_stages = 1,
                                 .gpus_per_node = gpus_per_node > 0 ? gpus_per_node : world};
          enumerate_options(cfg, &list, l);
        }
      }
  *out = list.items;
  return list.n;
}

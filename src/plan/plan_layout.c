/* plan_layout — a layout as config keys, its validity by train's own rules
 * (layout_rules.h, config_validate), and every valid layout of N ranks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "layout_rules.h"
#include "optimizer_offload.h"
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
  const char *dir;
  const offload_kind had = offload_kind_parse(cfg->offload_optimizer, &dir);
  if (l->offload != (int)had)
    snprintf(cfg->offload_optimizer, sizeof cfg->offload_optimizer, "%s",
             l->offload == OFFLOAD_HOST ? "host" : l->offload == OFFLOAD_NVME ? "nvme:DIR" : "none");
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

/* The values knob `fixed` may take: cfg's when fixed, else first..last. */
static void knob_range(bool fixed, int cfg_value, int first, int last, int *lo, int *hi) {
  *lo = fixed ? cfg_value : first;
  *hi = fixed ? cfg_value : last;
}

/* The choices that only matter with a pipeline (schedule, virtual stages),
 * with sequence parallelism (its kind) or with tp (sequence sharding). */
static void enumerate_options(const config *cfg, const plan_fixed *f, layout_list *list, plan_layout l) {
  /* up to PLAN_MAX_VIRTUAL chunks per stage: more only adds pipeline traffic */
  int max_virtual = l.pp > 1 ? cfg->n_layer / l.pp : 1;
  if (max_virtual > PLAN_MAX_VIRTUAL) max_virtual = PLAN_MAX_VIRTUAL;
  int s0, s1, v0, v1, k0, k1, h0, h1, r0, r1, z0, z1, o0, o1;
  const char *dir;
  knob_range(!f->enumerate_offload, (int)offload_kind_parse(cfg->offload_optimizer, &dir), OFFLOAD_NONE, OFFLOAD_NVME, &o0, &o1);
  knob_range(f->schedule || l.pp == 1, cfg->pp_schedule, 0, 2, &s0, &s1);
  knob_range(f->virtual_stages || l.pp == 1, cfg->pp_virtual, 1, max_virtual, &v0, &v1);
  knob_range(f->sp_kind || l.sp == 1, cfg->sp_kind, 0, 3, &k0, &k1);
  knob_range(f->tp_seq_shard || l.tp == 1, cfg->tp_seq_shard, 0, 1, &h0, &h1);
  knob_range(f->recompute, cfg->recompute, 0, 2, &r0, &r1);
  knob_range(f->zero, cfg->zero, 0, 3, &z0, &z1);
  for (int schedule = s0; schedule <= s1; schedule++)
    for (int v = v0; v <= v1; v++) {
      /* only the interleaved schedule runs more than one chunk per stage */
      if (l.pp > 1 && !f->virtual_stages && (v > 1) != (schedule == PP_SCHEDULE_INTERLEAVED)) continue;
      for (int kind = k0; kind <= k1; kind++)
        for (int shard = h0; shard <= h1; shard++)
          for (int recompute = r0; recompute <= r1; recompute++)
            for (int zero = z0; zero <= z1; zero++)
              for (int offload = o0; offload <= o1; offload++) {
                l.schedule = schedule, l.virtual_stages = v, l.sp_kind = kind, l.tp_seq_shard = shard;
                l.recompute = recompute, l.zero_stage = zero, l.offload = offload;
                keep_if_valid(cfg, list, &l);
              }
    }
}

int plan_enumerate_fixed(const config *cfg, int world, int gpus_per_node, int global_batch, const plan_fixed *f,
                         plan_layout **out) {
  layout_list list = {0};
  if (global_batch <= 0) global_batch = cfg->batch_size;
  for (int tp = 1; tp <= world; tp++)
    for (int pp = 1; tp * pp <= world; pp++)
      for (int sp = 1; tp * pp * sp <= world; sp++) {
        if (world % (tp * pp * sp) || (f->tp && tp != cfg->tp) || (f->pp && pp != cfg->pp) || (f->sp && sp != cfg->sp))
          continue;
        const int dp = world / (tp * pp * sp);
        if (global_batch % dp) continue;
        const int per_replica = global_batch / dp;
        for (int mb = 1; mb <= per_replica; mb++) {
          if (per_replica % mb || (f->micro_batch && mb != cfg->micro_batch_size)) continue;
          const plan_layout l = {.world = world, .dp = dp, .tp = tp, .pp = pp, .sp = sp, .micro_batch = mb,
                                 .n_micro = per_replica / mb, .virtual_stages = 1,
                                 .gpus_per_node = gpus_per_node};
          enumerate_options(cfg, f, &list, l);
        }
      }
  *out = list.items;
  return list.n;
}

int plan_enumerate(const config *cfg, int world, int gpus_per_node, int global_batch, plan_layout **out) {
  const plan_fixed none = {0};
  return plan_enumerate_fixed(cfg, world, gpus_per_node, global_batch, &none, out);
}

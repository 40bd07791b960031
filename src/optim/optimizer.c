/* optimizer — see optimizer.h. */
#include "optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "device_comm.h"
#include "fail.h"

/* The last pipeline stage's copy of the tied embedding has the first
 * stage's gradient (model_sum_tied_grads): it counts there, once. */
static bool counted_elsewhere(const model *mdl, const param_spec *p) {
  return mdl->tied_copy && mdl->pp && strcmp(p->name, "wte") == 0;
}

/* The segment tables of a step (optimizer.h), in registry order, as the
 * per-tensor loops they replace visited the tensors: the norm's groups are
 * then summed in the same order. Empty parts are left out (they added 0). */
static void build_segments(optimizer *opt, const model *mdl) {
  const int n_params = mdl->reg.n_params;
  tensor_segment *update = xmalloc((size_t)(n_params ? n_params : 1) * sizeof *update, "segment list");
  tensor_segment *norm = xmalloc((size_t)(n_params ? n_params : 1) * sizeof *norm, "segment list");
  int n_update = 0, n_norm = 0;
  const size_t lo_shard = opt->shard_start, hi_shard = opt->shard_start + opt->shard_elems;
  for (int k = 0; k < n_params; k++) {
    const param_spec *p = &mdl->reg.params[k];
    const int group = p->tp_split_dim >= 0; /* 0: replicated over tp, 1: split over tp */
    const size_t lo = p->offset > lo_shard ? p->offset : lo_shard;
    const size_t hi = p->offset + p->n_local < hi_shard ? p->offset + p->n_local : hi_shard;
    if (lo < hi) {
      const tensor_segment part = {.offset = lo - lo_shard,
                                   .n_elems = hi - lo,
                                   .weight_decay = p->weight_decay ? (float)opt->settings.weight_decay : 0.0f,
                                   .group = group};
      update[n_update++] = part;
      /* stage 2, 3: each rank sums the gradient of its range (shard_grads) */
      if (opt->shard_grads && !counted_elsewhere(mdl, p)) norm[n_norm++] = part;
    }
    /* stage 0, 1: each rank holds the whole reduced gradient and sums it all */
    if (!opt->shard_grads && !counted_elsewhere(mdl, p) && p->n_local)
      norm[n_norm++] = (tensor_segment){.offset = p->offset, .n_elems = p->n_local, .group = group};
  }
  opt->update_segments = opt->be->segments_create(update, n_update);
  opt->norm_segments = opt->be->segments_create(norm, n_norm);
  free(update);
  free(norm);
}

void optimizer_create(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                      adamw_settings settings, comm *shard_group, int zero_stage) {
  memset(opt, 0, sizeof *opt);
  opt->be = be;
  opt->settings = settings;
  opt->n_elems = mdl->reg.n_local_total;
  opt->shard_group = shard_group && shard_group->size > 1 ? shard_group : NULL;
  const int D = opt->shard_group ? shard_group->size : 1, rank = opt->shard_group ? shard_group->rank : 0;
  ENSURE(opt->n_elems / (size_t)D < (size_t)1 << 31, "a ZeRO shard of %zu elements is too large",
         opt->n_elems / (size_t)D);
  opt->shard_counts = xmalloc((size_t)D * sizeof(int), "ZeRO shards");
  opt->shard_displs = xmalloc((size_t)D * sizeof(int), "ZeRO shards");
  for (int r = 0, displ = 0; r < D; r++) { /* the first n mod D ranges are one longer */
    opt->shard_counts[r] = (int)(opt->n_elems / (size_t)D + ((size_t)r < opt->n_elems % (size_t)D));
    opt->shard_displs[r] = displ;
    displ += opt->shard_counts[r];
  }
  opt->shard_start = (size_t)opt->shard_displs[rank];
  opt->shard_elems = (size_t)opt->shard_counts[rank];
  opt->master = be->alloc_f32(opt->shard_elems, "master weights");
  opt->m = be->alloc_f32(opt->shard_elems, "Adam first moment");
  opt->v = be->alloc_f32(opt->shard_elems, "Adam second moment");
  be->f32_from_host(opt->master, host_init + opt->shard_start, opt->shard_elems);
  be->zero_f32(opt->m, opt->shard_elems);
  be->zero_f32(opt->v, opt->shard_elems);
  if (zero_stage >= 2) {
    opt->shard_grads = be->alloc_act(opt->shard_elems, "gradient shard");
    be->zero_act(opt->shard_grads, opt->shard_elems);
  }
  if (zero_stage >= 3) {
    opt->compute_shard = be->alloc_act(opt->shard_elems, "weight shard");
    be->act_from_host(opt->compute_shard, host_init + opt->shard_start, opt->shard_elems);
  }
  build_segments(opt, mdl);
}

void optimizer_free(optimizer *opt) {
  opt->be->free_buffer(opt->master);
  opt->be->free_buffer(opt->m);
  opt->be->free_buffer(opt->v);
  if (opt->shard_grads) opt->be->free_buffer(opt->shard_grads);
  if (opt->compute_shard) opt->be->free_buffer(opt->compute_shard);
  opt->be->segments_free(opt->update_segments);
  opt->be->segments_free(opt->norm_segments);
  free(opt->shard_counts);
  free(opt->shard_displs);
  memset(opt, 0, sizeof *opt);
}

void optimizer_gather_master(const optimizer *opt, float *host) {
  opt->be->f32_to_host(host + opt->shard_start, opt->master, opt->shard_elems);
  if (opt->shard_group)
    comm_allgatherv_inplace_f32(opt->shard_group, host, opt->shard_counts, opt->shard_displs);
}

static void gather_range(const optimizer *opt, const f32_t *range, float *host) {
  opt->be->f32_to_host(host + opt->shard_start, range, opt->shard_elems);
  if (opt->shard_group)
    comm_allgatherv_inplace_f32(opt->shard_group, host, opt->shard_counts, opt->shard_displs);
}

void optimizer_gather_moments(const optimizer *opt, float *host_m, float *host_v) {
  gather_range(opt, opt->m, host_m);
  gather_range(opt, opt->v, host_v);
}

void optimizer_load(optimizer *opt, const float *host_master, const float *host_m,
                    const float *host_v, int64_t step) {
  optimizer_load_range(opt, host_master + opt->shard_start, host_m + opt->shard_start,
                       host_v + opt->shard_start, step);
}

/* from host unless src already is dst's host view */
static void f32_load(const backend *be, f32_t *dst, const float *src, size_t n_elems) {
  if (be->host_pointer(dst) != src) be->f32_from_host(dst, src, n_elems);
}

void optimizer_load_range(optimizer *opt, const float *master_range, const float *m_range,
                          const float *v_range, int64_t step) {
  const backend *be = opt->be;
  f32_load(be, opt->master, master_range, opt->shard_elems);
  f32_load(be, opt->m, m_range, opt->shard_elems);
  f32_load(be, opt->v, v_range, opt->shard_elems);
  if (opt->compute_shard) be->act_from_host(opt->compute_shard, master_range, opt->shard_elems);
  opt->step = step;
}

double optimizer_grad_norm(const optimizer *opt, const model *mdl) {
  double sums[2]; /* replicated over tp, split over tp */
  const act_t *grads = opt->shard_grads ? opt->shard_grads : mdl->grads;
  opt->be->sum_squares_multi(grads, opt->norm_segments, sums, 2);
  /* stage 2, 3: each rank summed its range: sum the ranges over the shard group */
  if (opt->shard_grads && opt->shard_group) comm_allreduce_sum_f64(opt->shard_group, sums, 2);
  if (mdl->tp) comm_allreduce_sum_f64(mdl->tp, &sums[1], 1);
  if (mdl->pp) comm_allreduce_sum_f64(mdl->pp, sums, 2); /* the stages hold different layers */
  return sqrt(sums[0] + sums[1]);
}

double optimizer_step(optimizer *opt, model *mdl, double lr, double grad_norm) {
  const backend *be = opt->be;
  const adamw_settings *s = &opt->settings;
  double clip = 1.0;
  if (s->grad_clip > 0 && grad_norm > s->grad_clip) clip = s->grad_clip / (grad_norm + 1e-6);
  opt->step++;
  /* AdamW on the part of each tensor that lies in this rank's range, one pass */
  const act_t *grad = opt->shard_grads ? opt->shard_grads : act_at(be, mdl->grads, opt->shard_start);
  be->adamw_multi(opt->master, grad, opt->m, opt->v, opt->update_segments, (float)lr, (float)s->beta1,
                  (float)s->beta2, (float)s->eps, (float)clip, opt->step);
  if (opt->compute_shard) { /* stage 3: weights stay sharded; blocks are fetched on demand */
    be->cast_f32_to_act(opt->compute_shard, opt->master, opt->shard_elems);
    return clip;
  }
  be->cast_f32_to_act(act_at(be, mdl->params, opt->shard_start), opt->master, opt->shard_elems);
  if (opt->shard_group) dcomm_allgatherv_inplace_act(opt->shard_group, be, mdl->params, opt->shard_counts, opt->shard_displs);
  return clip;
}

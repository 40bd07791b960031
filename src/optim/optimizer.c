/* optimizer — see optimizer.h. */
#include "optimizer.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "memory_tally.h"

/* The last pipeline stage's copy of the tied embedding has the first
 * stage's gradient (zero_finish_gradients sums them): it counts there, once. */
static bool counted_elsewhere(const model *mdl, const param_spec *p) {
  return mdl->par.tied_copy && mdl->par.pp && strcmp(p->name, "wte") == 0;
}

static bool sharded_grads(const optimizer *opt) { return opt->zero && zero_sharded_grads(opt->zero); }

/* The segment tables of a step (optimizer.h), in registry order, as the
 * per-tensor loops they replace visited the tensors: the norm's groups are
 * then summed in the same order. Empty parts are left out (they added 0). */
static void build_segments(optimizer *opt, const model *mdl, const float *master_init,
                           const offload_request *offload) {
  const registry *reg = &mdl->layout.reg;
  const int n_params = reg->n_params;
  tensor_segment *update = xmalloc((size_t)(n_params ? n_params : 1) * sizeof *update, "segment list");
  tensor_segment *norm = xmalloc((size_t)(n_params ? n_params : 1) * sizeof *norm, "segment list");
  int n_update = 0, n_norm = 0;
  const size_t lo_range = opt->part->start, hi_range = opt->part->start + opt->part->n_own;
  for (int k = 0; k < n_params; k++) {
    const param_spec *p = &reg->params[k];
    const int group = p->tp_split_dim >= 0; /* 0: replicated over tp, 1: split over tp */
    const size_t lo = p->offset > lo_range ? p->offset : lo_range;
    const size_t hi = p->offset + p->n_local < hi_range ? p->offset + p->n_local : hi_range;
    if (lo < hi) {
      const tensor_segment part = {.offset = lo - lo_range,
                                   .n_elems = hi - lo,
                                   .weight_decay = p->weight_decay ? (float)opt->settings.weight_decay : 0.0f,
                                   .group = group};
      update[n_update++] = part;
      /* stage 2, 3: each rank sums the gradient of its range */
      if (sharded_grads(opt) && !counted_elsewhere(mdl, p)) norm[n_norm++] = part;
    }
    /* stage 0, 1: each rank holds the whole reduced gradient and sums it all */
    if (!sharded_grads(opt) && !counted_elsewhere(mdl, p) && p->n_local)
      norm[n_norm++] = (tensor_segment){.offset = p->offset, .n_elems = p->n_local, .group = group};
  }
  opt->update_segments = opt->be->segments_create(update, n_update);
  if (offload && offload->kind != OFFLOAD_NONE)
    opt->offload = offload_state_create(offload, opt->be, opt->part->n_own, update, n_update, master_init);
  opt->norm_segments = opt->be->segments_create(norm, n_norm);
  free(update);
  free(norm);
}

void optimizer_buffers(buffer_sizer *sizer, size_t n_own, f32_t **master, f32_t **m, f32_t **v) {
  *master = sizer_f32(sizer, n_own, MEMORY_WEIGHTS, "master weights"); /* the fp32 master copy is weights */
  *m = sizer_f32(sizer, n_own, MEMORY_OPTIMIZER, "Adam first moment");
  *v = sizer_f32(sizer, n_own, MEMORY_OPTIMIZER, "Adam second moment");
}

void optimizer_create(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                      adamw_settings settings, zero *z) {
  optimizer_create_offloaded(opt, be, mdl, host_init, settings, z, NULL);
}

void optimizer_create_offloaded(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                                adamw_settings settings, zero *z, const offload_request *offload) {
  memset(opt, 0, sizeof *opt);
  opt->be = be;
  opt->settings = settings;
  opt->n_elems = mdl->layout.reg.n_local_total;
  opt->zero = z;
  if (z) {
    ENSURE(z->part.n_elems == opt->n_elems, "ZeRO ranges of %zu elements for a model of %zu", z->part.n_elems,
           opt->n_elems);
    opt->shard_group = z->shard_group;
    opt->part = &z->part;
  } else {
    zero_partition_make(&opt->whole, opt->n_elems, 1, 0);
    opt->part = &opt->whole;
  }
  const size_t start = opt->part->start, n_own = opt->part->n_own;
  if (offload && offload->kind != OFFLOAD_NONE) { /* the state lives in host memory or a file */
    build_segments(opt, mdl, host_init + start, offload);
    return;
  }
  buffer_sizer allocating = buffer_sizer_allocating(be);
  optimizer_buffers(&allocating, n_own, &opt->master, &opt->m, &opt->v);
  be->f32_from_host(opt->master, host_init + start, n_own);
  be->zero_f32(opt->m, n_own);
  be->zero_f32(opt->v, n_own);
  build_segments(opt, mdl, NULL, NULL);
}

void optimizer_free(optimizer *opt) {
  if (opt->offload) {
    offload_state_free(opt->offload);
  } else {
    opt->be->free_buffer(opt->master);
    opt->be->free_buffer(opt->m);
    opt->be->free_buffer(opt->v);
  }
  opt->be->segments_free(opt->update_segments);
  opt->be->segments_free(opt->norm_segments);
  if (!opt->zero) zero_partition_free(&opt->whole);
  memset(opt, 0, sizeof *opt);
}

void optimizer_gather(const optimizer *opt, optimizer_state which, float *host) {
  float *all[OPT_N_STATES] = {NULL};
  all[which] = host;
  optimizer_gather_all(opt, all);
}

void optimizer_gather_all(const optimizer *opt, float *const host[OPT_N_STATES]) {
  const size_t start = opt->part->start;
  if (opt->offload) { /* one pass over the file for all three */
    float *range[OPT_N_STATES];
    for (int i = 0; i < OPT_N_STATES; i++) range[i] = host[i] ? host[i] + start : NULL;
    offload_state_read(opt->offload, range);
  } else {
    const f32_t *state[OPT_N_STATES] = {opt->master, opt->m, opt->v};
    for (int i = 0; i < OPT_N_STATES; i++)
      if (host[i]) opt->be->f32_to_host(host[i] + start, state[i], opt->part->n_own);
  }
  for (int i = 0; i < OPT_N_STATES; i++)
    if (host[i]) zero_partition_allgather_host(opt->part, opt->shard_group, host[i]);
}

/* from host unless src already is dst's host view */
static void f32_load(const backend *be, f32_t *dst, const float *src, size_t n_elems) {
  if (be->host_pointer(dst) != src) be->f32_from_host(dst, src, n_elems);
}

void optimizer_load_range(optimizer *opt, const float *master_range, const float *m_range,
                          const float *v_range, int64_t step) {
  const backend *be = opt->be;
  const size_t n_own = opt->part->n_own;
  if (opt->offload) {
    offload_state_write(opt->offload, master_range, m_range, v_range);
  } else {
    f32_load(be, opt->master, master_range, n_own);
    f32_load(be, opt->m, m_range, n_own);
    f32_load(be, opt->v, v_range, n_own);
  }
  /* ZeRO 3: the range's compute weights live only there */
  if (opt->zero && opt->zero->compute_shard) be->act_from_host(opt->zero->compute_shard, master_range, n_own);
  opt->step = step;
}

double optimizer_grad_norm(const optimizer *opt, const model *mdl) {
  double sums[2]; /* replicated over tp, split over tp */
  const act_t *grads = sharded_grads(opt) ? zero_range_grads(opt->zero) : mdl->w.grads;
  opt->be->sum_squares_multi(grads, opt->norm_segments, sums, 2);
  /* stage 2, 3: each rank summed its range: sum the ranges over the shard group */
  if (sharded_grads(opt) && opt->shard_group) comm_allreduce_sum_f64(opt->shard_group, sums, 2);
  if (mdl->par.tp) comm_allreduce_sum_f64(mdl->par.tp, &sums[1], 1);
  if (mdl->par.pp) comm_allreduce_sum_f64(mdl->par.pp, sums, 2); /* the stages hold different layers */
  return sqrt(sums[0] + sums[1]);
}

double optimizer_step(optimizer *opt, model *mdl, double lr, double grad_norm) {
  const backend *be = opt->be;
  const adamw_settings *s = &opt->settings;
  double clip = 1.0;
  if (s->grad_clip > 0 && grad_norm > s->grad_clip) clip = s->grad_clip / (grad_norm + 1e-6);
  opt->step++;
  /* AdamW on the part of each tensor that lies in this rank's range, one pass */
  const act_t *grad = opt->zero ? zero_range_grads(opt->zero) : mdl->w.grads;
  act_t *weights = opt->zero ? zero_range_params(opt->zero) : mdl->w.params;
  if (opt->offload) { /* on the host, chunk by chunk, the weights written as each chunk is done */
    offload_state_step(opt->offload, grad, weights, (float)lr, (float)s->beta1, (float)s->beta2, (float)s->eps,
                       (float)clip, opt->step);
  } else {
    be->adamw_multi(opt->master, grad, opt->m, opt->v, opt->update_segments, (float)lr, (float)s->beta1,
                    (float)s->beta2, (float)s->eps, (float)clip, opt->step);
    be->cast_f32_to_act(weights, opt->master, opt->part->n_own);
  }
  if (opt->zero) zero_share_params(opt->zero);
  return clip;
}

float *optimizer_moment_host(const optimizer *opt, int which) {
  if (opt->offload) return offload_state_host_array(opt->offload, which);
  return opt->be->host_pointer(which == OPT_ADAM_M ? opt->m : opt->v);
}

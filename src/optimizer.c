/* optimizer — see optimizer.h. */
#include "optimizer.h"

#include <math.h>
#include <string.h>

void optimizer_create(optimizer *opt, const backend *be, const model *mdl, const float *host_init,
                      adamw_settings settings) {
  memset(opt, 0, sizeof *opt);
  opt->be = be;
  opt->settings = settings;
  opt->n_elems = mdl->reg.n_local_total;
  opt->master = be->alloc_f32(opt->n_elems, "master weights");
  opt->m = be->alloc_f32(opt->n_elems, "Adam first moment");
  opt->v = be->alloc_f32(opt->n_elems, "Adam second moment");
  be->f32_from_host(opt->master, host_init, opt->n_elems);
  be->zero_f32(opt->m, opt->n_elems);
  be->zero_f32(opt->v, opt->n_elems);
}

void optimizer_free(optimizer *opt) {
  opt->be->free_buffer(opt->master);
  opt->be->free_buffer(opt->m);
  opt->be->free_buffer(opt->v);
  memset(opt, 0, sizeof *opt);
}

double optimizer_grad_norm(const optimizer *opt, const model *mdl) {
  double sums[2] = {0, 0}; /* split over tp, replicated */
  for (int k = 0; k < mdl->reg.n_params; k++) {
    const param_spec *p = &mdl->reg.params[k];
    sums[p->tp_split_dim >= 0] += opt->be->sum_squares(act_at(opt->be, mdl->grads, p->offset), p->n_local);
  }
  if (mdl->tp) comm_allreduce_sum_f64(mdl->tp, &sums[1], 1);
  return sqrt(sums[0] + sums[1]);
}

double optimizer_step(optimizer *opt, model *mdl, double lr, double grad_norm) {
  const backend *be = opt->be;
  const adamw_settings *s = &opt->settings;
  double clip = 1.0;
  if (s->grad_clip > 0 && grad_norm > s->grad_clip) clip = s->grad_clip / (grad_norm + 1e-6);
  opt->step++;
  for (int k = 0; k < mdl->reg.n_params; k++) {
    const param_spec *p = &mdl->reg.params[k];
    be->adamw(f32_at(opt->master, p->offset), act_at(be, mdl->grads, p->offset),
              f32_at(opt->m, p->offset), f32_at(opt->v, p->offset), p->n_local, (float)lr,
              (float)s->beta1, (float)s->beta2, (float)s->eps,
              p->weight_decay ? (float)s->weight_decay : 0.0f, (float)clip, opt->step);
  }
  be->cast_f32_to_act(mdl->params, opt->master, opt->n_elems);
  return clip;
}

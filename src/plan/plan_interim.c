/* plan_interim — TEMPORARY stand-ins for plancore's plan_predict_compute and
 * plan_predict_comm (plan.h), so that the time model can be built and
 * checked before plancore's implementation lands. Deleted at the merge. */
#include <string.h>

#include "model_shape.h"
#include "plan.h"

static double act_bytes(const config *cfg) { return cfg->backend == BACKEND_CHOICE_CPU ? 4.0 : 2.0; }

plan_compute plan_predict_compute(const config *cfg, const plan_layout *l) {
  const model_shape s = config_model_shape(cfg);
  const double C = s.d_model, F = model_ffn_hidden(&s), F_in = s.mlp == MLP_SWIGLU ? 2 * F : F;
  const double V = s.vocab_size, T = s.seq_len, layers = (double)s.n_layer / l->pp;
  const double tokens = (double)l->micro_batch * l->n_micro * T / l->sp;
  const double passes = l->recompute == RECOMPUTE_CHOICE_FULL ? 4.0 : 3.0;
  plan_compute c = {0};
  c.gemm_flops = tokens * passes * 2.0 * layers * (4 * C * C + F_in * C + F * C) / l->tp + tokens * 3.0 * 2.0 * V * C / l->tp;
  c.attention_flops = tokens * (passes + (l->recompute == RECOMPUTE_CHOICE_SELECTIVE)) * 2.0 * T * C / l->tp * layers;
  c.other_bytes = tokens * passes * layers * (14 * C + 3 * F_in / l->tp) * act_bytes(cfg);
  c.pipeline_stages = l->pp;
  c.micro_batches = l->n_micro;
  c.virtual_stages = l->virtual_stages;
  c.schedule = l->schedule;
  return c;
}

int plan_predict_comm(const config *cfg, const plan_layout *l, plan_comm_op *ops, int max_ops) {
  const model_shape s = config_model_shape(cfg);
  const double C = s.d_model, F = model_ffn_hidden(&s), V = s.vocab_size, T = s.seq_len;
  const double layers = (double)s.n_layer / l->pp, b = act_bytes(cfg);
  const double act = l->micro_batch * T / l->sp * C * b;
  const double psi = (layers * (4 * C * C + 2 * F * C) + V * C) / l->tp;
  const int D = l->dp * l->sp;
  int n = 0;
  plan_comm_op all[8];
  memset(all, 0, sizeof all);
  const double recompute = l->recompute == RECOMPUTE_CHOICE_FULL ? 2 : 0;
  all[n++] = (plan_comm_op){PLAN_TP, l->tp, PLAN_ALLREDUCE, (uint64_t)act,
                            (uint64_t)((4 + recompute) * layers * l->n_micro), PLAN_EXPOSED, "tp all-reduce"};
  all[n++] = (plan_comm_op){PLAN_PP, l->pp, PLAN_SENDRECV, (uint64_t)act,
                            (uint64_t)(l->pp > 1 ? 2 * l->n_micro * l->virtual_stages : 0), PLAN_EXPOSED, "pp"};
  all[n++] = (plan_comm_op){PLAN_DP_SP, D, l->zero_stage >= 2 ? PLAN_REDUCE_SCATTER : PLAN_ALLREDUCE,
                            (uint64_t)(psi * b), (uint64_t)(l->zero_stage >= 2 ? l->n_micro : 1),
                            PLAN_BEHIND_BACKWARD, "gradients"};
  if (l->zero_stage == 1 || l->zero_stage == 2)
    all[n++] = (plan_comm_op){PLAN_DP_SP, D, PLAN_ALLGATHER, (uint64_t)(psi * b), 1, PLAN_EXPOSED, "weights"};
  if (l->zero_stage == 3)
    all[n++] = (plan_comm_op){PLAN_DP_SP, D, PLAN_ALLGATHER, (uint64_t)(psi * b / layers),
                              (uint64_t)(2 * layers * l->n_micro), PLAN_BEHIND_FORWARD, "zero-3 gathers"};
  if (l->sp > 1)
    all[n++] = (plan_comm_op){PLAN_SP, l->sp, PLAN_SENDRECV, (uint64_t)(2 * act / l->tp),
                              (uint64_t)(3 * (l->sp - 1) * layers * l->n_micro), PLAN_BEHIND_ATTENTION, "sp ring"};
  for (int i = 0; i < n && i < max_ops; i++) ops[i] = all[i];
  return n;
}

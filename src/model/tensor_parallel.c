/* tensor_parallel — the model's tensor-parallel reductions (Megatron's f
 * and g operators) and the norm, whose parameter gradients need a sum over
 * tp when the rows are sharded along the tokens (--tp-seq-shard). Without
 * tp every call here is a no-op around the backend's op. The reductions
 * take the backend's buffers (parallel/comm/device_comm), so they run on
 * host and device memory alike.
 */
#include "model_internal.h"

#include "device_comm.h"

int model_local_rows(const model *m, int N) { return m->par.seq_shard ? N / m->par.tp_size : N; }

/* Leaving a row-parallel product: the partial sums over tp of all N rows
 * become this rank's rows — an all-reduce in place (local == partial), or a
 * reduce-scatter into the local rows with sequence sharding. */
void model_sum_rows(model *m, act_t *local, act_t *partial, int N_local, int C) {
  if (!m->par.tp) return;
  if (m->par.seq_shard)
    dcomm_reduce_scatter_sum_act(m->par.tp, m->be, partial, local, (size_t)N_local * C);
  else
    dcomm_allreduce_sum_act(m->par.tp, m->be, partial, (size_t)N_local * C);
}

/* Entering a column-parallel product: every rank needs all N rows — an
 * all-gather of the local rows with sequence sharding, nothing otherwise
 * (full == local). */
void model_gather_rows(model *m, act_t *full, const act_t *local, int N_local, int C) {
  if (m->par.seq_shard) dcomm_allgather_act(m->par.tp, m->be, local, full, (size_t)N_local * C);
}

void model_norm_forward(const model *m, act_t *out, f32_t *mean, f32_t *rstd, const act_t *inp, const act_t *weight,
                        const act_t *bias, int N_local) {
  const int C = m->shape.d_model;
  const double eps = model_norm_eps(&m->shape);
  if (m->shape.norm == NORM_RMSNORM) m->be->rmsnorm_forward(out, rstd, inp, weight, N_local, C, eps);
  else m->be->layernorm_forward(out, mean, rstd, inp, weight, bias, N_local, C, eps);
}

static void norm_backward_local(const model *m, act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                                const act_t *inp, const act_t *weight, const f32_t *mean, const f32_t *rstd,
                                int N_local) {
  const int C = m->shape.d_model;
  if (m->shape.norm == NORM_RMSNORM) m->be->rmsnorm_backward(dinp, dweight, dout, inp, weight, rstd, N_local, C);
  else m->be->layernorm_backward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, N_local, C);
}

/* The norm's backward on this rank's rows. With sequence sharding the weight
 * and bias gradients cover only those rows: they are computed apart, summed
 * over tp, then accumulated, so every tp rank holds the same gradient. */
void model_norm_backward(model *m, act_t *dinp, act_t *dweight, act_t *dbias, const act_t *dout,
                         const act_t *inp, const act_t *weight, const f32_t *mean, const f32_t *rstd,
                         int N_local) {
  const backend *be = m->be;
  const int C = m->shape.d_model;
  if (!m->par.seq_shard) {
    norm_backward_local(m, dinp, dweight, dbias, dout, inp, weight, mean, rstd, N_local);
    return;
  }
  act_t *scratch = m->ws.ln_grad_scratch;
  act_t *dw = scratch, *db = dbias ? act_at(be, scratch, (size_t)C) : NULL;
  const size_t n = dbias ? 2 * (size_t)C : (size_t)C;
  be->zero_act(scratch, n);
  norm_backward_local(m, dinp, dw, db, dout, inp, weight, mean, rstd, N_local);
  dcomm_allreduce_sum_act(m->par.tp, be, scratch, n);
  be->accumulate(dweight, dw, (size_t)C);
  if (dbias) be->accumulate(dbias, db, (size_t)C);
}

/* pipeline_plan — see pipeline_plan.h. */
#include "pipeline_plan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "pipeline_partition.h"

int pipeline_plan_make(pipeline_plan *plan, const config *cfg, const model_shape *shape, int dp, char *err,
                       size_t err_bytes) {
  memset(plan, 0, sizeof *plan);
  const int p = cfg->pp, V = cfg->pp_virtual, n_chunks = p * V;
  plan->stages = p;
  plan->chunks_per_stage = V;
  plan->micro_batches = cfg->batch_size / (dp * cfg->micro_batch_size);
  if (V > 1 && p == 1) {
    snprintf(err, err_bytes, "--pp-virtual %d interleaves chunks over pipeline stages: it needs --pp 2 or more", V);
    return EXIT_USER_ERROR;
  }
  if (V > MODEL_MAX_CHUNKS || n_chunks > (int)(sizeof plan->layers_per_chunk / sizeof plan->layers_per_chunk[0])) {
    snprintf(err, err_bytes, "--pp %d x --pp-virtual %d: at most %d chunks per stage", p, V, MODEL_MAX_CHUNKS);
    return EXIT_USER_ERROR;
  }
  if (cfg->pp_layers[0]) {
    if (pipe_partition_parse(cfg->pp_layers, shape->n_layer, n_chunks, plan->layers_per_chunk, err, err_bytes))
      return EXIT_USER_ERROR;
  } else {
    /* the embedding: a lookup and an add per element of the token's row */
    const double embedding = 2.0 * shape->d_model;
    double *costs = xmalloc((size_t)shape->n_layer * sizeof *costs, "layer costs");
    for (int l = 0; l < shape->n_layer; l++) costs[l] = model_block_flops(shape, l, shape->seq_len);
    const int status = pipe_partition_balanced(shape->n_layer, n_chunks, costs, embedding, model_head_flops(shape),
                                               plan->layers_per_chunk, err, err_bytes);
    free(costs);
    if (status) return EXIT_USER_ERROR;
  }
  if (pipe_schedule_build(&plan->schedule, (pipe_schedule_kind)cfg->pp_schedule, p, plan->micro_batches, V, err,
                          err_bytes))
    return EXIT_USER_ERROR;
  pipe_schedule_report report;
  if (pipe_schedule_check(&plan->schedule, &report, err, err_bytes)) return EXIT_INTERNAL_ERROR;
  return 0;
}

void pipeline_plan_free(pipeline_plan *plan) { pipe_schedule_free(&plan->schedule); }

model_stage pipeline_plan_stage(const pipeline_plan *plan, int stage) {
  model_stage st;
  memset(&st, 0, sizeof st);
  const int p = plan->stages;
  st.n_chunks = plan->chunks_per_stage;
  for (int c = 0; c < st.n_chunks; c++) {
    const int g = c * p + stage;
    int first = 0;
    for (int h = 0; h < g; h++) first += plan->layers_per_chunk[h];
    st.chunk_first_layer[c] = first;
    st.chunk_n_layers[c] = plan->layers_per_chunk[g];
  }
  st.has_embedding = stage == 0;
  st.has_head = stage == p - 1;
  return st;
}

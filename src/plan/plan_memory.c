/* plan_memory — the memory of a layout: each stage laid out by the run's
 * own code with a counting sizer (buffer_sizer.h), so the bytes are those
 * the run allocates and reports (doc/design.md, "The planner").
 */
#include <stdio.h>
#include <string.h>

#include "backend_sizing.h"
#include "fail.h"
#include "model.h"
#include "optimizer.h"
#include "pipeline.h"
#include "pipeline_plan.h"
#include "plan_stage.h"
#include "zero.h"

const backend *plan_backend(const config *cfg) {
  if (cfg->backend == BACKEND_CHOICE_CPU) return backend_sizing(BACKEND_CPU);
  if (cfg->backend == BACKEND_CHOICE_CUDA) return backend_sizing(BACKEND_CUDA);
  return backend_sizing(backend_cuda_built() ? BACKEND_CUDA : BACKEND_CPU);
}

/* A group as the layout code sees it: its size and this rank's place; no
 * communicator (nothing is sent while a stage is only counted). */
static comm group_of(int size, int rank, const char *name) {
  comm c;
  memset(&c, 0, sizeof c);
  c.size = size, c.rank = rank;
  snprintf(c.name, sizeof c.name, "%s", name);
  return c;
}

static void count_layers(const model_shape *shape, const model_stage *st, plan_stage *out) {
  for (int c = 0; c < st->n_chunks; c++)
    for (int i = 0; i < st->chunk_n_layers[c]; i++) {
      if (model_layer_is_linear(shape, st->chunk_first_layer[c] + i)) out->linear_layers++;
      else out->softmax_layers++;
    }
}

/* The dp×sp group's ZeRO and the optimizer of this stage, counted as run.c
 * creates them (create_training_state). */
static void count_training_state(const config *cfg, const plan_layout *l, model *m, comm *dp_sp, comm *pp,
                                 plan_stage *out) {
  zero_setup setup = {.stage = cfg->zero,
                      .group = dp_sp,
                      .pp = pp,
                      .be = m->be,
                      .layout = model_flat_layout(m),
                      .bucket_elems = (size_t)(cfg->grad_bucket_mb * (1 << 20) / sizeof(float)),
                      .sizer = &out->sizer};
  zero z;
  zero_create(&z, &setup);
  /* as optimizer_create_offloaded: on the backend, or the offload's host buffers */
  const char *dir;
  const offload_kind offload = offload_kind_parse(cfg->offload_optimizer, &dir);
  if (offload == OFFLOAD_NONE) {
    f32_t *master, *adam_m, *adam_v;
    optimizer_buffers(&out->sizer, z.part.n_own, &master, &adam_m, &adam_v);
  } else {
    offload_count(&out->sizer, offload, z.part.n_own, offload_chunk_elems(cfg->offload_chunk_mb));
  }
  out->n_own = z.part.n_own;
  out->tied_elems = setup.layout.tied_peer >= 0 ? setup.layout.tied_elems : 0;
  zero_free(&z);
  (void)l;
}

void plan_stage_size(const config *cfg_in, const plan_layout *l, int pp_rank, plan_stage *out) {
  config cfg = *cfg_in;
  plan_layout_apply(&cfg, l);
  const model_shape shape = config_model_shape(&cfg);
  memset(out, 0, sizeof *out);
  const backend *be = plan_backend(&cfg);
  out->sizer = buffer_sizer_counting(be);
  out->act_bytes = be->act_elem_bytes;
  char err[MESSAGE_BYTES];
  pipeline_plan plan;
  ENSURE(pipeline_plan_make(&plan, &cfg, &shape, l->dp, err, sizeof err) == 0, "plan: a checked layout: %s", err);
  const model_stage stage = pipeline_plan_stage(&plan, pp_rank);
  comm tp = group_of(l->tp, 0, "tp"), sp = group_of(l->sp, 0, "sp"), pp = group_of(l->pp, pp_rank, "pp"),
       dp_sp = group_of(l->dp * l->sp, 0, "dp_sp");
  /* the options of run.c's create_model */
  const model_options options = {.tp = &tp,
                                 .seq_shard = cfg.tp_seq_shard,
                                 .windowed_grads = cfg.zero >= 2,
                                 .windowed_params = cfg.zero >= 3,
                                 .stage = &stage,
                                 .pp = &pp,
                                 .n_slots = pipeline_slots_needed(&plan.schedule, pp_rank),
                                 .recompute = (recompute_kind)cfg.recompute,
                                 .sp = &sp,
                                 .sp_algorithm = (sp_kind)cfg.sp_kind,
                                 .head_chunk_rows = cfg.head_chunk_rows,
                                 .sizer = &out->sizer};
  model m;
  model_create(&m, be, shape, cfg.micro_batch_size, cfg.seq_len, &options);
  out->n_slots = m.acts.n_slots;
  out->micro_batches = plan.micro_batches;
  out->params_local = m.layout.reg.n_local_total;
  out->block_elems = m.layout.block_elems;
  out->outer_elems = m.layout.outer_elems;
  out->n_layers = m.layout.n_layers;
  out->n_chunks = stage.n_chunks;
  out->n_global_chunks = plan.stages * plan.chunks_per_stage;
  for (int c = 0; c < stage.n_chunks; c++) out->chunk_global[c] = c * plan.stages + pp_rank;
  out->has_embedding = stage.has_embedding, out->has_head = stage.has_head;
  out->norm_bias = shape.norm == NORM_LAYERNORM;
  out->C_local = m.par.C_local, out->NH_local = m.par.NH_local, out->head_size = model_head_size(&shape);
  out->ffn_local = m.par.ffn_local, out->mlp_in_local = m.par.mlp_in_local, out->V_local = m.par.V_local;
  out->T_local = cfg.seq_len / l->sp;
  out->sp_pieces = sp_placement_pieces(m.par.placement);
  count_layers(&shape, &stage, out);
  count_training_state(&cfg, l, &m, &dp_sp, &pp, out);
  model_free(&m);
  pipeline_plan_free(&plan);
}

static plan_memory memory_of(const plan_stage *st) {
  const uint64_t *b = st->sizer.bytes;
  plan_memory mem = {.weights = b[MEMORY_WEIGHTS],
                     .grads = b[MEMORY_GRADS],
                     .optimizer = b[MEMORY_OPTIMIZER],
                     .activations = b[MEMORY_ACTIVATIONS],
                     .other = b[MEMORY_OTHER],
                     .offloaded = b[MEMORY_OFFLOADED]};
  mem.total = mem.weights + mem.grads + mem.optimizer + mem.activations + mem.other;
  return mem;
}

plan_memory plan_predict_memory_of_stage(const config *cfg, const plan_layout *l, int pp_rank) {
  plan_stage st;
  plan_stage_size(cfg, l, pp_rank, &st);
  return memory_of(&st);
}

plan_memory plan_predict_memory(const config *cfg, const plan_layout *l) {
  plan_memory most = {0};
  for (int s = 0; s < l->pp; s++) {
    const plan_memory mem = plan_predict_memory_of_stage(cfg, l, s);
    if (mem.total > most.total) most = mem;
  }
  return most;
}

/* run — see run.h. */
#include "run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "fail.h"
#include "init_from.h"
#include "param_init.h"
#include "weights_load.h"

/* Validation wraps around a held-out split smaller than val_sequences; beyond
 * VAL_REPEAT_LIMIT passes over every window the repeats add no information and
 * only time (val_sequences reaches 2^24: millions of forwards per validation).
 * VAL_ALWAYS_ALLOWED sequences are always fine (the presets use <= 80), so a
 * small split never refuses an ordinary setting. */
#define VAL_REPEAT_LIMIT 16
#define VAL_ALWAYS_ALLOWED 1024

static void check_val_sequences(const config *cfg, const data_split *val) {
  if (val->n_windows == 0) return; /* nothing held out: validation is off */
  uint64_t limit = VAL_REPEAT_LIMIT * val->n_windows;
  if (limit < VAL_ALWAYS_ALLOWED) limit = VAL_ALWAYS_ALLOWED;
  if ((uint64_t)cfg->val_sequences > limit)
    fail_collective(EXIT_USER_ERROR,
                    "val_sequences = %d is beyond the limit of %d x the %llu held-out windows of seq_len %d (%llu; "
                    "at least %d): each would be evaluated more than %d times; lower val_sequences or hold out "
                    "more data (val_fraction, --val-data)",
                    cfg->val_sequences, VAL_REPEAT_LIMIT, (unsigned long long)val->n_windows, cfg->seq_len,
                    (unsigned long long)limit, VAL_ALWAYS_ALLOWED, VAL_REPEAT_LIMIT);
}

static void open_data(run *r) {
  const config *cfg = r->cfg;
  char err[MESSAGE_BYTES];
  int status = dataset_open(&r->train_ds, cfg->data, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  uint64_t n_windows = dataset_n_windows(&r->train_ds, cfg->seq_len);
  data_split train = {&r->train_ds, 0, n_windows}, val = {0};
  if (cfg->val_data[0]) {
    status = dataset_open(&r->val_ds, cfg->val_data, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
    r->separate_val = true;
    val = (data_split){&r->val_ds, 0, dataset_n_windows(&r->val_ds, cfg->seq_len)};
  } else {
    uint64_t n_val = (uint64_t)floor(cfg->val_fraction * (double)n_windows);
    if (cfg->val_fraction > 0 && n_val == 0 && n_windows > 1) n_val = 1;
    train.n_windows = n_windows - n_val;
    val = (data_split){&r->train_ds, train.n_windows, n_val};
  }
  check_val_sequences(cfg, &val);
  if (train.n_windows == 0)
    fail_collective(EXIT_USER_ERROR,
                    "data '%s' holds %llu tokens: too few for one training sequence of seq_len %d "
                    "(+1); use more text or a smaller seq_len",
                    cfg->data, (unsigned long long)r->train_ds.n_tokens, cfg->seq_len);
  /* legal (the data order wraps into the next epoch) but rarely meant: every
   * step would see some windows twice */
  if (r->rt->world_rank == 0 && (uint64_t)cfg->batch_size > train.n_windows)
    fprintf(stderr,
            "tessera: warning: the global batch of %d sequences is more than the %llu training windows of seq_len %d "
            "in '%s': each step repeats windows; use more data or a smaller batch_size\n",
            cfg->batch_size, (unsigned long long)train.n_windows, cfg->seq_len, cfg->data);
  r->loader = (batch_loader){.train = train,
                             .val = val,
                             .seq_len = cfg->seq_len,
                             .global_batch = cfg->batch_size,
                             .micro_batch = cfg->micro_batch_size,
                             .dp_rank = r->grid.dp_rank,
                             .dp_size = r->grid.shape.dp,
                             .seed = (uint64_t)cfg->seed};
}

/* This rank's stage of the model, as the plan and the layout cut it. */
static void create_model(run *r) {
  const config *cfg = r->cfg;
  const model_stage stage = pipeline_plan_stage(&r->plan, r->grid.pp_rank);
  const model_options options = {.tp = &r->grid.tp,
                                 .seq_shard = cfg->tp_seq_shard,
                                 .windowed_grads = cfg->zero >= 2,
                                 .windowed_params = cfg->zero >= 3,
                                 .stage = &stage,
                                 .pp = &r->grid.pp,
                                 .n_slots = pipeline_slots_needed(&r->plan.schedule, r->grid.pp_rank),
                                 .recompute = (recompute_kind)cfg->recompute,
                                 .sp = &r->grid.sp,
                                 .sp_algorithm = (sp_kind)cfg->sp_kind,
                                 .head_chunk_rows = cfg->head_chunk_rows};
  model_create(&r->mdl, r->be, r->shape, cfg->micro_batch_size, cfg->seq_len, &options);
  if (cfg->profile) r->profile = profile_create(r->be);
  r->mdl.profile = r->profile; /* the model, the pipeline and the loop mark regions */
}

/* --offload-optimizer: the request, with nvme's per-rank file created now
 * (every rank's; one message when any cannot: a missing, unwritable or
 * full folder). */
static offload_request offload_of(run *r, size_t n_own) {
  const config *cfg = r->cfg;
  const char *dir = NULL;
  offload_request req = {.kind = offload_kind_parse(cfg->offload_optimizer, &dir),
                         .chunk_elems = offload_chunk_elems(cfg->offload_chunk_mb)};
  if (req.kind != OFFLOAD_NVME) return req;
  char label[256], host[64] = "?", err[MESSAGE_BYTES] = "";
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "?");
  host[sizeof host - 1] = 0;
  const time_t now = time(NULL);
  char when[32] = "?";
  struct tm utc;
  if (gmtime_r(&now, &utc)) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  snprintf(label, sizeof label, "started %s on %s (pid %ld), seed %lld", when, host, (long)getpid(),
           (long long)cfg->seed);
  int status = 0;
  req.file = offload_file_create(dir, r->grid.world_rank, r->rt->world_size, n_own, req.chunk_elems, label, &status,
                                 err, sizeof err);
  const bool created = req.file != NULL;
  int64_t any_failed = !created;
  comm_allreduce_max_i64(&r->grid.world, &any_failed, 1);
  if (any_failed && created) offload_file_remove(req.file); /* no stray files of a refused run */
  weights_fail_if_any_rank_failed(&r->grid, created ? 0 : status, err, sizeof err,
                                  "a rank could not create its offload file");
  return req;
}

/* The initial weights (a pure function of the seed: param_init.h), the
 * data-parallel sync over dp×sp and the optimizer's master copy. */
static void create_training_state(run *r) {
  const config *cfg = r->cfg;
  model *m = &r->mdl;
  /* where the model's whole weights are fp32 host memory (the CPU backend
   * without ZeRO 3) they are made in place: a separate copy would add 4
   * bytes per parameter to the peak resident memory (freed before step 1,
   * but the peak is what limits the model size; doc/design.md) */
  const bool in_place = r->be->kind == BACKEND_CPU && !m->w.windowed_params;
  float *host_params = in_place ? r->be->host_pointer(m->w.params)
                                : xmalloc(m->layout.reg.n_local_total * sizeof *host_params, "initial parameters");
  param_init_all(&m->layout.reg, (uint64_t)cfg->seed, host_params);
  if (!in_place) model_load_params(m, host_params);
  zero_setup setup = {.stage = cfg->zero,
                      .group = &r->grid.dp_sp,
                      .pp = &r->grid.pp,
                      .be = r->be,
                      .layout = model_flat_layout(m),
                      .grads = m->w.grads,
                      .params = m->w.params,
                      .host_init = host_params,
                      /* 0 elements: one bucket (grad_sync.h) */
                      .bucket_elems = (size_t)(cfg->grad_bucket_mb * (1 << 20) / sizeof(float))};
  for (int w = 0; w < 2; w++) setup.grad_windows[w] = m->w.grad_windows[w], setup.param_windows[w] = m->w.param_windows[w];
  zero_create(&r->zero, &setup);
  m->zero = &r->zero;
  const adamw_settings adam = {cfg->beta1, cfg->beta2, cfg->adam_eps, cfg->weight_decay, cfg->grad_clip};
  const offload_request offload = offload_of(r, r->zero.part.n_own);
  optimizer_create_offloaded(&r->opt, r->be, m, host_params, adam, &r->zero, &offload);
  if (!in_place) free(host_params);
}

/* Rank 0 opens the metrics file only now that the input is known to be
 * good: a refused run never truncates the metrics of an earlier one; a
 * resumed run appends; a fresh start over an earlier run's metrics says so
 * before it truncates them. Every rank learns whether it worked. */
static void open_metrics(run *r) {
  char err[MESSAGE_BYTES];
  int64_t failed = 0;
  struct stat st;
  if (r->rt->world_rank == 0 && r->resumed_step == 0 && r->cfg->metrics[0] && stat(r->cfg->metrics, &st) == 0 &&
      S_ISREG(st.st_mode) && st.st_size > 0)
    fprintf(stderr, "tessera: warning: a fresh start: truncating the metrics file '%s' (%lld bytes of an earlier "
            "run); use --resume to continue that run or --metrics to keep them\n", r->cfg->metrics,
            (long long)st.st_size);
  if (r->rt->world_rank == 0 && metrics_open(&r->mx, r->cfg->metrics, r->resumed_step > 0, err, sizeof err) != 0)
    failed = 1;
  comm_allreduce_max_i64(&r->grid.world, &failed, 1);
  if (failed)
    fail_collective(EXIT_USER_ERROR, "%s", r->rt->world_rank == 0 ? err : "cannot open the metrics file");
}

/* Peak FLOP/s of this rank for MFU: the configured figure, or a large GEMM
 * timed on the backend (all ranks at once, so oversubscribed ranks share the
 * cores just as they will while training). */
static double measure_peak_flops(run *r) {
  if (r->cfg->peak_tflops > 0) return r->cfg->peak_tflops * 1e12;
  const backend *be = r->be;
  const int n = 768;
  act_t *a = be->alloc_act((size_t)n * n, "peak probe"), *b = be->alloc_act((size_t)n * n, "peak probe"),
        *c = be->alloc_act((size_t)n * n, "peak probe");
  float *host = xmalloc((size_t)n * n * sizeof *host, "peak probe");
  for (size_t i = 0; i < (size_t)n * n; i++) host[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
  be->act_from_host(a, host, (size_t)n * n);
  be->act_from_host(b, host, (size_t)n * n);
  be->gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
  comm_barrier(&r->grid.world);
  int calls = 0;
  double start = now_seconds(), elapsed = 0;
  while (elapsed < 0.3 || calls < 3) {
    be->gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    be->synchronize();
    calls++;
    elapsed = now_seconds() - start;
  }
  be->free_buffer(a);
  be->free_buffer(b);
  be->free_buffer(c);
  free(host);
  return 2.0 * n * (double)n * n * calls / elapsed;
}

/* The grid of groups and the backend: what every run starts with. */
static run *start_run(const config *cfg, const model_shape *shape, const runtime *rt) {
  run *r = xcalloc(1, sizeof *r, "run state");
  r->cfg = cfg;
  r->shape = *shape;
  r->rt = rt;
  char err[MESSAGE_BYTES];
  grid_shape shape_of_grid;
  if (grid_check_shape(rt->world_size, cfg->tp, cfg->pp, cfg->sp, &shape_of_grid, err, sizeof err))
    fail_collective(EXIT_USER_ERROR, "%s", err);
  grid_create(&r->grid, shape_of_grid);
  grid_set_watchdog(&r->grid, cfg->watchdog, cfg->watchdog_phase);
  /* the backend, and for a GPU the path its buffers take (NCCL communicators, or MPI staging) */
  backend_select(cfg, &r->grid, &r->devices);
  r->be = r->devices.be;
  r->accum_steps = cfg->batch_size / (r->grid.shape.dp * cfg->micro_batch_size);
  return r;
}

/* The plan, this rank's stage of the model, the pipeline runtime and the
 * token buffers of a step. */
static void build_stage(run *r) {
  const config *cfg = r->cfg;
  char err[MESSAGE_BYTES];
  const int status = pipeline_plan_make(&r->plan, cfg, &r->shape, r->grid.shape.dp, err, sizeof err);
  if (status) fail_collective(status, "%s", err); /* the command checked it already */
  create_model(r);
  pipeline_create(&r->pipe, &r->mdl, &r->grid.pp, &r->plan.schedule);
  const size_t step_tokens = (size_t)r->accum_steps * cfg->micro_batch_size * cfg->seq_len;
  const size_t micro_tokens = (size_t)cfg->micro_batch_size * cfg->seq_len;
  r->inputs = xmalloc(step_tokens * sizeof(int32_t), "step inputs");
  r->targets = xmalloc(step_tokens * sizeof(int32_t), "step targets");
  r->loaded_inputs = xmalloc(micro_tokens * sizeof(int32_t), "loaded inputs");
  r->loaded_targets = xmalloc(micro_tokens * sizeof(int32_t), "loaded targets");
}

/* Rank 0 looks at the save directory before anything is loaded or
 * trained: a save that cannot happen is said now, not after hours. */
static void check_save_dir(run *r) {
  char err[MESSAGE_BYTES] = "";
  int64_t status = 0;
  if (r->cfg->save_dir[0] && r->rt->world_rank == 0) status = ckpt_check_save_dir(r->cfg->save_dir, err, sizeof err);
  comm_allreduce_max_i64(&r->grid.world, &status, 1);
  if (status) fail_collective((int)status, "%s", err);
}

run *run_create(const config *cfg, const model_shape *shape, const runtime *rt) {
  run *r = start_run(cfg, shape, rt);
  check_save_dir(r);
  open_data(r);
  data_tokenizer_resolve(cfg, &r->train_ds, r->separate_val ? &r->val_ds : NULL, &r->data_tok);
  build_stage(r);
  create_training_state(r);

  if (cfg->resume[0])
    r->resumed_step =
        checkpoint_resume(cfg->resume, cfg->save_dir, &r->shape, cfg->batch_size, &r->data_tok.tok, &r->grid,
                          &r->mdl, &r->opt);
  /* past the schedule's end there is nothing to continue: the run would
   * report a negative step count */
  if (r->resumed_step > cfg->steps)
    fail_collective(EXIT_USER_ERROR,
                    "--resume: the checkpoint is at step %lld, beyond this run's %lld steps: raise --steps to "
                    "continue it", (long long)r->resumed_step, (long long)cfg->steps);
  /* a resumed run continues; --init-from starts one (so a job script may
   * pass both: the first run starts from the weights, requeued ones resume) */
  if (cfg->init_from[0] && r->resumed_step == 0)
    model_init_from(cfg->init_from, &r->data_tok.tok, &r->grid, &r->mdl, &r->opt);
  zero_refetch_outer_params(&r->zero); /* ZeRO 3: the kept tensors from the (loaded) ranges */
  open_metrics(r);
  double peak = measure_peak_flops(r);
  comm_allreduce_sum_f64(&r->grid.world, &peak, 1);
  r->peak_flops_total = peak;
  progress_start(&r->pg, rt->world_rank == 0, cfg->progress, r->resumed_step + 1, run_last_step(r));
  return r;
}

/* cfg->val_data, whole, as the validation split (validate() reads it). */
static void open_eval_data(run *r) {
  char err[MESSAGE_BYTES];
  const int status = dataset_open(&r->val_ds, r->cfg->val_data, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  r->separate_val = true;
  r->loader = (batch_loader){.val = {&r->val_ds, 0, dataset_n_windows(&r->val_ds, r->cfg->seq_len)},
                             .seq_len = r->cfg->seq_len,
                             .global_batch = r->cfg->batch_size,
                             .micro_batch = r->cfg->micro_batch_size,
                             .dp_rank = r->grid.dp_rank,
                             .dp_size = r->grid.shape.dp,
                             .seed = (uint64_t)r->cfg->seed};
}

run *run_create_for_eval(const config *cfg, const model_shape *shape, const runtime *rt, const char *ckpt) {
  ENSURE(cfg->zero == 0, "evaluation runs without ZeRO (zero = %d)", cfg->zero);
  run *r = start_run(cfg, shape, rt);
  if (cfg->val_data[0]) open_eval_data(r);
  build_stage(r);
  r->resumed_step = checkpoint_load_weights(ckpt, &r->shape, &r->grid, &r->mdl);
  return r;
}

void run_free(run *r) {
  metrics_close(&r->mx);
  free(r->inputs);
  free(r->targets);
  free(r->loaded_inputs);
  free(r->loaded_targets);
  if (r->opt.be) optimizer_free(&r->opt); /* an evaluation run has neither */
  if (r->zero.be) zero_free(&r->zero);
  pipeline_free(&r->pipe);
  pipeline_plan_free(&r->plan);
  model_free(&r->mdl);
  profile_free(r->profile);
  data_tokenizer_free(&r->data_tok);
  dataset_close(&r->train_ds);
  if (r->separate_val) dataset_close(&r->val_ds);
  grid_free(&r->grid);
  free(r);
}

int64_t run_last_step(const run *r) {
  const config *cfg = r->cfg;
  return cfg->stop_at_step > 0 && cfg->stop_at_step < cfg->steps ? cfg->stop_at_step : cfg->steps;
}

/* trainer — see trainer.h. */
#include "trainer.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_select.h"
#include "architecture.h"
#include "batch_loader.h"
#include "build_info.h"
#include "checkpoint.h"
#include "comm.h"
#include "fail.h"
#include "grad_sync.h"
#include "param_gather.h"
#include "shard_sync.h"
#include "grid.h"
#include "lr_schedule.h"
#include "metrics.h"
#include "model.h"
#include "optimizer.h"
#include "param_init.h"
#include "pipeline.h"
#include "pipeline_plan.h"
#include "progress.h"
#include "sampler.h"
#include "token_dataset.h"

typedef struct memory_report {
  size_t weight_bytes, grad_bytes, optimizer_bytes, activation_bytes;
} memory_report;

typedef struct run_state {
  const config *cfg;
  const runtime *rt;
  const backend *be;
  backend_selection devices; /* the backend, its device and the comm path */
  grid grid;
  model mdl;
  pipeline_plan plan;    /* the layers of each pipeline chunk and the step's schedule */
  pipeline pipe;         /* runs the schedule on this stage (one stage: plain accumulation) */
  optimizer opt;
  grad_sync sync;        /* ZeRO 0 and 1: bucketed all-reduce of the flat gradient */
  shard_sync ssync;      /* ZeRO 2: reduce-scatter of gradient windows into shards */
  grad_window_hooks window_hooks;
  param_gather pgather;  /* ZeRO 3: blocks' weights fetched on demand */
  param_window_hooks param_hooks;
  batch_loader loader;
  token_dataset train_ds, val_ds;
  bool separate_val;
  metrics mx;
  progress pg;
  int accum_steps;
  int32_t *inputs, *targets; /* the step's micro-batches: this rank's tokens of each */
  int32_t *loaded_inputs, *loaded_targets; /* one micro-batch of whole sequences, M × T */
  double peak_flops_total;    /* over all ranks */
  memory_report memory;
} run_state;

/* ---------------------------------------------------------------- signals */

/* Set by SIGTERM or SIGUSR1 (Slurm's warning before the time limit): the run
 * saves at the next step boundary and exits with EXIT_STOPPED. A signal
 * handler can only reach file-scope state, hence this one static. */
static volatile sig_atomic_t stop_requested;

static void request_stop(int signal_number) {
  (void)signal_number;
  stop_requested = 1;
}

static void install_stop_handlers(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGUSR1, &action, NULL);
}

/* ---------------------------------------------------------------- saves */

typedef struct save_totals {
  int count;
  double bytes, seconds, blocking_seconds;
} save_totals;

/* One line per finished save (bytes, time, GB/s and where the time went) and
 * a metrics record. */
static void report_checkpoint(run_state *rs, const checkpoint_stats *st, save_totals *totals,
                              const char *where) {
  const double seconds = st->seconds > 0 ? st->seconds : 1e-9;
  progress_print(&rs->pg,
                 "checkpoint: step %lld, %.1f MB in %.2f s (%.2f GB/s)%s: staging %.2f s, writing %.2f s, "
                 "flush and rename %.2f s\n",
                 (long long)st->step, st->bytes / 1e6, st->seconds, st->bytes / 1e9 / seconds, where,
                 st->stage_seconds, st->write_seconds, st->sync_seconds);
  metrics_begin(&rs->mx);
  metrics_int(&rs->mx, "step", st->step);
  metrics_num(&rs->mx, "checkpoint_bytes", st->bytes);
  metrics_num(&rs->mx, "checkpoint_s", st->seconds);
  metrics_num(&rs->mx, "checkpoint_blocking_s", st->blocking_seconds);
  metrics_num(&rs->mx, "checkpoint_stage_s", st->stage_seconds);
  metrics_num(&rs->mx, "checkpoint_write_s", st->write_seconds);
  metrics_num(&rs->mx, "checkpoint_sync_s", st->sync_seconds);
  metrics_end(&rs->mx);
  totals->count++;
  totals->bytes += st->bytes;
  totals->seconds += st->seconds;
  totals->blocking_seconds += st->blocking_seconds;
}

/* ---------------------------------------------------------------- set-up */

static void open_data(run_state *rs) {
  const config *cfg = rs->cfg;
  char err[4300];
  int status = dataset_open(&rs->train_ds, cfg->data, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  uint64_t n_windows = dataset_n_windows(&rs->train_ds, cfg->seq_len);
  data_split train = {&rs->train_ds, 0, n_windows}, val = {0};
  if (cfg->val_data[0]) {
    status = dataset_open(&rs->val_ds, cfg->val_data, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
    rs->separate_val = true;
    val = (data_split){&rs->val_ds, 0, dataset_n_windows(&rs->val_ds, cfg->seq_len)};
  } else {
    uint64_t n_val = (uint64_t)floor(cfg->val_fraction * (double)n_windows);
    if (cfg->val_fraction > 0 && n_val == 0 && n_windows > 1) n_val = 1;
    train.n_windows = n_windows - n_val;
    val = (data_split){&rs->train_ds, train.n_windows, n_val};
  }
  if (train.n_windows == 0)
    fail_collective(EXIT_USER_ERROR,
                    "data '%s' holds %llu tokens: too few for one training sequence of seq_len %d "
                    "(+1); use more text or a smaller seq_len",
                    cfg->data, (unsigned long long)rs->train_ds.n_tokens, cfg->seq_len);
  rs->loader = (batch_loader){.train = train,
                              .val = val,
                              .seq_len = cfg->seq_len,
                              .global_batch = cfg->batch_size,
                              .micro_batch = cfg->micro_batch_size,
                              .dp_rank = rs->grid.dp_rank,
                              .dp_size = rs->grid.shape.dp,
                              .seed = (uint64_t)cfg->seed};
}

/* Peak FLOP/s of this rank for MFU: the configured figure, or a large GEMM
 * timed on the backend (all ranks at once, so oversubscribed ranks share the
 * cores just as they will while training). */
static double measure_peak_flops(run_state *rs) {
  if (rs->cfg->peak_tflops > 0) return rs->cfg->peak_tflops * 1e12;
  const backend *be = rs->be;
  const int n = 768;
  act_t *a = be->alloc_act((size_t)n * n, "peak probe"), *b = be->alloc_act((size_t)n * n, "peak probe"),
        *c = be->alloc_act((size_t)n * n, "peak probe");
  float *host = xmalloc((size_t)n * n * sizeof *host, "peak probe");
  for (size_t i = 0; i < (size_t)n * n; i++) host[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
  be->act_from_host(a, host, (size_t)n * n);
  be->act_from_host(b, host, (size_t)n * n);
  be->gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
  comm_barrier(&rs->grid.world);
  int calls = 0;
  double start = progress_now(), elapsed = 0;
  while (elapsed < 0.3 || calls < 3) {
    be->gemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    be->synchronize();
    calls++;
    elapsed = progress_now() - start;
  }
  be->free_buffer(a);
  be->free_buffer(b);
  be->free_buffer(c);
  free(host);
  return 2.0 * n * (double)n * n * calls / elapsed;
}

static void report_start(run_state *rs) {
  const config *cfg = rs->cfg;
  const model *m = &rs->mdl;
  const size_t n_local = m->reg.n_local_total, act_bytes = rs->be->act_elem_bytes;
  const size_t shard = rs->opt.shard_elems; /* the whole buffer without ZeRO */
  rs->memory = (memory_report){
      /* compute weights (ZeRO 3: this rank's range, the embeddings and final
       * norm, two block windows) + the fp32 master range */
      .weight_bytes = (m->windowed_params ? shard + m->outer_elems + 2 * m->block_elems : n_local) *
                          act_bytes +
                      shard * sizeof(float),
      /* ZeRO 2: the persistent embedding/final-norm buffer, two block windows
       * and this rank's shard instead of the whole gradient */
      .grad_bytes = m->windowed_grads
                        ? (m->outer_elems + 2 * m->block_elems + shard) * act_bytes
                        : n_local * act_bytes,
      .optimizer_bytes = 2 * shard * sizeof(float), /* Adam m and v */
      .activation_bytes = m->activation_bytes,
  };
  const memory_report *mem = &rs->memory;
  const double MiB = 1024.0 * 1024.0;
  /* stages hold different layers: every stage's figures, for rank 0 to print */
  const int p = rs->grid.shape.pp;
  int64_t *stages = xcalloc((size_t)p * 5, sizeof *stages, "memory per stage");
  int64_t *mine = stages + (size_t)rs->grid.pp_rank * 5;
  mine[0] = (int64_t)mem->weight_bytes, mine[1] = (int64_t)mem->grad_bytes;
  mine[2] = (int64_t)mem->optimizer_bytes, mine[3] = (int64_t)mem->activation_bytes, mine[4] = m->n_slots;
  if (p > 1) comm_allreduce_max_i64(&rs->grid.pp, stages, (size_t)p * 5);
  if (rs->rt->world_rank == 0) {
    build_info_print(stdout);
    char arch[4400];
    architecture_describe(&m->shape, arch, sizeof arch);
    printf("model: %d layers, %d heads, d_model %d, vocab %d, seq_len %d: %.2fM parameters\n  %s\n",
           cfg->n_layer, cfg->n_head, cfg->d_model, cfg->vocab_size, cfg->seq_len,
           (double)model_n_params(m) / 1e6, arch);
    if (rs->grid.shape.sp > 1)
      printf("sequence parallelism: %d ranks, %s, %s chunks of %d tokens\n", rs->grid.shape.sp,
             cfg->sp_kind == SP_KIND_CHOICE_RING ? "ring (LASP; ring attention)" : "all-gather (LASP-2; K and V gathered)",
             m->placement == SP_ZIGZAG ? "zig-zag" : "contiguous", cfg->seq_len / m->layout.n_chunks);
    printf("layout: %d ranks = dp %d x tp %d x pp %d x sp %d, ZeRO stage %d, backend %s\n",
           rs->rt->world_size, rs->grid.shape.dp, rs->grid.shape.tp, rs->grid.shape.pp, rs->grid.shape.sp,
           cfg->zero, rs->be->name);
    printf("compute: %s (rank 0); communication: %s\n", rs->devices.device, rs->devices.comm_path);
    if (rs->grid.shape.pp > 1) {
      const pipeline_plan *plan = &rs->plan;
      printf("pipeline: %s schedule, %d stages x %d chunks, %d micro-batches per step; layers per chunk:",
             pipe_schedule_name(plan->schedule.kind), plan->stages, plan->chunks_per_stage, plan->micro_batches);
      for (int g = 0; g < plan->stages * plan->chunks_per_stage; g++)
        printf("%s%d", g ? "," : " ", plan->layers_per_chunk[g]);
      printf("; bubble by formula %.1f%%\n",
             100 * pipe_schedule_bubble_formula(plan->stages, plan->micro_batches, plan->chunks_per_stage));
    }
    if (cfg->recompute != RECOMPUTE_CHOICE_NONE)
      printf("activation recomputation: %s\n", cfg->recompute == RECOMPUTE_CHOICE_FULL ? "full" : "selective");
    printf("batch: %d sequences x %d tokens = %lld tokens/step; micro-batch %d, %d accumulation "
           "steps per rank\n",
           cfg->batch_size, cfg->seq_len, (long long)cfg->batch_size * cfg->seq_len,
           cfg->micro_batch_size, rs->accum_steps);
    printf("data: '%s' %llu tokens, %llu training windows, %llu validation windows%s\n", cfg->data,
           (unsigned long long)rs->train_ds.n_tokens, (unsigned long long)rs->loader.train.n_windows,
           (unsigned long long)rs->loader.val.n_windows,
           rs->separate_val ? " (from --val-data)" : "");
    printf("memory per rank%s: weights %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, "
           "activations %.1f MiB (%d micro-batch slot%s)\n", p > 1 ? " (pipeline stage 0)" : "",
           mem->weight_bytes / MiB, mem->grad_bytes / MiB, mem->optimizer_bytes / MiB,
           mem->activation_bytes / MiB, m->n_slots, m->n_slots == 1 ? "" : "s");
    for (int s = 1; s < p; s++) /* stage 0 is the line above */
      printf("  pipeline stage %d: weights %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, "
             "activations %.1f MiB (%lld slots)\n",
             s, stages[5 * s] / MiB, stages[5 * s + 1] / MiB, stages[5 * s + 2] / MiB, stages[5 * s + 3] / MiB,
             (long long)stages[5 * s + 4]);
    printf("peak for MFU: %.1f GFLOP/s over %d ranks (%s)\n", rs->peak_flops_total / 1e9, rs->rt->world_size,
           cfg->peak_tflops > 0                 ? "configured"
           : rs->be->kind == BACKEND_CUDA ? "measured bf16 GEMM; set peak_tflops to the GPU's dense bf16 figure"
                                          : "measured sgemm");
    fflush(stdout);
  }
  metrics *mx = &rs->mx;
  metrics_begin(mx);
  metrics_str(mx, "event", "start");
  metrics_str(mx, "version", build_info_version());
  metrics_str(mx, "backend", rs->be->name);
  metrics_str(mx, "device", rs->devices.device);
  metrics_str(mx, "comm", rs->devices.nccl ? "nccl" : "mpi");
  metrics_int(mx, "world", rs->rt->world_size);
  metrics_int(mx, "dp", rs->grid.shape.dp);
  metrics_int(mx, "tp", rs->grid.shape.tp);
  metrics_int(mx, "pp", rs->grid.shape.pp);
  metrics_int(mx, "sp", rs->grid.shape.sp);
  metrics_int(mx, "micro_batches", rs->plan.micro_batches);
  metrics_num(mx, "bubble_formula",
              pipe_schedule_bubble_formula(rs->plan.stages, rs->plan.micro_batches, rs->plan.chunks_per_stage));
  metrics_int(mx, "activation_slots", rs->mdl.n_slots);
  metrics_int(mx, "zero", cfg->zero);
  metrics_int(mx, "params", model_n_params(m));
  metrics_int(mx, "params_local", (int64_t)m->reg.n_local_total);
  metrics_int(mx, "tokens_per_step", (int64_t)cfg->batch_size * cfg->seq_len);
  metrics_num(mx, "peak_flops", rs->peak_flops_total);
  metrics_int(mx, "mem_weights", (int64_t)mem->weight_bytes);
  metrics_int(mx, "mem_grads", (int64_t)mem->grad_bytes);
  metrics_int(mx, "mem_optimizer", (int64_t)mem->optimizer_bytes);
  metrics_int(mx, "mem_activations", (int64_t)mem->activation_bytes);
  if (p > 1) metrics_int_array(mx, "mem_activations_per_stage", stages + 3, (size_t)p, 5);
  metrics_end(mx);
  free(stages);
}

/* ---------------------------------------------------------------- steps */

static void grads_ready(void *context, size_t offset) {
  grad_sync_ready_from((grad_sync *)context, offset);
}

static void window_done(void *context, int window, const act_t *grads, size_t start, size_t n) {
  run_state *rs = context;
  shard_sync_start(&rs->ssync, window, grads, start, n);
}

static void need_block(void *context, int layer, int window, act_t *window_buf, size_t start,
                       size_t n, int next_layer) {
  run_state *rs = context;
  param_gather_need(&rs->pgather, window, layer, window_buf, start, n);
  if (next_layer >= 0) {
    const model *m = &rs->mdl;
    act_t *other = m->param_windows[next_layer % 2];
    param_gather_prefetch(&rs->pgather, next_layer % 2, next_layer, other,
                          m->block_start0 + (size_t)next_layer * m->block_elems, m->block_elems);
  }
}

/* ZeRO 3, after a step: the embeddings and final norm (kept whole) are
 * gathered anew from the shards; the windows' blocks are stale. */
static void refresh_outer_params(run_state *rs) {
  const model *m = &rs->mdl;
  size_t embeddings_end, final_norm_start;
  model_outer_ranges(m, &embeddings_end, &final_norm_start);
  act_t *outer = m->params; /* the embeddings, then the final norm */
  param_gather_invalidate(&rs->pgather);
  param_gather_range(&rs->pgather, outer, 0, embeddings_end);
  param_gather_range(&rs->pgather, act_at(rs->be, outer, embeddings_end), final_norm_start,
                     m->reg.n_local_total - final_norm_start);
}

static void window_reuse(void *context, int window) {
  shard_sync_finish(&((run_state *)context)->ssync, window);
}

/* ZeRO 2, end of a step's backward: finish the windows in flight, then
 * reduce-scatter the embeddings' and final norm's gradients, which were
 * accumulated locally over the micro-batches. */
static void finish_shard_gradients(run_state *rs) {
  const model *m = &rs->mdl;
  shard_sync_finish(&rs->ssync, 0);
  shard_sync_finish(&rs->ssync, 1);
  size_t embeddings_end, final_norm_start;
  model_outer_ranges(m, &embeddings_end, &final_norm_start);
  const act_t *outer = m->grads; /* the embeddings, then the final norm */
  shard_sync_range(&rs->ssync, outer, 0, embeddings_end);
  shard_sync_range(&rs->ssync, act_at(rs->be, outer, embeddings_end), final_norm_start,
                   m->reg.n_local_total - final_norm_start);
}

/* Every rank checks its tokens; one all-reduce tells all of them whether any
 * rank saw an id outside the vocabulary, so the error is reported once. */
static void check_token_ids(run_state *rs, int32_t max_id, int64_t max_sample, const char *path,
                            const char *what) {
  int64_t worst = max_id;
  comm_allreduce_max_i64(&rs->grid.dp_sp, &worst, 1);
  if (worst >= rs->cfg->vocab_size) {
    /* name one offending sample: the ranks holding the largest id offer theirs */
    int64_t sample = max_id == worst ? max_sample : -1;
    comm_allreduce_max_i64(&rs->grid.dp_sp, &sample, 1);
    fail_collective(EXIT_IO_ERROR,
                    "%s '%s': token id %lld in global sample %lld is >= vocab_size %d; the data was "
                    "made with a larger vocabulary — set vocab_size to at least %lld",
                    what, path, (long long)worst, (long long)sample, rs->cfg->vocab_size,
                    (long long)worst + 1);
  }
}

typedef struct step_result {
  double loss, grad_norm, lr, seconds;
  double bubble; /* measured idle share of the pipeline, mean over stages */
} step_result;

static step_result train_step(run_state *rs, int64_t step) {
  const config *cfg = rs->cfg;
  step_result r;
  const int M = cfg->micro_batch_size, T = cfg->seq_len;
  const size_t micro_tokens = (size_t)M * model_local_tokens(&rs->mdl, T);
  double start = progress_now();
  profile_mark(rs->mdl.profile, PROFILE_DATA, false);

  /* the same whole sequences on every sp rank of a replica; each keeps its pieces */
  int32_t max_id = -1;
  int64_t max_sample = -1;
  for (int k = 0; k < rs->accum_steps; k++) {
    int64_t sample = -1;
    int32_t id = batch_load_train(&rs->loader, step, k, rs->loaded_inputs, rs->loaded_targets, &sample);
    if (id > max_id) max_id = id, max_sample = sample;
    model_take_local(&rs->mdl, M, T, rs->loaded_inputs, rs->inputs + k * micro_tokens);
    model_take_local(&rs->mdl, M, T, rs->loaded_targets, rs->targets + k * micro_tokens);
  }
  check_token_ids(rs, max_id, max_sample, cfg->data, "training data");

  /* mean over every token of the global batch: each rank's sum is scaled by
   * 1/global_tokens, and the all-reduce sums the ranks */
  const float dloss_scale = 1.0f / (float)((double)cfg->batch_size * T);
  const bool zero2 = rs->opt.shard_grads != NULL;
  model_zero_grads(&rs->mdl);
  if (zero2) rs->be->zero_act(rs->opt.shard_grads, rs->opt.shard_elems);
  /* the schedule's micro-batches; the dp all-reduce of each chunk's
   * gradients starts during its last backward */
  double loss_sum = pipeline_train_step(&rs->pipe, rs->inputs, rs->targets, M, T, dloss_scale,
                                        zero2 ? NULL : grads_ready, &rs->sync);
  profile_mark(rs->mdl.profile, PROFILE_GRAD_SYNC, true);
  if (zero2) finish_shard_gradients(rs);
  else grad_sync_finish(&rs->sync);
  comm_allreduce_sum_f64(&rs->grid.dp_sp, &loss_sum, 1);
  if (rs->grid.shape.pp > 1) comm_allreduce_sum_f64(&rs->grid.pp, &loss_sum, 1); /* the last stage's */
  r.bubble = pipeline_measured_bubble(&rs->pipe);

  r.loss = loss_sum / ((double)cfg->batch_size * T);
  profile_mark(rs->mdl.profile, PROFILE_OPTIMIZER, false);
  r.grad_norm = optimizer_grad_norm(&rs->opt, &rs->mdl);
  lr_schedule schedule = {cfg->lr, cfg->min_lr, cfg->warmup_steps, cfg->steps};
  r.lr = lr_at_step(&schedule, step);
  optimizer_step(&rs->opt, &rs->mdl, r.lr, r.grad_norm);
  if (rs->opt.compute_shard) refresh_outer_params(rs);
  rs->be->synchronize();
  r.seconds = progress_now() - start;
  profile_end_step(rs->mdl.profile, r.seconds);
  return r;
}

static double validate(run_state *rs) {
  const config *cfg = rs->cfg;
  const int M = cfg->micro_batch_size, T = cfg->seq_len;
  if (rs->loader.val.n_windows == 0 || cfg->val_sequences == 0) return NAN;
  /* this rank's contiguous slice of the S validation sequences */
  const int64_t S = cfg->val_sequences, dp = rs->grid.shape.dp, r = rs->grid.dp_rank;
  const int64_t first = r * S / dp, last = (r + 1) * S / dp;
  /* every rank runs the same number of rounds (the token check is collective) */
  const int64_t rounds = (S / dp + 1 + M - 1) / M;
  double sums[2] = {0, 0}; /* loss sum, token count */
  for (int64_t round = 0; round < rounds; round++) {
    int64_t start = first + round * M;
    int rows = start < last ? (int)(last - start < M ? last - start : M) : 0;
    int64_t sample = -1;
    int32_t max_id = rows ? batch_load_val(&rs->loader, start, rows, rs->loaded_inputs, rs->loaded_targets, &sample)
                          : -1;
    if (rows) {
      model_take_local(&rs->mdl, rows, T, rs->loaded_inputs, rs->inputs);
      model_take_local(&rs->mdl, rows, T, rs->loaded_targets, rs->targets);
    }
    check_token_ids(rs, max_id, sample, rs->separate_val ? cfg->val_data : cfg->data,
                    "validation data");
    if (rows == 0) {
      /* with ZeRO 3 a forward is collective over dp×sp: run one row and discard it */
      if (cfg->zero >= 3) {
        memset(rs->inputs, 0, (size_t)T * sizeof *rs->inputs);
        memset(rs->targets, 0, (size_t)T * sizeof *rs->targets);
        pipeline_forward_loss(&rs->pipe, rs->inputs, rs->targets, 1, T);
      }
      continue;
    }
    sums[0] += pipeline_forward_loss(&rs->pipe, rs->inputs, rs->targets, rows, T);
    sums[1] += (double)rows * model_local_tokens(&rs->mdl, T); /* this rank's tokens: sp ranks share sequences */
  }
  comm_allreduce_sum_f64(&rs->grid.dp_sp, sums, 2);
  return sums[0] / sums[1];
}

/* The first model replica generates (all its tp ranks and pipeline stages
 * take part in every forward and draw the same tokens); world rank 0 prints. */
static void print_sample(run_state *rs, int64_t step) {
  const config *cfg = rs->cfg;
  /* with ZeRO 3 every forward gathers weights over dp×sp: all replicas generate */
  if (cfg->sample_tokens <= 0 || (rs->grid.dp_rank != 0 && cfg->zero < 3)) return;
  FILE *out = rs->rt->world_rank == 0 ? stdout : NULL;
  progress_print(&rs->pg, "---- sample at step %lld ----\n", (long long)step);
  sampler_generate_text(pipeline_last_logits, &rs->pipe, cfg->seq_len, cfg->vocab_size, cfg->sample_prompt,
                        cfg->sample_tokens, 0,
                        (uint64_t)cfg->seed + (uint64_t)step, out);
  progress_print(&rs->pg, "----\n");
}

/* Bytes and seconds of every group's collectives so far, to report per step. */
typedef struct comm_totals {
  uint64_t bytes[GRID_N_GROUPS];
  double seconds[GRID_N_GROUPS];
} comm_totals;

static comm_totals comm_now(run_state *rs) {
  comm *groups[GRID_N_GROUPS];
  grid_groups(&rs->grid, groups);
  comm_totals t;
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    t.bytes[i] = comm_total_bytes(groups[i]);
    t.seconds[i] = comm_total_seconds(groups[i]);
  }
  return t;
}

static void report_step(run_state *rs, int64_t step, const step_result *r, const comm_totals *before,
                        const comm_totals *after) {
  const config *cfg = rs->cfg;
  const double tokens = (double)cfg->batch_size * cfg->seq_len;
  const double tokens_per_s = tokens / r->seconds;
  const double flops_per_token = model_flops_per_token(&rs->mdl.shape, cfg->seq_len);
  const double mfu = flops_per_token * tokens_per_s / rs->peak_flops_total;
  progress_print(&rs->pg,
                 "step %5lld/%lld | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | MFU %.1f%% "
                 "| %.0f ms\n",
                 (long long)step, (long long)cfg->steps, r->loss, r->lr, r->grad_norm,
                 tokens_per_s, 100 * mfu, 1000 * r->seconds);
  progress_update(&rs->pg, step, r->loss, tokens_per_s);
  metrics *mx = &rs->mx;
  metrics_begin(mx);
  metrics_int(mx, "step", step);
  metrics_num(mx, "loss", r->loss);
  metrics_num(mx, "lr", r->lr);
  metrics_num(mx, "grad_norm", r->grad_norm);
  metrics_num(mx, "tokens_per_s", tokens_per_s);
  metrics_num(mx, "mfu", mfu);
  metrics_num(mx, "ms", 1000 * r->seconds);
  if (rs->grid.shape.pp > 1) metrics_num(mx, "bubble", r->bubble);
  metrics_int(mx, "tokens", (int64_t)(step * tokens));
  /* per group: the payload this rank handed to collectives during the step */
  comm *groups[GRID_N_GROUPS];
  grid_groups(&rs->grid, groups);
  uint64_t total_bytes = 0;
  double total_seconds = 0;
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    total_bytes += after->bytes[i] - before->bytes[i];
    total_seconds += after->seconds[i] - before->seconds[i];
  }
  metrics_int(mx, "comm_bytes", (int64_t)total_bytes);
  metrics_num(mx, "comm_s", total_seconds);
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    if (groups[i]->size == 1 || after->bytes[i] == before->bytes[i]) continue;
    char key[40];
    snprintf(key, sizeof key, "comm_bytes_%s", groups[i]->name);
    metrics_int(mx, key, (int64_t)(after->bytes[i] - before->bytes[i]));
  }
  metrics_end(mx);
}

/* The end-of-run table: calls, MiB and seconds per group and collective. */
static void report_communication(run_state *rs) {
  comm *groups[GRID_N_GROUPS];
  grid_groups(&rs->grid, groups);
  progress_print(&rs->pg, "communication on rank 0 (group, collective: calls, MiB, seconds waiting):\n");
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    if (groups[i]->size == 1) continue;
    for (int k = 0; k < COMM_N_KINDS; k++) {
      const comm_counters *c = &groups[i]->counters;
      if (c->calls[k] == 0) continue;
      progress_print(&rs->pg, "  %-6s %-15s %8llu calls %10.1f MiB %8.2f s\n", groups[i]->name,
                     comm_kind_name((comm_kind)k), (unsigned long long)c->calls[k],
                     c->bytes[k] / 1048576.0, c->seconds[k]);
    }
  }
}

/* The end-of-run profile (--profile): rank 0's time per region and step,
 * forward and backward (recomputation counts as backward). */
static void report_profile(run_state *rs) {
  const profile *p = rs->mdl.profile;
  if (profile_steps(p) == 0) {
    progress_print(&rs->pg, "profile: needs 2 steps or more (the first warms up)\n");
    return;
  }
  const double covered = profile_covered_ms_per_step(p), wall = profile_wall_ms_per_step(p);
  progress_print(&rs->pg, "time by region on rank 0 (%s; ms per step, mean over steps after the first):\n",
                 rs->be->kind == BACKEND_CUDA ? "GPU stream time between events" : "wall clock");
  progress_print(&rs->pg, "  %-16s %9s %9s %9s %6s\n", "region", "forward", "backward", "total", "share");
  for (int r = 0; r < PROFILE_N_REGIONS; r++) {
    const double f = profile_ms_per_step(p, (profile_region)r, false), b = profile_ms_per_step(p, (profile_region)r, true);
    if (f + b <= 0) continue;
    progress_print(&rs->pg, "  %-16s %9.2f %9.2f %9.2f %5.1f%%\n", profile_region_name((profile_region)r), f, b, f + b,
                   covered > 0 ? 100 * (f + b) / covered : 0);
  }
  progress_print(&rs->pg, "  %-16s %29.2f ms of a %.2f ms step\n", "covered", covered, wall);
}

static void report_validation(run_state *rs, int64_t step, double val_loss) {
  if (isnan(val_loss)) return;
  progress_print(&rs->pg, "step %5lld | val loss %.4f\n", (long long)step, val_loss);
  metrics_begin(&rs->mx);
  metrics_int(&rs->mx, "step", step);
  metrics_num(&rs->mx, "val_loss", val_loss);
  metrics_end(&rs->mx);
}

/* Peak resident memory of this process (VmHWM), bytes; 0 where unknown. */
static int64_t peak_resident_bytes(void) {
  FILE *status = fopen("/proc/self/status", "r");
  if (!status) return 0;
  char line[256];
  long long kib = 0;
  while (fgets(line, sizeof line, status))
    if (sscanf(line, "VmHWM: %lld kB", &kib) == 1) break;
  fclose(status);
  return (int64_t)kib * 1024;
}

/* ---------------------------------------------------------------- params */

/* Writes the logical model — every parameter in the whole model's registry
 * order, each in its logical row-major layout, fp32, without tp padding —
 * to one raw file. The layout-equivalence tests compare these files between
 * layouts. In the first replica each parameter's owning stage gathers its tp
 * shards on its tp rank 0, which sends the tensor to world rank 0 (pipeline
 * rank 0 of the same group) to be written. */
static void dump_parameters(run_state *rs, const char *path) {
  const model *m = &rs->mdl;
  const grid *g = &rs->grid;
  const int tp = g->shape.tp;
  float *master = xmalloc(m->reg.n_local_total * sizeof *master, "parameter dump");
  optimizer_gather_master(&rs->opt, master); /* ZeRO shards, over dp×sp */
  registry whole;
  model_whole_registry(m, &whole);
  int *owner = xmalloc((size_t)whole.n_params * sizeof *owner, "parameter dump");
  model_owner_stages(m, &whole, owner);
  FILE *out = NULL;
  if (g->dp_rank == 0 && g->sp_rank == 0) {
    if (g->world_rank == 0 && !(out = fopen(path, "wb")))
      fail_local(EXIT_IO_ERROR, "cannot write parameters to '%s'", path);
    for (int k = 0; k < whole.n_params; k++) {
      const param_spec *w = &whole.params[k];
      const bool gathers = owner[k] == g->pp_rank, receives = owner[k] != g->pp_rank && out;
      if (!gathers && !receives) continue;
      float *logical = xcalloc((size_t)w->n_logical, sizeof *logical, "parameter dump");
      if (gathers) {
        const param_spec *p = registry_find(&m->reg, w->name);
        float *shards = xmalloc(p->n_local * (size_t)tp * sizeof *shards, "parameter dump");
        if (tp > 1 && p->tp_split_dim >= 0) comm_allgather_f32(&rs->grid.tp, master + p->offset, shards, p->n_local);
        else memcpy(shards, master + p->offset, p->n_local * sizeof *shards);
        const int n_shards = p->tp_split_dim >= 0 ? tp : 1;
        for (int r = 0; r < n_shards; r++) {
          const param_spec shard = registry_shard_of_tp_rank(p, r);
          for (size_t i = 0; i < p->n_local; i++)
            if (!registry_is_padding(&shard, i))
              logical[registry_logical_index(&shard, i)] = shards[(size_t)r * p->n_local + i];
        }
        free(shards);
        if (!out && g->tp_rank == 0 && owner[k] != 0)
          comm_send_f32(&rs->grid.pp, logical, (size_t)w->n_logical, 0, k);
      } else {
        comm_recv_f32(&rs->grid.pp, logical, (size_t)w->n_logical, owner[k], k);
      }
      if (out && fwrite(logical, sizeof *logical, (size_t)w->n_logical, out) != (size_t)w->n_logical)
        fail_local(EXIT_IO_ERROR, "writing parameters to '%s' failed", path);
      free(logical);
    }
  }
  free(owner);
  registry_free(&whole);
  free(master);
  if (out && fclose(out) != 0) fail_local(EXIT_IO_ERROR, "writing parameters to '%s' failed", path);
}

/* ---------------------------------------------------------------- the run */

int trainer_run(const config *cfg, const runtime *rt) {
  run_state *rs = xcalloc(1, sizeof *rs, "run state");
  rs->cfg = cfg;
  rs->rt = rt;
  grid_shape shape_of_grid;
  char err[4300];
  if (grid_check_shape(rt->world_size, cfg->tp, cfg->pp, cfg->sp, &shape_of_grid, err, sizeof err))
    fail_collective(EXIT_USER_ERROR, "%s", err);
  grid_create(&rs->grid, shape_of_grid);
  grid_set_watchdog(&rs->grid, cfg->watchdog);
  /* the backend, and for a GPU the path its buffers take (NCCL communicators, or MPI staging) */
  backend_select(cfg, &rs->grid, &rs->devices);
  rs->be = rs->devices.be;
  rs->accum_steps = cfg->batch_size / (rs->grid.shape.dp * cfg->micro_batch_size);

  open_data(rs);
  model_shape shape = architecture_from_config(cfg);
  int status = pipeline_plan_make(&rs->plan, cfg, rs->grid.shape.dp, err, sizeof err);
  if (status) fail_collective(status, "%s", err); /* train_command checked it already */
  const model_stage stage = pipeline_plan_stage(&rs->plan, rs->grid.pp_rank);
  const model_options options = {.tp = &rs->grid.tp,
                                 .seq_shard = cfg->tp_seq_shard,
                                 .windowed_grads = cfg->zero >= 2,
                                 .windowed_params = cfg->zero >= 3,
                                 .stage = &stage,
                                 .pp = &rs->grid.pp,
                                 .n_slots = pipeline_slots_needed(&rs->plan.schedule, rs->grid.pp_rank),
                                 .recompute = (recompute_kind)cfg->recompute,
                                 .sp = &rs->grid.sp,
                                 .sp_algorithm = (sp_kind)cfg->sp_kind,
                                 .head_chunk_rows = cfg->head_chunk_rows};
  model_create(&rs->mdl, rs->be, shape, cfg->micro_batch_size, cfg->seq_len, &options);
  if (cfg->profile) rs->mdl.profile = profile_create(rs->be); /* the model and this file mark regions */
  pipeline_create(&rs->pipe, &rs->mdl, &rs->grid.pp, &rs->plan.schedule);
  float *host_params = xmalloc(rs->mdl.reg.n_local_total * sizeof *host_params, "initial parameters");
  param_init_all(&rs->mdl.reg, (uint64_t)cfg->seed, host_params);
  model_load_params(&rs->mdl, host_params);
  adamw_settings adam = {cfg->beta1, cfg->beta2, cfg->adam_eps, cfg->weight_decay, cfg->grad_clip};
  optimizer_create(&rs->opt, rs->be, &rs->mdl, host_params, adam,
                   cfg->zero >= 1 ? &rs->grid.dp_sp : NULL, cfg->zero);
  free(host_params);
  if (cfg->zero >= 2) {
    size_t embeddings_end, final_norm_start;
    model_outer_ranges(&rs->mdl, &embeddings_end, &final_norm_start);
    size_t largest = rs->mdl.block_elems > embeddings_end ? rs->mdl.block_elems : embeddings_end;
    shard_sync_create(&rs->ssync, &rs->grid.dp_sp, rs->be, rs->opt.shard_counts, rs->opt.shard_displs,
                      rs->opt.shard_grads, largest);
    rs->window_hooks = (grad_window_hooks){rs, window_done, window_reuse};
    rs->mdl.window_hooks = &rs->window_hooks;
  }
  if (cfg->zero >= 3) {
    param_gather_create(&rs->pgather, &rs->grid.dp_sp, rs->be, rs->opt.shard_counts, rs->opt.shard_displs,
                        rs->opt.compute_shard);
    rs->param_hooks = (param_window_hooks){rs, need_block};
    rs->mdl.param_hooks = &rs->param_hooks;
  }
  const size_t bucket_elems = (size_t)25 << 20 >> 2; /* 25 MiB of fp32, as DDP's default */
  if (cfg->zero < 2)
    grad_sync_create(&rs->sync, &rs->grid.dp_sp, rs->be, rs->mdl.grads, rs->mdl.reg.n_local_total, bucket_elems);
  const size_t step_tokens = (size_t)rs->accum_steps * cfg->micro_batch_size * cfg->seq_len;
  rs->inputs = xmalloc(step_tokens * sizeof(int32_t), "step inputs");
  rs->targets = xmalloc(step_tokens * sizeof(int32_t), "step targets");
  const size_t micro_tokens = (size_t)cfg->micro_batch_size * cfg->seq_len;
  rs->loaded_inputs = xmalloc(micro_tokens * sizeof(int32_t), "loaded inputs");
  rs->loaded_targets = xmalloc(micro_tokens * sizeof(int32_t), "loaded targets");

  const int64_t resumed_step = cfg->resume[0] ? checkpoint_resume(cfg, &rs->grid, &rs->mdl, &rs->opt) : 0;
  if (rs->opt.compute_shard) refresh_outer_params(rs); /* ZeRO 3: from the loaded shards */
  /* opened only now that the input is known to be good: a refused run
   * never truncates the metrics of an earlier one; a resumed run appends */
  if (rt->world_rank == 0 && metrics_open(&rs->mx, cfg->metrics, resumed_step > 0, err, sizeof err) != 0) {
    int64_t failed = 1;
    comm_allreduce_max_i64(&rs->grid.world, &failed, 1);
    fail_collective(EXIT_USER_ERROR, "%s", err);
  } else {
    int64_t failed = 0;
    comm_allreduce_max_i64(&rs->grid.world, &failed, 1);
    if (failed) fail_collective(EXIT_USER_ERROR, "cannot open metrics file '%s'", cfg->metrics);
  }

  double peak = measure_peak_flops(rs);
  comm_allreduce_sum_f64(&rs->grid.world, &peak, 1);
  rs->peak_flops_total = peak;
  report_start(rs);

  const int64_t last_step = cfg->stop_at_step > 0 && cfg->stop_at_step < cfg->steps ? cfg->stop_at_step
                                                                                   : cfg->steps;
  progress_start(&rs->pg, rt->world_rank == 0, cfg->progress, resumed_step + 1, last_step);
  double train_seconds = 0, last_val = NAN, last_loss = NAN;
  comm_totals comm_before = comm_now(rs);
  double train_steps_run = 0;
  double bubble_sum = 0; /* measured pipeline bubble, over the steps after the first (warm-up) */
  int bubble_steps = 0;
  install_stop_handlers();
  checkpoint_saver *saver = NULL;
  if (cfg->save_dir[0]) {
    const double start = progress_now();
    saver = checkpoint_saver_create(cfg, &rs->grid, &rs->mdl, &rs->opt);
    progress_print(&rs->pg, "checkpoint staging: %.1f MB of host memory on rank 0, prepared in %.2f s\n",
                   checkpoint_saver_staging_bytes(saver) / 1e6, progress_now() - start);
  }
  save_totals saves = {0};
  bool stopped = false;
  for (int64_t step = resumed_step + 1; step <= last_step && !stopped; step++) {
    step_result r = train_step(rs, step);
    train_seconds += r.seconds;
    last_loss = r.loss;
    if (step > resumed_step + 1 || last_step == resumed_step + 1) bubble_sum += r.bubble, bubble_steps++;
    comm_totals comm_after = comm_now(rs);
    report_step(rs, step, &r, &comm_before, &comm_after);
    if (!isfinite(r.loss))
      fail_collective(EXIT_INTERNAL_ERROR,
                      "loss is %g at step %lld: training diverged; lower lr or raise warmup_steps",
                      r.loss, (long long)step);
    train_steps_run++;
    /* a signal on any rank stops every rank after the same step */
    int64_t stop = stop_requested;
    comm_allreduce_max_i64(&rs->grid.world, &stop, 1);
    stopped = stop != 0;
    bool last = step == last_step || stopped;
    if ((cfg->val_every > 0 && step % cfg->val_every == 0) || last) {
      last_val = validate(rs);
      report_validation(rs, step, last_val);
    }
    if (cfg->sample_every > 0 && step % cfg->sample_every == 0 && !last) print_sample(rs, step);
    if (saver && ((cfg->save_every > 0 && step % cfg->save_every == 0) || last)) {
      checkpoint_stats saved = checkpoint_save(saver, step);
      if (cfg->async_save) {
        progress_print(&rs->pg, "checkpoint: step %lld staged in %.2f s; writing in the background\n",
                       (long long)step, saved.stage_seconds);
      } else {
        report_checkpoint(rs, &saved, &saves, "");
      }
    }
    checkpoint_stats written;
    if (saver && checkpoint_saver_poll(saver, &written)) report_checkpoint(rs, &written, &saves, " in the background");
    if (stopped)
      progress_print(&rs->pg, "stopped by a signal after step %lld%s; exit status %d\n", (long long)step,
                     cfg->save_dir[0] ? ", checkpoint saved: resubmit with --resume auto" : "",
                     EXIT_STOPPED);
    comm_before = comm_now(rs); /* validation and samples are not the step's traffic */
  }
  if (saver) {
    checkpoint_stats written;
    checkpoint_saver_finish(saver); /* the last background save is on disk before we exit */
    if (checkpoint_saver_poll(saver, &written)) report_checkpoint(rs, &written, &saves, " in the background");
    checkpoint_saver_free(saver);
  }
  progress_finish(&rs->pg);
  print_sample(rs, last_step);
  if (cfg->dump_params[0]) dump_parameters(rs, cfg->dump_params);

  /* summary */
  const double tokens = train_steps_run * cfg->batch_size * cfg->seq_len;
  const double tokens_per_s = train_seconds > 0 ? tokens / train_seconds : 0;
  const double mfu = model_flops_per_token(&rs->mdl.shape, cfg->seq_len) * tokens_per_s /
                     rs->peak_flops_total;
  const memory_report *mem = &rs->memory;
  const size_t mem_total = mem->weight_bytes + mem->grad_bytes + mem->optimizer_bytes +
                           mem->activation_bytes;
  const comm_totals comm_end = comm_now(rs);
  uint64_t comm_bytes = 0;
  double comm_seconds = 0;
  for (int i = 0; i < GRID_N_GROUPS; i++) comm_bytes += comm_end.bytes[i], comm_seconds += comm_end.seconds[i];
  report_communication(rs);
  int64_t peak_rss = peak_resident_bytes();
  comm_allreduce_max_i64(&rs->grid.world, &peak_rss, 1);
  char elapsed_text[32];
  progress_format_duration(train_seconds, elapsed_text, sizeof elapsed_text);
  char val_text[32] = "n/a";
  if (!isnan(last_val)) snprintf(val_text, sizeof val_text, "%.4f", last_val);
  progress_print(&rs->pg,
                 "done: %lld steps in %s | final loss %.4f | val loss %s | %.0f tok/s | MFU "
                 "%.1f%% | memory %.1f MiB/rank (peak resident %.1f MiB) | communicated %.1f MiB/rank, "
                 "%.2f s waiting\n",
                 (long long)(last_step - resumed_step), elapsed_text, last_loss, val_text, tokens_per_s, 100 * mfu,
                 mem_total / 1048576.0, peak_rss / 1048576.0, comm_bytes / 1048576.0, comm_seconds);
  const double bubble_formula =
      pipe_schedule_bubble_formula(rs->plan.stages, rs->plan.micro_batches, rs->plan.chunks_per_stage);
  const double bubble_measured = bubble_steps ? bubble_sum / bubble_steps : 0;
  if (rs->grid.shape.pp > 1)
    progress_print(&rs->pg,
                   "pipeline bubble: measured %.1f%% of each step idle (mean over stages and steps after the "
                   "first), formula (p-1)/(V*m+p-1) = %.1f%%\n",
                   100 * bubble_measured, 100 * bubble_formula);
  if (rs->mdl.profile) report_profile(rs);
  if (saves.count > 0)
    progress_print(&rs->pg, "checkpoints: %d saved, %.2f GB, %.2f s writing, training waited %.2f s%s\n",
                   saves.count, saves.bytes / 1e9, saves.seconds, saves.blocking_seconds,
                   cfg->async_save ? " (async)" : "");
  metrics *mx = &rs->mx;
  metrics_begin(mx);
  metrics_str(mx, "event", "end");
  metrics_int(mx, "steps", cfg->steps);
  metrics_num(mx, "loss", last_loss);
  metrics_num(mx, "val_loss", last_val);
  metrics_num(mx, "tokens_per_s", tokens_per_s);
  metrics_num(mx, "mfu", mfu);
  metrics_num(mx, "train_s", train_seconds);
  metrics_int(mx, "mem_per_rank", (int64_t)mem_total);
  metrics_int(mx, "peak_rss", peak_rss);
  metrics_int(mx, "comm_bytes", (int64_t)comm_bytes);
  metrics_num(mx, "comm_s", comm_seconds);
  if (rs->grid.shape.pp > 1) {
    metrics_num(mx, "bubble", bubble_measured);
    metrics_num(mx, "bubble_formula", bubble_formula);
  }
  metrics_int(mx, "checkpoints", saves.count);
  metrics_num(mx, "checkpoint_blocking_s", saves.blocking_seconds);
  for (int r = 0; rs->mdl.profile && r < PROFILE_N_REGIONS; r++)
    for (int backward = 0; backward < 2; backward++) {
      char key[64];
      snprintf(key, sizeof key, "profile_%s_%s_ms", profile_region_name((profile_region)r), backward ? "bwd" : "fwd");
      metrics_num(mx, key, profile_ms_per_step(rs->mdl.profile, (profile_region)r, backward));
    }
  metrics_end(mx);
  metrics_close(mx);

  free(rs->inputs);
  free(rs->targets);
  free(rs->loaded_inputs);
  free(rs->loaded_targets);
  grad_sync_free(&rs->sync);
  if (cfg->zero >= 2) shard_sync_free(&rs->ssync);
  if (cfg->zero >= 3) param_gather_free(&rs->pgather);
  optimizer_free(&rs->opt);
  pipeline_free(&rs->pipe);
  pipeline_plan_free(&rs->plan);
  model_free(&rs->mdl);
  profile_free(rs->mdl.profile);
  dataset_close(&rs->train_ds);
  if (rs->separate_val) dataset_close(&rs->val_ds);
  grid_free(&rs->grid);
  free(rs);
  return stopped ? EXIT_STOPPED : EXIT_OK;
}

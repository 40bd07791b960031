/* report — see report.h. */
#include "report.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_info.h"
#include "fail.h"
#include "memory_tally.h"

#define MiB (1024.0 * 1024.0)


/* Per pipeline stage, what report_start prints: four memory kinds and the slots. */
enum { STAGE_WEIGHTS, STAGE_GRADS, STAGE_OPTIMIZER, STAGE_ACTIVATIONS, STAGE_SLOTS, STAGE_FIELDS };

/* What the backends allocated, as their owners claimed it (memory_tally.h):
 * counted, not computed, so that the formulas of doc/design.md are checked
 * against it (tests/zero_memory.sh, tests/activation_memory.sh). */
memory_report run_memory(const run *r) {
  (void)r; /* one run per process: the tally is the run's */
  return (memory_report){
      .weight_bytes = memory_tally_bytes(MEMORY_WEIGHTS),
      .grad_bytes = memory_tally_bytes(MEMORY_GRADS),
      .optimizer_bytes = memory_tally_bytes(MEMORY_OPTIMIZER),
      .activation_bytes = memory_tally_bytes(MEMORY_ACTIVATIONS),
      .other_bytes = memory_tally_bytes(MEMORY_OTHER),
      .offloaded_bytes = memory_tally_bytes(MEMORY_OFFLOADED),
  };
}

/* ---------------------------------------------------------------- start */

static void print_layout(const run *r) {
  const config *cfg = r->cfg;
  const model *m = &r->mdl;
  if (r->grid.shape.sp > 1)
    printf("sequence parallelism: %d ranks, %s, %s chunks of %d tokens\n", r->grid.shape.sp,
           cfg->sp_kind == SP_KIND_CHOICE_RING       ? "ring (LASP; ring attention)"
           : cfg->sp_kind == SP_KIND_CHOICE_ALLSCAN ? "all-scan (ZeCO; K and V gathered)"
           : cfg->sp_kind == SP_KIND_CHOICE_ULYSSES ? "ulysses (all-to-all to head shards)"
           : cfg->sp_kind == SP_KIND_CHOICE_TOKENRING ? "tokenring (queries travel, K and V stay; LASP ring for linear)"
                                                    : "all-gather (LASP-2; K and V gathered)",
           m->par.placement == SP_ZIGZAG ? "zig-zag" : "contiguous", cfg->seq_len / m->par.seq.n_chunks);
  printf("layout: %d ranks = dp %d x tp %d x pp %d x sp %d, ZeRO stage %d, backend %s\n", r->rt->world_size,
         r->grid.shape.dp, r->grid.shape.tp, r->grid.shape.pp, r->grid.shape.sp, cfg->zero, r->be->name);
  printf("compute: %s (rank 0); communication: %s\n", r->devices.device, r->devices.comm_path);
  if (comm_test_delay_us() > 0) /* a test setting: nobody should read a delayed run as a tuned one */
    printf("test-only link latency: every MPI message and collective completes >= %ld us after it started "
           "(TESSERA_TEST_COMM_DELAY_US)\n",
           comm_test_delay_us());
  if (r->grid.shape.pp > 1) {
    const pipeline_plan *plan = &r->plan;
    printf("pipeline: %s schedule, %d stages x %d chunks, %d micro-batches per step; layers per chunk:",
           pipe_schedule_name(plan->schedule.kind), plan->stages, plan->chunks_per_stage, plan->micro_batches);
    for (int g = 0; g < plan->stages * plan->chunks_per_stage; g++) printf("%s%d", g ? "," : " ", plan->layers_per_chunk[g]);
    printf("; bubble by formula %.1f%%\n",
           100 * pipe_schedule_bubble_formula(plan->stages, plan->micro_batches, plan->chunks_per_stage));
  }
  /* the model's own mode (what its activation slots keep), not the option's
   * text: tests/equiv_lib.sh checks that an option took effect */
  if (m->recompute != RECOMPUTE_NONE)
    printf("activation recomputation: %s\n", m->recompute == RECOMPUTE_FULL ? "full" : "selective");
}

/* Rank 0's opening lines. `stages`: STAGE_FIELDS numbers per pipeline stage. */
static void print_start(const run *r, const memory_report *mem, const int64_t *stages) {
  const config *cfg = r->cfg;
  const model_shape *shape = &r->shape;
  build_info_print(stdout);
  char description[MESSAGE_BYTES];
  model_shape_describe(shape, description, sizeof description);
  printf("model: %d layers, %d heads, d_model %d, vocab %d, seq_len %d: %.2fM parameters\n  %s\n", shape->n_layer,
         shape->n_head, shape->d_model, shape->vocab_size, shape->seq_len, (double)model_n_params(shape) / 1e6,
         description);
  print_layout(r);
  printf("batch: %d sequences x %d tokens = %lld tokens/step; micro-batch %d, %d accumulation steps per rank\n",
         cfg->batch_size, cfg->seq_len, (long long)cfg->batch_size * cfg->seq_len, cfg->micro_batch_size,
         r->accum_steps);
  printf("data: '%s' %llu tokens, %llu training windows, %llu validation windows%s\n", cfg->data,
         (unsigned long long)r->train_ds.n_tokens, (unsigned long long)r->loader.train.n_windows,
         (unsigned long long)r->loader.val.n_windows, r->separate_val ? " (from --val-data)" : "");
  printf("tokenizer: %s (%s)\n", r->data_tok.tok ? tokenizer_description(r->data_tok.tok) : "GPT-2 tokens, unread",
         r->data_tok.origin);
  const int p = r->grid.shape.pp, slots = r->mdl.acts.n_slots;
  printf("memory per rank%s: weights %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, "
         "activations %.1f MiB (%d micro-batch slot%s), other %.1f MiB\n", p > 1 ? " (pipeline stage 0)" : "",
         mem->weight_bytes / MiB, mem->grad_bytes / MiB, mem->optimizer_bytes / MiB, mem->activation_bytes / MiB,
         slots, slots == 1 ? "" : "s", mem->other_bytes / MiB);
  if (r->opt.offload) { /* where the master weights and moments went, and the RAM they hold there */
    char where[MESSAGE_BYTES];
    offload_state_describe(r->opt.offload, where, sizeof where);
    printf("%s; host RAM for it per rank: %.1f MiB (rank 0)\n", where, mem->offloaded_bytes / MiB);
  }
  for (int s = 1; s < p; s++) { /* stage 0 is the line above */
    const int64_t *st = stages + (size_t)s * STAGE_FIELDS;
    printf("  pipeline stage %d: weights %.1f MiB, gradients %.1f MiB, optimizer %.1f MiB, "
           "activations %.1f MiB (%lld slots)\n",
           s, st[STAGE_WEIGHTS] / MiB, st[STAGE_GRADS] / MiB, st[STAGE_OPTIMIZER] / MiB, st[STAGE_ACTIVATIONS] / MiB,
           (long long)st[STAGE_SLOTS]);
  }
  printf("peak for MFU: %.1f GFLOP/s over %d ranks (%s)\n", r->peak_flops_total / 1e9, r->rt->world_size,
         cfg->peak_tflops > 0             ? "configured"
         : r->be->kind == BACKEND_CUDA ? "measured bf16 GEMM; set peak_tflops to the GPU's dense bf16 figure"
                                       : "measured sgemm");
  fflush(stdout);
}

static void record_start(run *r, const memory_report *mem, const int64_t *stages) {
  const config *cfg = r->cfg;
  metrics *mx = &r->mx;
  const int p = r->grid.shape.pp;
  metrics_begin(mx);
  metrics_str(mx, "event", "start");
  metrics_str(mx, "version", build_info_version());
  metrics_str(mx, "backend", r->be->name);
  metrics_str(mx, "device", r->devices.device);
  metrics_str(mx, "comm", r->devices.nccl ? "nccl" : "mpi");
  metrics_int(mx, "world", r->rt->world_size);
  metrics_int(mx, "dp", r->grid.shape.dp);
  metrics_int(mx, "tp", r->grid.shape.tp);
  metrics_int(mx, "pp", p);
  metrics_int(mx, "sp", r->grid.shape.sp);
  if (comm_test_delay_us() > 0) metrics_int(mx, "test_comm_delay_us", comm_test_delay_us());
  metrics_int(mx, "micro_batches", r->plan.micro_batches);
  metrics_num(mx, "bubble_formula",
              pipe_schedule_bubble_formula(r->plan.stages, r->plan.micro_batches, r->plan.chunks_per_stage));
  metrics_int(mx, "activation_slots", r->mdl.acts.n_slots);
  metrics_int(mx, "zero", cfg->zero);
  metrics_int(mx, "params", model_n_params(&r->shape));
  metrics_int(mx, "params_local", (int64_t)r->mdl.layout.reg.n_local_total);
  metrics_int(mx, "tokens_per_step", (int64_t)cfg->batch_size * cfg->seq_len);
  metrics_num(mx, "peak_flops", r->peak_flops_total);
  metrics_int(mx, "mem_weights", (int64_t)mem->weight_bytes);
  metrics_int(mx, "mem_grads", (int64_t)mem->grad_bytes);
  metrics_int(mx, "mem_optimizer", (int64_t)mem->optimizer_bytes);
  metrics_int(mx, "mem_activations", (int64_t)mem->activation_bytes);
  metrics_int(mx, "mem_other", (int64_t)mem->other_bytes);
  metrics_int(mx, "mem_offloaded", (int64_t)mem->offloaded_bytes);
  metrics_str(mx, "offload_optimizer", cfg->offload_optimizer);
  if (p > 1) metrics_int_array(mx, "mem_activations_per_stage", stages + STAGE_ACTIVATIONS, (size_t)p, STAGE_FIELDS);
  metrics_end(mx);
}

/* Bytes and seconds of every group's collectives so far. */
static comm_totals comm_now(run *r) {
  comm *groups[GRID_N_GROUPS];
  grid_groups(&r->grid, groups);
  comm_totals t;
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    t.bytes[i] = comm_total_bytes(groups[i]);
    t.seconds[i] = comm_total_seconds(groups[i]);
  }
  return t;
}

void report_start(run *r, run_totals *totals) {
  memset(totals, 0, sizeof *totals);
  totals->last_loss = totals->last_val_loss = NAN;
  totals->memory = run_memory(r);
  /* stages hold different layers: every stage's figures, for rank 0 to print */
  const int p = r->grid.shape.pp;
  int64_t *stages = xcalloc((size_t)p * STAGE_FIELDS, sizeof *stages, "memory per stage");
  int64_t *mine = stages + (size_t)r->grid.pp_rank * STAGE_FIELDS;
  mine[STAGE_WEIGHTS] = (int64_t)totals->memory.weight_bytes;
  mine[STAGE_GRADS] = (int64_t)totals->memory.grad_bytes;
  mine[STAGE_OPTIMIZER] = (int64_t)totals->memory.optimizer_bytes;
  mine[STAGE_ACTIVATIONS] = (int64_t)totals->memory.activation_bytes;
  mine[STAGE_SLOTS] = r->mdl.acts.n_slots;
  if (p > 1) comm_allreduce_max_i64(&r->grid.pp, stages, (size_t)p * STAGE_FIELDS);
  char hosts[512];
  const int n_hosts = runtime_describe_hosts(r->rt, hosts, sizeof hosts);
  if (r->rt->world_rank == 0) {
    print_start(r, &totals->memory, stages);
    if (n_hosts > 1) printf("hosts: %d = %s\n", n_hosts, hosts); /* a job on one host: nothing to say */
  }
  record_start(r, &totals->memory, stages);
  free(stages);
  totals->comm_before = comm_now(r);
}

void report_mark_comm(run *r, run_totals *totals) { totals->comm_before = comm_now(r); }

/* ---------------------------------------------------------------- steps */

void report_step(run *r, run_totals *totals, int64_t step, const step_result *res) {
  const config *cfg = r->cfg;
  totals->train_seconds += res->seconds;
  totals->last_loss = res->loss;
  totals->steps_run++;
  /* the bubble of the steps after the first (warm-up), or of the only one */
  if (step > r->resumed_step + 1 || run_last_step(r) == r->resumed_step + 1)
    totals->bubble_sum += res->bubble, totals->bubble_steps++;
  const comm_totals after = comm_now(r), *before = &totals->comm_before;
  const double tokens = (double)cfg->batch_size * cfg->seq_len;
  const double tokens_per_s = tokens / res->seconds;
  const double mfu = model_flops_per_token(&r->shape, cfg->seq_len) * tokens_per_s / r->peak_flops_total;
  /* the first, every log_every-th and the last step; a stopped run's last step is its final line anyway */
  if (step == r->resumed_step + 1 || step % cfg->log_every == 0 || step == run_last_step(r))
    progress_print(&r->pg,
                 "step %5lld/%lld | loss %.4f | lr %.3e | grad norm %.3f | %.0f tok/s | MFU %.1f%% | %.0f ms\n",
                 (long long)step, (long long)cfg->steps, res->loss, res->lr, res->grad_norm, tokens_per_s,
                 100 * mfu, 1000 * res->seconds);
  progress_update(&r->pg, step, res->loss, tokens_per_s);
  metrics *mx = &r->mx;
  metrics_begin(mx);
  metrics_int(mx, "step", step);
  metrics_num(mx, "loss", res->loss);
  metrics_num(mx, "lr", res->lr);
  metrics_num(mx, "grad_norm", res->grad_norm);
  metrics_num(mx, "tokens_per_s", tokens_per_s);
  metrics_num(mx, "mfu", mfu);
  metrics_num(mx, "ms", 1000 * res->seconds);
  if (r->grid.shape.pp > 1) metrics_num(mx, "bubble", res->bubble);
  metrics_int(mx, "tokens", (int64_t)(step * tokens));
  /* per group: the payload this rank handed to collectives during the step */
  comm *groups[GRID_N_GROUPS];
  grid_groups(&r->grid, groups);
  uint64_t total_bytes = 0;
  double total_seconds = 0;
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    total_bytes += after.bytes[i] - before->bytes[i];
    total_seconds += after.seconds[i] - before->seconds[i];
  }
  metrics_int(mx, "comm_bytes", (int64_t)total_bytes);
  metrics_num(mx, "comm_s", total_seconds);
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    if (groups[i]->size == 1 || after.bytes[i] == before->bytes[i]) continue;
    char key[40];
    snprintf(key, sizeof key, "comm_bytes_%s", groups[i]->name);
    metrics_int(mx, key, (int64_t)(after.bytes[i] - before->bytes[i]));
  }
  metrics_end(mx);
}

void report_validation(run *r, run_totals *totals, int64_t step, double val_loss) {
  totals->last_val_loss = val_loss;
  if (isnan(val_loss)) return;
  progress_print(&r->pg, "step %5lld | val loss %.4f\n", (long long)step, val_loss);
  metrics_begin(&r->mx);
  metrics_int(&r->mx, "step", step);
  metrics_num(&r->mx, "val_loss", val_loss);
  metrics_end(&r->mx);
}

void report_checkpoint(run *r, run_totals *totals, const checkpoint_stats *st, const char *where) {
  const double seconds = st->seconds > 0 ? st->seconds : 1e-9;
  progress_print(&r->pg,
                 "checkpoint: step %lld, %.1f MB in %.2f s (%.2f GB/s)%s: staging %.2f s, writing %.2f s, "
                 "flush and rename %.2f s\n",
                 (long long)st->step, st->bytes / 1e6, st->seconds, st->bytes / 1e9 / seconds, where,
                 st->stage_seconds, st->write_seconds, st->sync_seconds);
  metrics_begin(&r->mx);
  metrics_int(&r->mx, "step", st->step);
  metrics_num(&r->mx, "checkpoint_bytes", st->bytes);
  metrics_num(&r->mx, "checkpoint_s", st->seconds);
  metrics_num(&r->mx, "checkpoint_blocking_s", st->blocking_seconds);
  metrics_num(&r->mx, "checkpoint_stage_s", st->stage_seconds);
  metrics_num(&r->mx, "checkpoint_write_s", st->write_seconds);
  metrics_num(&r->mx, "checkpoint_sync_s", st->sync_seconds);
  metrics_end(&r->mx);
  totals->saves++;
  totals->save_bytes += st->bytes;
  totals->save_seconds += st->seconds;
  totals->save_blocking_seconds += st->blocking_seconds;
}

/* ---------------------------------------------------------------- end */

/* The end-of-run table: calls, MiB and seconds per group and collective. */
static void report_communication(run *r) {
  comm *groups[GRID_N_GROUPS];
  grid_groups(&r->grid, groups);
  progress_print(&r->pg, "communication on rank 0 (group, collective: calls, MiB, seconds waiting):\n");
  for (int i = 0; i < GRID_N_GROUPS; i++) {
    if (groups[i]->size == 1) continue;
    for (int k = 0; k < COMM_N_KINDS; k++) {
      const comm_counters *c = &groups[i]->counters;
      if (c->calls[k] == 0) continue;
      progress_print(&r->pg, "  %-6s %-15s %8llu calls %10.1f MiB %8.2f s\n", groups[i]->name,
                     comm_kind_name((comm_kind)k), (unsigned long long)c->calls[k], c->bytes[k] / MiB, c->seconds[k]);
    }
  }
}

/* The end-of-run profile (--profile): rank 0's time per region and step,
 * forward and backward (recomputation counts as backward). */
static void report_profile(run *r) {
  const profile *p = r->profile;
  if (profile_steps(p) == 0) {
    progress_print(&r->pg, "profile: needs 2 steps or more (the first warms up)\n");
    return;
  }
  const double covered = profile_covered_ms_per_step(p), wall = profile_wall_ms_per_step(p);
  progress_print(&r->pg, "time by region on rank 0 (%s; ms per step, mean over steps after the first):\n",
                 r->be->kind == BACKEND_CUDA ? "GPU stream time between events" : "wall clock");
  progress_print(&r->pg, "  %-16s %9s %9s %9s %6s\n", "region", "forward", "backward", "total", "share");
  for (int k = 0; k < PROFILE_N_REGIONS; k++) {
    const double f = profile_ms_per_step(p, (profile_region)k, false), b = profile_ms_per_step(p, (profile_region)k, true);
    if (f + b <= 0) continue;
    progress_print(&r->pg, "  %-16s %9.2f %9.2f %9.2f %5.1f%%\n", profile_region_name((profile_region)k), f, b, f + b,
                   covered > 0 ? 100 * (f + b) / covered : 0);
  }
  progress_print(&r->pg, "  %-16s %29.2f ms of a %.2f ms step\n", "covered", covered, wall);
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

/* The end numbers every report shows. */
typedef struct end_numbers {
  double tokens_per_s, mfu, comm_seconds, bubble_measured, bubble_formula;
  size_t memory_total;
  uint64_t comm_bytes;
  int64_t peak_rss;
} end_numbers;

static end_numbers end_numbers_of(run *r, const run_totals *t) {
  const config *cfg = r->cfg;
  end_numbers e = {0};
  const double tokens = (double)t->steps_run * cfg->batch_size * cfg->seq_len;
  e.tokens_per_s = t->train_seconds > 0 ? tokens / t->train_seconds : 0;
  e.mfu = model_flops_per_token(&r->shape, cfg->seq_len) * e.tokens_per_s / r->peak_flops_total;
  const memory_report *mem = &t->memory;
  e.memory_total = mem->weight_bytes + mem->grad_bytes + mem->optimizer_bytes + mem->activation_bytes + mem->other_bytes;
  const comm_totals comm_end = comm_now(r);
  for (int i = 0; i < GRID_N_GROUPS; i++) e.comm_bytes += comm_end.bytes[i], e.comm_seconds += comm_end.seconds[i];
  e.peak_rss = peak_resident_bytes();
  comm_allreduce_max_i64(&r->grid.world, &e.peak_rss, 1);
  e.bubble_formula = pipe_schedule_bubble_formula(r->plan.stages, r->plan.micro_batches, r->plan.chunks_per_stage);
  e.bubble_measured = t->bubble_steps ? t->bubble_sum / t->bubble_steps : 0;
  return e;
}

static void record_end(run *r, const run_totals *t, const end_numbers *e, int64_t final_step) {
  metrics *mx = &r->mx;
  metrics_begin(mx);
  metrics_str(mx, "event", "end");
  metrics_int(mx, "steps", final_step);                  /* where the run stands: the schedule's end, or the
                                                            step a signal stopped it after */
  metrics_int(mx, "steps_run", final_step - r->resumed_step); /* by this process (after a resume: fewer) */
  metrics_num(mx, "loss", t->last_loss);
  metrics_num(mx, "val_loss", t->last_val_loss);
  metrics_num(mx, "tokens_per_s", e->tokens_per_s);
  metrics_num(mx, "mfu", e->mfu);
  metrics_num(mx, "train_s", t->train_seconds);
  metrics_int(mx, "mem_per_rank", (int64_t)e->memory_total);
  metrics_int(mx, "peak_rss", e->peak_rss);
  metrics_int(mx, "comm_bytes", (int64_t)e->comm_bytes);
  metrics_num(mx, "comm_s", e->comm_seconds);
  if (r->grid.shape.pp > 1) {
    metrics_num(mx, "bubble", e->bubble_measured);
    metrics_num(mx, "bubble_formula", e->bubble_formula);
  }
  metrics_int(mx, "checkpoints", t->saves);
  metrics_num(mx, "checkpoint_blocking_s", t->save_blocking_seconds);
  for (int k = 0; r->profile && k < PROFILE_N_REGIONS; k++)
    for (int backward = 0; backward < 2; backward++) {
      char key[64];
      snprintf(key, sizeof key, "profile_%s_%s_ms", profile_region_name((profile_region)k), backward ? "bwd" : "fwd");
      metrics_num(mx, key, profile_ms_per_step(r->profile, (profile_region)k, backward));
    }
  metrics_end(mx);
}

void report_end(run *r, const run_totals *t, int64_t final_step) {
  const int64_t steps_done = final_step - r->resumed_step;
  const end_numbers e = end_numbers_of(r, t);
  report_communication(r);
  char elapsed_text[32];
  progress_format_duration(t->train_seconds, elapsed_text, sizeof elapsed_text);
  char val_text[32] = "n/a";
  if (!isnan(t->last_val_loss)) snprintf(val_text, sizeof val_text, "%.4f", t->last_val_loss);
  progress_print(&r->pg,
                 "done: %lld steps in %s | final loss %.4f | val loss %s | %.0f tok/s | MFU "
                 "%.1f%% | memory %.1f MiB/rank (peak resident %.1f MiB) | communicated %.1f MiB/rank, "
                 "%.2f s waiting\n",
                 (long long)steps_done, elapsed_text, t->last_loss, val_text, e.tokens_per_s, 100 * e.mfu,
                 e.memory_total / MiB, e.peak_rss / MiB, e.comm_bytes / MiB, e.comm_seconds);
  if (r->grid.shape.pp > 1)
    progress_print(&r->pg,
                   "pipeline bubble: measured %.1f%% of each step idle (mean over stages and steps after the "
                   "first), formula (p-1)/(V*m+p-1) = %.1f%%\n",
                   100 * e.bubble_measured, 100 * e.bubble_formula);
  if (r->profile) report_profile(r);
  if (t->saves > 0)
    progress_print(&r->pg, "checkpoints: %d saved, %.2f GB, %.2f s writing, training waited %.2f s%s\n", t->saves,
                   t->save_bytes / 1e9, t->save_seconds, t->save_blocking_seconds, r->cfg->async_save ? " (async)" : "");
  record_end(r, t, &e, final_step);
}

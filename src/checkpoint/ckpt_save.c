/* ckpt_save — the saver: staging the state in host memory at a step
 * boundary, choosing the writer, running the single writer on a background
 * thread for --async-save, and reporting each save once (checkpoint.h).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_names.h"
#include "ckpt_save_internal.h"
#include "clock.h"

/* Writes one byte per page, so the pages exist now rather than at the first
 * save (volatile: the compiler may not drop the stores). */
static void touch_pages(void *buffer, size_t n_bytes) {
  volatile char *bytes = buffer;
  for (size_t i = 0; i < n_bytes; i += 4096) bytes[i] = 0;
}

static float *staging_buffer(checkpoint_saver *s, size_t n_elems, const char *what) {
  float *buffer = xmalloc(n_elems * sizeof(float), what);
  touch_pages(buffer, n_elems * sizeof(float));
  s->staging_bytes += n_elems * sizeof(float);
  return buffer;
}

/* Allocated and touched once, when the run starts, and kept: no save pays
 * for fresh pages (the first-touch faults cost as much as the write itself
 * on the machine of doc/performance.md). The single writer's copy holds
 * every tp shard of every pipeline stage. */
static void allocate_staging(checkpoint_saver *s) {
  const size_t n = s->m->layout.reg.n_local_total, n_whole = s->whole.n_local_total;
  const int tp = s->g->shape.tp;
  const bool gathers = s->single_writer && s->first_replica && (tp > 1 || s->g->shape.pp > 1);
  for (int st = 0; st < OPT_N_STATES; st++) {
    s->state[st] = staging_buffer(s, n, "checkpoint staging");
    s->shards[st] = s->state[st]; /* one tp shard, one stage: the writer's view is its own state */
    if (gathers && s->g->world_rank == 0)
      s->shards[st] = staging_buffer(s, n_whole * (size_t)tp, "checkpoint staging of every shard");
  }
  if (gathers && s->g->world_rank != 0 && tp > 1) {
    const size_t n_scratch = ckpt_largest_tensor(&s->whole) * (size_t)tp;
    s->scratch = xmalloc(n_scratch * sizeof(float), "checkpoint tp gather");
    touch_pages(s->scratch, n_scratch * sizeof(float));
  }
}

checkpoint_saver *checkpoint_saver_create(const ckpt_save_options *options, const ckpt_run_info *info, grid *g,
                                          model *m, optimizer *opt) {
  checkpoint_saver *s = xcalloc(1, sizeof *s, "checkpoint saver");
  s->options = *options;
  s->info = *info;
  s->g = g, s->m = m, s->opt = opt;
  s->single_writer = options->async || !ckpt_file_parallel_available();
  s->first_replica = g->dp_rank == 0 && g->sp_rank == 0;
  model_whole_registry(m, &s->whole);
  s->owner = xmalloc((size_t)s->whole.n_params * sizeof *s->owner, "checkpoint owners");
  model_owner_stages(m, &s->whole, s->owner); /* collective over pp */
  atomic_init(&s->written, false);
  allocate_staging(s);
  return s;
}

size_t checkpoint_saver_staging_bytes(const checkpoint_saver *s) { return s->staging_bytes; }

void checkpoint_saver_free(checkpoint_saver *s) {
  if (!s) return;
  ENSURE(!s->in_flight, "checkpoint saver freed with a save in flight");
  for (int st = 0; st < OPT_N_STATES; st++) {
    if (s->shards[st] != s->state[st]) free(s->shards[st]);
    free(s->state[st]);
  }
  free(s->scratch);
  free(s->owner);
  registry_free(&s->whole);
  free(s);
}

/* Collective: the state into host memory, as the writers need it. For the
 * single writer, each tensor's owning stage gathers its tp shards and hands
 * them to world rank 0 (state_gather.h). */
static void stage(checkpoint_saver *s) {
  /* Outside the first replica a rank writes nothing: with ZeRO it still
   * takes part in the gathers over dp×sp, without ZeRO it has nothing to
   * do (and its copy would take memory bandwidth and cores from the writer). */
  if (!s->first_replica && !s->opt->shard_group) return;
  optimizer_gather_all(s->opt, s->state);
  const grid *g = s->g;
  if (!s->single_writer || !s->first_replica || (g->shape.tp == 1 && g->shape.pp == 1)) return;
  ckpt_gather_shards(s->g, s->m, &s->whole, s->owner, OPT_N_STATES, s->state, s->shards, s->scratch);
}

static double tensor_bytes(const registry *reg) {
  double bytes = 0;
  for (int k = 0; k < reg->n_params; k++) bytes += OPT_N_STATES * (double)reg->params[k].n_logical * sizeof(float);
  return bytes;
}

static void *background_writer(void *arg) {
  checkpoint_saver *s = arg;
  sigset_t all; /* signals are the training thread's to handle */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  ckpt_write_single(s, &s->job);
  s->job.stats.seconds = now_seconds() - s->job.start_time;
  atomic_store(&s->written, true);
  return NULL;
}

void checkpoint_saver_finish(checkpoint_saver *s) {
  int64_t bad = 0;
  if (s->in_flight) {
    ENSURE(pthread_join(s->thread, NULL) == 0, "cannot join the checkpoint writer thread");
    s->in_flight = false;
    s->unreported = s->job.status == 0;
    s->report = s->job.stats;
    bad = s->job.status;
  }
  comm_allreduce_max_i64(&s->g->world, &bad, 1);
  if (bad) fail_collective((int)bad, "%s", s->job.err[0] ? s->job.err : "the background checkpoint save failed");
}

bool checkpoint_saver_poll(checkpoint_saver *s, checkpoint_stats *done) {
  if (s->in_flight && atomic_load(&s->written) && s->job.status == 0) {
    /* finished: join now (it is only returning) and report once */
    ENSURE(pthread_join(s->thread, NULL) == 0, "cannot join the checkpoint writer thread");
    s->in_flight = false;
    s->unreported = true;
    s->report = s->job.stats;
  }
  if (!s->unreported) return false;
  s->unreported = false;
  *done = s->report;
  return true;
}

/* The job of a save at `step`, and its directory (created by rank 0). */
static void begin_job(checkpoint_saver *s, int64_t step) {
  save_job *job = &s->job;
  memset(job, 0, sizeof *job);
  job->start_time = now_seconds();
  job->step = step;
  job->optimizer_step = s->opt->step;
  job->stats.step = step;
  job->stats.bytes = tensor_bytes(&s->whole);
  ckpt_step_file(job->final_path, sizeof job->final_path, s->options.dir, step);
  ckpt_step_tmp_file(job->tmp_path, sizeof job->tmp_path, s->options.dir, step);
  int64_t failed = 0;
  if (s->g->world_rank == 0 && mkdir(s->options.dir, 0755) != 0 && errno != EEXIST) failed = 1;
  comm_allreduce_max_i64(&s->g->world, &failed, 1);
  if (failed) fail_collective(EXIT_IO_ERROR, "cannot create checkpoint directory '%s'", s->options.dir);
}

checkpoint_stats checkpoint_save(checkpoint_saver *s, int64_t step) {
  grid *g = s->g;
  checkpoint_saver_finish(s); /* one save at a time; its report stays for poll */
  begin_job(s, step);
  save_job *job = &s->job;
  stage(s);
  job->stats.stage_seconds = now_seconds() - job->start_time;

  if (s->options.async) {
    job->stats.blocking_seconds = job->stats.stage_seconds;
    if (g->world_rank == 0) {
      atomic_store(&s->written, false);
      ENSURE(pthread_create(&s->thread, NULL, background_writer, s) == 0, "cannot start the checkpoint writer thread");
      s->in_flight = true;
    }
    checkpoint_stats staged = job->stats;
    staged.seconds = staged.blocking_seconds = staged.stage_seconds;
    return staged;
  }
  if (s->single_writer) {
    if (g->world_rank == 0) ckpt_write_single(s, job);
  } else {
    ckpt_write_collective(s, job);
  }
  comm_phase_wait(&g->world, "checkpoint save"); /* rank 0 writes (one writer) or syncs and renames */
  int64_t status = job->status;
  comm_allreduce_max_i64(&g->world, &status, 1);
  if (status) fail_collective((int)status, "%s", job->err[0] ? job->err : "a rank could not write the checkpoint");
  job->stats.seconds = job->stats.blocking_seconds = now_seconds() - job->start_time;
  return job->stats;
}

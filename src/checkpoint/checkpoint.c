/* checkpoint — see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "architecture.h"
#include "build_info.h"
#include "checkpoint_file.h"
#include "fail.h"
#include "progress.h"

#define FORMAT_VERSION 2

static const char *const state_names[3] = {"weight", "adam_m", "adam_v"};

/* The hyperslab of the logical tensor that tp shard `p` holds (padding
 * excluded: only the vocabulary is padded, along its first dimension, so
 * the valid rows are a prefix of the shard). */
static void shard_slab(const param_spec *p, int64_t start[4], int64_t count[4]) {
  for (int d = 0; d < p->n_dims; d++) start[d] = 0, count[d] = p->shape[d];
  if (p->tp_split_dim >= 0) {
    ENSURE(p->local_valid == p->local_shape[p->tp_split_dim] || p->tp_split_dim == 0,
           "padding of %s is not a prefix", p->name);
    start[p->tp_split_dim] = p->local_start;
    count[p->tp_split_dim] = p->local_valid;
  }
}

/* Checksum tiles follow the saving layout's tp shards, so each tile has one writer. */
static ckpt_tiling tiling_of(const param_spec *p) {
  const int sd = p->tp_split_dim;
  return ckpt_tiling_for(p->n_dims, p->shape, sd, sd >= 0 ? p->local_shape[sd] : 0);
}

/* A barrier that sleeps while it waits. Ranks with nothing to write would
 * otherwise wait in MPI, which polls (Open MPI spins, at best yielding the
 * core between polls) and, where ranks outnumber cores, takes CPU time from
 * the one rank that writes (doc/performance.md: 4 ranks on 2 cores). Polls
 * every half millisecond; with a watchdog set, after that long it hands the
 * wait to comm_wait, which reports a missing peer. */
static void quiet_barrier(comm *c) {
  float token = 0;
  comm_request req;
  comm_allreduce_sum_f32_start(c, &token, 1, &req);
  const struct timespec pause = {0, 500 * 1000};
  const double start = progress_now();
  for (;;) {
    comm_poke(&req, 1); /* MPI_Test: the request becomes MPI_REQUEST_NULL once complete */
    if (req.mpi == MPI_REQUEST_NULL || (c->watchdog_s > 0 && progress_now() - start > c->watchdog_s)) break;
    nanosleep(&pause, NULL);
  }
  comm_wait(&req);
}

/* ---------------------------------------------------------------- the job */

/* Everything a writer needs, captured at the step boundary so that the
 * background thread reads nothing the training loop changes. */
typedef struct save_job {
  int64_t step, optimizer_step;
  char final_path[4200], tmp_path[4300];
  double start_time;
  int status; /* 0, or the exit status of a failure described in err */
  char err[4600];
  checkpoint_stats stats;
} save_job;

struct checkpoint_saver {
  const config *cfg;
  grid *g;
  model *m;
  optimizer *opt;
  bool async;
  bool single_writer;  /* world rank 0 writes every region (serial HDF5 or async) */
  bool first_replica;  /* dp and sp rank 0: holds the tp shards that get written */
  registry whole;      /* every tensor of the model, as this rank's tp would shard it */
  int *owner;          /* per tensor of `whole`: the pipeline stage that writes it */
  float *state[3];     /* this rank's tp shard of its stage, gathered over its ZeRO group */
  float *shards[3];    /* single writer: every tp shard of every stage; shard r of tensor k of
                        * `whole` at tp·offset + r·n_local */
  float *scratch;      /* other first-replica tp ranks: receive buffer of the tp gather */
  size_t staging_bytes;
  save_job job;
  pthread_t thread;
  bool in_flight;      /* a background write was started and not yet joined */
  atomic_bool written; /* set by the background thread when it is done */
  bool unreported;     /* `report` holds a finished background save poll has not returned yet */
  checkpoint_stats report;
};

/* the test-only crash point: TESSERA_FAULT_SAVE="RANK:STEP" */
static void maybe_inject_fault(const grid *g, int64_t step) {
  int fault_rank = -1;
  long long fault_step = -1;
  const char *fault = getenv("TESSERA_FAULT_SAVE");
  if (!fault || sscanf(fault, "%d:%lld", &fault_rank, &fault_step) != 2) return;
  if (fault_rank != g->world_rank || fault_step != step) return;
  fprintf(stderr, "tessera: rank %d: injected fault: dying in the save of step %lld\n", g->world_rank,
          (long long)step);
  fflush(stderr);
  _exit(9);
}

static void write_attributes(ckpt_file *f, const config *cfg, const grid *g, const save_job *job) {
  const int64_t step = job->step;
  ckpt_attr_write_str(f, "format", "tessera-checkpoint");
  ckpt_attr_write_i64(f, "format_version", FORMAT_VERSION);
  ckpt_attr_write_str(f, "tessera_version", build_info_version());
  ckpt_attr_write_i64(f, "step", step);
  ckpt_attr_write_i64(f, "tokens", step * (int64_t)cfg->batch_size * cfg->seq_len);
  ckpt_attr_write_i64(f, "data_position", step * (int64_t)cfg->batch_size);
  ckpt_attr_write_i64(f, "seed", cfg->seed);
  const model_shape shape = architecture_from_config(cfg);
  architecture_write(f, &shape);
  ckpt_attr_write_i64(f, "optimizer_step", job->optimizer_step);
  ckpt_attr_write_f64(f, "beta1", cfg->beta1);
  ckpt_attr_write_f64(f, "beta2", cfg->beta2);
  ckpt_attr_write_f64(f, "adam_eps", cfg->adam_eps);
  ckpt_attr_write_f64(f, "weight_decay", cfg->weight_decay);
  ckpt_attr_write_f64(f, "grad_clip", cfg->grad_clip);
  ckpt_attr_write_f64(f, "lr", cfg->lr);
  ckpt_attr_write_f64(f, "min_lr", cfg->min_lr);
  ckpt_attr_write_i64(f, "warmup_steps", cfg->warmup_steps);
  ckpt_attr_write_i64(f, "total_steps", cfg->steps);
  ckpt_attr_write_i64(f, "batch_size", cfg->batch_size);
  ckpt_attr_write_i64(f, "saved_world", g->world_size);
  ckpt_attr_write_i64(f, "saved_tp", g->shape.tp);
  ckpt_attr_write_i64(f, "saved_dp", g->shape.dp);
  ckpt_attr_write_i64(f, "saved_pp", g->shape.pp);
  ckpt_attr_write_i64(f, "saved_sp", g->shape.sp);
  ckpt_attr_write_i64(f, "saved_zero", cfg->zero);
}

/* Starts the kernel writing the file's dirty pages to disk without waiting,
 * so the final fsync finds little left to do (Linux; elsewhere a no-op). */
static void start_writeback(int fd) {
#ifdef SYNC_FILE_RANGE_WRITE
  if (fd >= 0) sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
#else
  (void)fd;
#endif
}

/* Rank 0, after the file is closed: on disk, renamed into place, `latest`
 * pointed at it, old checkpoints pruned. Returns 0 or fills job->err. */
static void prune_checkpoints(const char *dir, int keep);
static int put_in_place(const config *cfg, save_job *job, int fd) {
  int failed = fd < 0 || fsync(fd) != 0;
  if (fd >= 0) close(fd);
  char latest_tmp[4300], latest[4200];
  snprintf(latest_tmp, sizeof latest_tmp, "%s/.latest.tmp", cfg->save_dir);
  snprintf(latest, sizeof latest, "%s/latest", cfg->save_dir);
  FILE *lf = NULL;
  if (failed || rename(job->tmp_path, job->final_path) != 0 || !(lf = fopen(latest_tmp, "w")) ||
      fprintf(lf, "step_%08lld.h5\n", (long long)job->step) < 0 || fclose(lf) != 0 ||
      rename(latest_tmp, latest) != 0) {
    snprintf(job->err, sizeof job->err, "cannot put checkpoint '%s' in place: %s", job->final_path,
             strerror(errno));
    return EXIT_IO_ERROR;
  }
  if (cfg->keep > 0) prune_checkpoints(cfg->save_dir, cfg->keep);
  return 0;
}

static double tensor_bytes(const registry *reg) {
  double bytes = 0;
  for (int k = 0; k < reg->n_params; k++) bytes += 3.0 * (double)reg->params[k].n_logical * sizeof(float);
  return bytes;
}

/* ------------------------------------------------------- single writer */

/* World rank 0 writes every region from s->shards; no MPI calls, so it can
 * run on the background thread. Fills job->status, err and stats. */
static void write_single(checkpoint_saver *s, save_job *job) {
  const registry *reg = &s->whole;
  const int tp = s->g->shape.tp;
  ckpt_file f;
  const double write_start = progress_now();
  job->status = ckpt_file_create(&f, job->tmp_path, MPI_COMM_NULL, job->err, sizeof job->err);
  if (job->status) return;
  const int fd = open(job->tmp_path, O_RDONLY);
  write_attributes(&f, s->cfg, s->g, job);
  uint32_t *crcs = NULL;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    if (k == reg->n_params / 2) maybe_inject_fault(s->g, job->step);
    const ckpt_tiling tiling = tiling_of(p);
    const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
    crcs = realloc(crcs, (size_t)n_slots * sizeof *crcs);
    ENSURE(crcs, "out of memory for the checksums of %s", p->name);
    const int n_shards = p->tp_split_dim >= 0 ? tp : 1;
    for (int st = 0; st < 3; st++) {
      char path[REGISTRY_NAME_BYTES + 32];
      snprintf(path, sizeof path, "params/%s/%s", p->name, state_names[st]);
      const int64_t file_offset = ckpt_tensor_create(&f, path, p->n_dims, p->shape);
      memset(crcs, 0, (size_t)n_slots * sizeof *crcs);
      for (int r = 0; r < n_shards; r++) {
        const param_spec shard = registry_shard_of_tp_rank(p, r);
        int64_t start[4], count[4];
        shard_slab(&shard, start, count);
        const float *data = s->shards[st] + (size_t)tp * p->offset + (size_t)r * p->n_local;
        ckpt_tensor_write(&f, path, file_offset, p->n_dims, p->shape, &tiling, start, count, data, true, crcs);
      }
      ckpt_tensor_write_checksums(&f, path, &tiling, crcs, n_slots);
    }
    start_writeback(fd);
  }
  free(crcs);
  ckpt_attr_write_i64(&f, "complete", 1); /* last: a file without it was never finished */
  ckpt_file_close(&f);
  const double sync_start = progress_now();
  job->stats.write_seconds = sync_start - write_start;
  job->status = put_in_place(s->cfg, job, fd);
  job->stats.sync_seconds = progress_now() - sync_start;
}

static void *background_writer(void *arg) {
  checkpoint_saver *s = arg;
  sigset_t all; /* signals are the training thread's to handle */
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, NULL);
  write_single(s, &s->job);
  s->job.stats.seconds = progress_now() - s->job.start_time;
  atomic_store(&s->written, true);
  return NULL;
}

/* ------------------------------------------------------- collective writer */

/* Parallel HDF5: the first replica's tp ranks write their own shards. Every
 * rank creates every dataset (collective metadata) and takes part in the
 * collective writes of the shards that are not one run of the file (tp
 * splits behind a leading dimension); those come first. Then the writers
 * write the other tensors by the direct path, which needs no other rank,
 * while the rest wait in a barrier that sleeps: no per-tensor collective
 * makes them poll MPI while the writer works. */
static void write_collective(checkpoint_saver *s, save_job *job) {
  grid *g = s->g;
  const registry *reg = &s->whole;
  ckpt_file f;
  const double write_start = progress_now();
  int64_t bad = ckpt_file_create(&f, job->tmp_path, g->world.mpi, job->err, sizeof job->err) != 0;
  comm_allreduce_max_i64(&g->world, &bad, 1);
  if (bad) fail_collective(EXIT_IO_ERROR, "cannot create checkpoint file '%s'", job->tmp_path);
  const int fd = g->world_rank == 0 ? open(job->tmp_path, O_RDONLY) : -1;
  write_attributes(&f, s->cfg, g, job);
  /* every dataset created first, with its file offset; their tiles in one
   * table, so one reduction gathers the CRCs */
  int64_t *file_offsets = xmalloc((size_t)reg->n_params * 3 * sizeof *file_offsets, "checkpoint offsets");
  int64_t n_slots_total = 0;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    const ckpt_tiling tiling = tiling_of(p);
    n_slots_total += 3 * ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
    for (int st = 0; st < 3; st++) {
      char path[REGISTRY_NAME_BYTES + 32];
      snprintf(path, sizeof path, "params/%s/%s", p->name, state_names[st]);
      file_offsets[3 * k + st] = ckpt_tensor_create(&f, path, p->n_dims, p->shape);
    }
  }
  uint32_t *crcs = xcalloc((size_t)n_slots_total, sizeof *crcs, "checkpoint checksums");
  for (int direct = 0; direct < 2; direct++) {
    int64_t slot = 0;
    for (int k = 0; k < reg->n_params; k++) {
      const param_spec *p = &reg->params[k];
      if (direct && k == reg->n_params / 2) maybe_inject_fault(g, job->step);
      const ckpt_tiling tiling = tiling_of(p);
      const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
      /* the owning stage's first replica writes; a tensor every tp rank
       * holds whole is written by tp rank 0 only */
      const bool has_data = s->first_replica && s->owner[k] == g->pp_rank && (p->tp_split_dim >= 0 || g->tp_rank == 0);
      const param_spec *local = has_data ? registry_find(&s->m->reg, p->name) : NULL;
      int64_t start[4], count[4];
      shard_slab(p, start, count);
      for (int st = 0; st < 3; st++, slot += n_slots) {
        const int64_t file_offset = file_offsets[3 * k + st];
        if (ckpt_tensor_write_is_direct(&f, p->shape, &tiling, file_offset) != direct || (direct && !has_data))
          continue;
        char path[REGISTRY_NAME_BYTES + 32];
        snprintf(path, sizeof path, "params/%s/%s", p->name, state_names[st]);
        ckpt_tensor_write(&f, path, file_offset, p->n_dims, p->shape, &tiling, start, count,
                          local ? s->state[st] + local->offset : s->state[st], has_data, crcs + slot);
      }
      if (direct) start_writeback(fd);
    }
  }
  free(file_offsets);
  quiet_barrier(&g->world); /* the writers' direct writes */
  /* each tile has one writer and zeros elsewhere: the maximum is its CRC */
  int64_t *crcs_wide = xmalloc((size_t)n_slots_total * sizeof *crcs_wide, "checkpoint checksums");
  for (int64_t i = 0; i < n_slots_total; i++) crcs_wide[i] = crcs[i];
  comm_allreduce_max_i64(&g->world, crcs_wide, (size_t)n_slots_total);
  int64_t slot = 0;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    const ckpt_tiling tiling = tiling_of(p);
    const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
    for (int st = 0; st < 3; st++, slot += n_slots) {
      char path[REGISTRY_NAME_BYTES + 32];
      snprintf(path, sizeof path, "params/%s/%s", p->name, state_names[st]);
      for (int64_t i = 0; i < n_slots; i++) crcs[slot + i] = (uint32_t)crcs_wide[slot + i];
      ckpt_tensor_write_checksums(&f, path, &tiling, crcs + slot, n_slots);
    }
  }
  free(crcs);
  free(crcs_wide);
  ckpt_attr_write_i64(&f, "complete", 1); /* last: a file without it was never finished */
  ckpt_file_close(&f);
  comm_barrier(&g->world);
  const double sync_start = progress_now();
  job->stats.write_seconds = sync_start - write_start;
  if (g->world_rank == 0) job->status = put_in_place(s->cfg, job, fd);
  job->stats.sync_seconds = progress_now() - sync_start;
}

/* ---------------------------------------------------------------- saver */

/* Writes one byte per page, so the pages exist now rather than at the first
 * save (volatile: the compiler may not drop the stores). */
static void touch_pages(void *buffer, size_t n_bytes) {
  volatile char *bytes = buffer;
  for (size_t i = 0; i < n_bytes; i += 4096) bytes[i] = 0;
}

/* Allocated and touched once, when the run starts, and kept: no save pays
 * for fresh pages (the first-touch faults cost as much as the write itself
 * on the machine of doc/performance.md). The single writer's copy holds
 * every tp shard of every pipeline stage. */
static void allocate_staging(checkpoint_saver *s) {
  const size_t n = s->m->reg.n_local_total, n_whole = s->whole.n_local_total;
  const int tp = s->g->shape.tp;
  const bool gathers = s->single_writer && s->first_replica && (tp > 1 || s->g->shape.pp > 1);
  for (int st = 0; st < 3; st++) {
    s->state[st] = xmalloc(n * sizeof(float), "checkpoint staging");
    touch_pages(s->state[st], n * sizeof(float));
    s->staging_bytes += n * sizeof(float);
    s->shards[st] = s->state[st]; /* one tp shard, one stage: the writer's view is its own state */
    if (gathers && s->g->world_rank == 0) {
      s->shards[st] = xmalloc(n_whole * (size_t)tp * sizeof(float), "checkpoint staging of every shard");
      touch_pages(s->shards[st], n_whole * (size_t)tp * sizeof(float));
      s->staging_bytes += n_whole * (size_t)tp * sizeof(float);
    }
  }
  if (gathers && s->g->world_rank != 0 && tp > 1) {
    size_t largest = 0;
    for (int k = 0; k < s->whole.n_params; k++)
      if (s->whole.params[k].n_local > largest) largest = s->whole.params[k].n_local;
    s->scratch = xmalloc(largest * (size_t)tp * sizeof(float), "checkpoint tp gather");
    touch_pages(s->scratch, largest * (size_t)tp * sizeof(float));
  }
}

checkpoint_saver *checkpoint_saver_create(const config *cfg, grid *g, model *m, optimizer *opt) {
  checkpoint_saver *s = xcalloc(1, sizeof *s, "checkpoint saver");
  s->cfg = cfg, s->g = g, s->m = m, s->opt = opt;
  s->async = cfg->async_save;
  s->single_writer = s->async || !ckpt_file_parallel_available();
  s->first_replica = g->dp_rank == 0 && g->sp_rank == 0;
  model_whole_registry(m, &s->whole);
  s->owner = xmalloc((size_t)s->whole.n_params * sizeof *s->owner, "checkpoint owners");
  model_owner_stages(m, &s->whole, s->owner); /* collective over pp */
  atomic_init(&s->written, false);
  allocate_staging(s);
  return s;
}

size_t checkpoint_saver_staging_bytes(const checkpoint_saver *s) { return s->staging_bytes; }

/* Collective: the state into host memory, as the writers need it. For the
 * single writer, each tensor's owning stage gathers its tp shards (over tp)
 * and, if that stage is not world rank 0's, sends them to it over pp. */
static void stage(checkpoint_saver *s) {
  /* Outside the first replica a rank writes nothing: with ZeRO it still
   * takes part in the gathers over dp×sp, without ZeRO it has nothing to
   * do (and its copy would take memory bandwidth and cores from the writer). */
  if (!s->first_replica && !s->opt->shard_group) return;
  optimizer_gather_master(s->opt, s->state[0]); /* over dp×sp: the ZeRO ranges */
  optimizer_gather_moments(s->opt, s->state[1], s->state[2]);
  grid *g = s->g;
  const int tp = g->shape.tp;
  if (!s->single_writer || !s->first_replica || (tp == 1 && g->shape.pp == 1)) return;
  const bool writer = g->world_rank == 0;
  enum { STAGING_TAG = 1 }; /* one pair of ranks, messages in loop order */
  for (int k = 0; k < s->whole.n_params; k++) {
    const param_spec *w = &s->whole.params[k];
    const bool split = w->tp_split_dim >= 0;
    const size_t n_sent = split ? w->n_local * (size_t)tp : w->n_local;
    const param_spec *local = s->owner[k] == g->pp_rank ? registry_find(&s->m->reg, w->name) : NULL;
    for (int st = 0; st < 3; st++) {
      float *into = writer ? s->shards[st] + (size_t)tp * w->offset : s->scratch;
      if (local) {
        const float *mine = s->state[st] + local->offset;
        if (tp > 1 && split) comm_allgather_f32(&g->tp, mine, into, local->n_local);
        else if (writer) memcpy(into, mine, local->n_local * sizeof *into);
        if (s->owner[k] != 0 && g->tp_rank == 0)
          comm_send_f32(&g->pp, split && tp > 1 ? into : mine, n_sent, 0, STAGING_TAG);
      } else if (writer) {
        comm_recv_f32(&g->pp, into, n_sent, s->owner[k], STAGING_TAG);
      }
    }
  }
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

checkpoint_stats checkpoint_save(checkpoint_saver *s, int64_t step) {
  const config *cfg = s->cfg;
  grid *g = s->g;
  checkpoint_saver_finish(s); /* one save at a time; its report stays for poll */

  save_job *job = &s->job;
  memset(job, 0, sizeof *job);
  job->start_time = progress_now();
  job->step = step;
  job->optimizer_step = s->opt->step;
  job->stats.step = step;
  job->stats.bytes = tensor_bytes(&s->whole);
  snprintf(job->final_path, sizeof job->final_path, "%s/step_%08lld.h5", cfg->save_dir, (long long)step);
  snprintf(job->tmp_path, sizeof job->tmp_path, "%s/.step_%08lld.h5.tmp", cfg->save_dir, (long long)step);
  int64_t failed = 0;
  if (g->world_rank == 0 && mkdir(cfg->save_dir, 0755) != 0 && errno != EEXIST) failed = 1;
  comm_allreduce_max_i64(&g->world, &failed, 1);
  if (failed) fail_collective(EXIT_IO_ERROR, "cannot create checkpoint directory '%s'", cfg->save_dir);

  stage(s);
  job->stats.stage_seconds = progress_now() - job->start_time;

  if (s->async) {
    job->stats.blocking_seconds = job->stats.stage_seconds;
    if (g->world_rank == 0) {
      atomic_store(&s->written, false);
      ENSURE(pthread_create(&s->thread, NULL, background_writer, s) == 0,
             "cannot start the checkpoint writer thread");
      s->in_flight = true;
    }
    checkpoint_stats staged = job->stats;
    staged.seconds = staged.blocking_seconds = staged.stage_seconds;
    return staged;
  }
  if (s->single_writer) {
    if (g->world_rank == 0) write_single(s, job);
  } else {
    write_collective(s, job);
  }
  quiet_barrier(&g->world); /* rank 0 writes (one writer) or syncs and renames */
  int64_t status = job->status;
  comm_allreduce_max_i64(&g->world, &status, 1);
  if (status) fail_collective((int)status, "%s", job->err[0] ? job->err : "a rank could not write the checkpoint");
  job->stats.seconds = job->stats.blocking_seconds = progress_now() - job->start_time;
  return job->stats;
}

void checkpoint_saver_free(checkpoint_saver *s) {
  if (!s) return;
  ENSURE(!s->in_flight, "checkpoint saver freed with a save in flight");
  for (int st = 0; st < 3; st++) {
    if (s->shards[st] != s->state[st]) free(s->shards[st]);
    free(s->state[st]);
  }
  free(s->scratch);
  free(s->owner);
  registry_free(&s->whole);
  free(s);
}

/* Keeps the newest `keep` step_*.h5 files of dir. */
static void prune_checkpoints(const char *dir, int keep) {
  enum { MAX_FILES = 4096 };
  long long steps[MAX_FILES];
  int n = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && n < MAX_FILES) {
    long long step;
    char tail[8];
    if (sscanf(e->d_name, "step_%lld.h%7s", &step, tail) == 2 && strcmp(tail, "5") == 0)
      steps[n++] = step;
  }
  closedir(d);
  for (int i = 0; i < n; i++) {
    int newer = 0;
    for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
    if (newer >= keep) {
      char path[4400];
      snprintf(path, sizeof path, "%s/step_%08lld.h5", dir, steps[i]);
      if (remove(path) != 0) fprintf(stderr, "tessera: warning: could not remove old checkpoint %s\n", path);
    }
  }
}

/* ---------------------------------------------------------------- resume */

/* Whether path is a complete tessera checkpoint whose every tensor reads
 * back (checksums): the check `auto` applies before trusting a file. */
static int verify_file(const char *path, char *err, size_t err_bytes) {
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, err_bytes);
  if (status) return status;
  int64_t complete = 0, version = 0;
  char format[64] = "";
  if (ckpt_attr_read_str(&f, "format", format, sizeof format) != 0 || strcmp(format, "tessera-checkpoint") != 0) {
    snprintf(err, err_bytes, "'%s' is an HDF5 file but not a tessera checkpoint", path);
    ckpt_file_close(&f);
    return EXIT_IO_ERROR;
  }
  if (ckpt_attr_read_i64(&f, "format_version", &version) != 0 || version != FORMAT_VERSION) {
    snprintf(err, err_bytes, "checkpoint '%s' has format version %lld; this tessera reads version %d",
             path, (long long)version, FORMAT_VERSION);
    ckpt_file_close(&f);
    return EXIT_IO_ERROR;
  }
  if (ckpt_attr_read_i64(&f, "complete", &complete) != 0 || complete != 1) {
    snprintf(err, err_bytes, "checkpoint '%s' is incomplete (no `complete` marker): the save was interrupted", path);
    ckpt_file_close(&f);
    return EXIT_IO_ERROR;
  }
  ckpt_file_close(&f);
  return 0;
}

/* Newest step_*.h5 in dir that is complete, skipping `skip`; "" if none. */
static void newest_complete(const char *dir, const char *skip, char *out, size_t out_bytes) {
  out[0] = '\0';
  DIR *d = opendir(dir);
  if (!d) return;
  long long best = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    long long step;
    char tail[8];
    if (sscanf(e->d_name, "step_%lld.h%7s", &step, tail) != 2 || strcmp(tail, "5") != 0) continue;
    char path[4400], err[4400];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (step > best && strcmp(path, skip) != 0 && verify_file(path, err, sizeof err) == 0) {
      best = step;
      snprintf(out, out_bytes, "%s", path);
    }
  }
  closedir(d);
}

/* Resolves cfg->resume to a file path ("" = fresh start). Every rank runs it
 * on the same files and reaches the same answer. */
/* The file name DIR/latest holds, or "" when there is none. */
static void read_latest(const char *dir, char *name, size_t name_bytes) {
  char latest_file[4300];
  snprintf(latest_file, sizeof latest_file, "%s/latest", dir);
  name[0] = '\0';
  FILE *lf = fopen(latest_file, "r");
  if (!lf) return;
  if (!fgets(name, (int)name_bytes, lf)) name[0] = '\0';
  fclose(lf);
  name[strcspn(name, "\n")] = '\0';
}

int checkpoint_path_of(const char *given, char *path, size_t path_bytes, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(given, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(path, path_bytes, "%s", given);
    return 0;
  }
  char name[256];
  read_latest(given, name, sizeof name);
  if (!name[0]) {
    snprintf(err, err_bytes, "'%s' is a directory without a `latest` file: name a checkpoint file in it", given);
    return EXIT_USER_ERROR;
  }
  snprintf(path, path_bytes, "%s/%s", given, name);
  return 0;
}

static void resolve(const config *cfg, const grid *g, char *path, size_t path_bytes) {
  char err[4400];
  if (strcmp(cfg->resume, "auto") != 0) {
    int status = checkpoint_path_of(cfg->resume, path, path_bytes, err, sizeof err);
    if (!status) status = verify_file(path, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
    return;
  }
  if (!cfg->save_dir[0])
    fail_collective(EXIT_USER_ERROR, "--resume auto needs --save-dir DIR to look in");
  char name[256];
  read_latest(cfg->save_dir, name, sizeof name);
  char candidate[4600] = "";
  if (name[0]) {
    snprintf(candidate, sizeof candidate, "%s/%s", cfg->save_dir, name);
    int status = verify_file(candidate, err, sizeof err);
    if (status == 0) {
      snprintf(path, path_bytes, "%s", candidate);
      return;
    }
    if (g->world_rank == 0)
      fprintf(stderr, "tessera: warning: %s; looking for an older checkpoint\n", err);
  }
  newest_complete(cfg->save_dir, candidate, path, path_bytes);
}

int64_t checkpoint_resume(const config *cfg, grid *g, model *m, optimizer *opt) {
  /* ranks arrive at different times (their setup shares the cores): the
   * load's clock starts once all are here */
  quiet_barrier(&g->world);
  const double start_time = progress_now();
  char path[4600], err[4400];
  resolve(cfg, g, path, sizeof path);
  if (!path[0]) return 0;
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  err[0] = '\0';

  /* the model must match; the layout, batch and schedule may change */
  model_shape saved;
  if (architecture_read(&f, &saved, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  const model_shape now = architecture_from_config(cfg);
  char differences[4096] = "";
  architecture_differences(&saved, &now, differences, sizeof differences);
  if (differences[0])
    fail_collective(EXIT_USER_ERROR, "checkpoint '%s' holds a different model: %s", path, differences);

  /* Who reads what. The dp×sp replicas of this rank's tp shard need the
   * same weights (and, without ZeRO, the same moments): each reads a
   * disjoint range (its ZeRO range when there is one) and an all-gather
   * shares them, so each byte is read and checked once per replica group
   * rather than once per rank. With ZeRO, the moments stay in the range
   * that was read. doc/performance.md has the numbers. */
  const registry *reg = &m->reg;
  const backend *be = opt->be;
  const size_t n = reg->n_local_total;
  comm *replicas = &g->dp_sp;
  const int n_replicas = replicas->size;
  int *counts = xmalloc((size_t)n_replicas * sizeof *counts, "checkpoint read ranges");
  int *displs = xmalloc((size_t)n_replicas * sizeof *displs, "checkpoint read ranges");
  if (opt->shard_group) {
    memcpy(counts, opt->shard_counts, (size_t)n_replicas * sizeof *counts);
    memcpy(displs, opt->shard_displs, (size_t)n_replicas * sizeof *displs);
  } else { /* the split ZeRO would use: the first n mod D ranges one longer */
    ENSURE(n / (size_t)n_replicas < (size_t)1 << 31, "a read range of %zu elements is too large", n / (size_t)n_replicas);
    for (int r = 0, displ = 0; r < n_replicas; r++) {
      counts[r] = (int)(n / (size_t)n_replicas + ((size_t)r < n % (size_t)n_replicas));
      displs[r] = displ;
      displ += counts[r];
    }
  }
  const size_t lo = (size_t)displs[replicas->rank], hi = lo + (size_t)counts[replicas->rank];
  ENSURE(lo == opt->shard_start || !opt->shard_group, "read range and ZeRO range differ");

  /* Destinations are the buffers the state lives in when the backend's
   * memory is host memory (the CPU backend): the model's fp32 weights and
   * the optimizer's ranges, all touched already, so no fresh pages are
   * faulted in (on the machine of doc/performance.md first touches cost
   * more than the read itself) and nothing is copied twice. */
  const bool into_model = be->act_elem_bytes == sizeof(float) && !m->windowed_params &&
                          be->host_pointer(m->params) != NULL;
  float *weights = /* every weight of this rank's tp shard */
      into_model ? be->host_pointer(m->params) : xmalloc(n * sizeof(float), "checkpoint weights");
  float *moments[2]; /* this rank's optimizer range of m and v */
  float *own[2] = {be->host_pointer(opt->m), be->host_pointer(opt->v)};
  for (int i = 0; i < 2; i++)
    moments[i] = own[i] ? own[i] : xmalloc(opt->shard_elems * sizeof(float), "checkpoint moments");

  int64_t bad = 0;
  double bytes_read = 0;
  /* in the file's order (each parameter's weight, adam_m, adam_v), so the
   * kernel's readahead sees one sequential stream */
  for (int k = 0; k < reg->n_params && !bad; k++) {
    const param_spec *p = &reg->params[k];
    const size_t a = p->offset > lo ? p->offset : lo;
    const size_t b = p->offset + p->n_local < hi ? p->offset + p->n_local : hi;
    if (a >= b) continue;
    int64_t start[4], count[4], n_valid = 1;
    shard_slab(p, start, count);
    for (int d = 0; d < p->n_dims; d++) n_valid *= count[d];
    /* valid elements are the shard's row-major prefix; padding (the
     * vocabulary's, past its end) is zero */
    const int64_t first = (int64_t)(a - p->offset), end = (int64_t)(b - p->offset);
    const int64_t valid_end = end < n_valid ? end : n_valid;
    for (int st = 0; st < 3 && !bad; st++) {
      /* the moments' buffer starts at the optimizer's range: the whole
       * buffer without ZeRO (read range [lo, hi) of it), the range with */
      float *into = st == 0 ? weights + lo : moments[st - 1] + (lo - opt->shard_start);
      char tensor[REGISTRY_NAME_BYTES + 32];
      snprintf(tensor, sizeof tensor, "params/%s/%s", p->name, state_names[st]);
      if (valid_end > first) {
        if (ckpt_tensor_read_part(&f, tensor, p->n_dims, start, count, first, valid_end - first,
                                  into + (a - lo), err, sizeof err))
          bad = 1;
        bytes_read += (double)(valid_end - first) * sizeof(float);
      }
      const int64_t pad_from = first > valid_end ? first : valid_end;
      if (end > pad_from) memset(into + (a - lo) + (pad_from - first), 0, (size_t)(end - pad_from) * sizeof(float));
    }
  }
  int64_t step = 0, optimizer_step = 0;
  if (!bad && (ckpt_attr_read_i64(&f, "step", &step) || ckpt_attr_read_i64(&f, "optimizer_step", &optimizer_step)))
    bad = 1, snprintf(err, sizeof err, "checkpoint '%s' lacks its step attributes", path);
  ckpt_file_close(&f);
  /* a damaged tile may lie in one rank's range only: the lowest failing
   * rank's message is the job's */
  quiet_barrier(&g->world);
  int64_t failing = bad ? g->world_size - g->world_rank : 0;
  comm_allreduce_max_i64(&g->world, &failing, 1);
  if (failing) {
    comm_broadcast(&g->world, err, sizeof err, g->world_size - (int)failing);
    fail_collective(EXIT_IO_ERROR, "%s", err[0] ? err : "a rank could not read the checkpoint");
  }
  if (n_replicas > 1) {
    comm_allgatherv_inplace_f32(replicas, weights, counts, displs);
    if (!opt->shard_group) /* without ZeRO every replica holds all the moments */
      for (int i = 0; i < 2; i++) comm_allgatherv_inplace_f32(replicas, moments[i], counts, displs);
  }
  if (!into_model) model_load_params(m, weights); /* into_model: they are in place already */
  optimizer_load_range(opt, weights + opt->shard_start, moments[0], moments[1], optimizer_step);
  if (!into_model) free(weights);
  for (int i = 0; i < 2; i++)
    if (!own[i]) free(moments[i]);
  free(counts);
  free(displs);
  const double seconds = progress_now() - start_time;
  const double bytes_loaded = (double)(n + 2 * opt->shard_elems) * sizeof(float);
  if (g->world_rank == 0)
    printf("resumed from %s at step %lld (loaded %.1f MB per rank in %.2f s, %.2f GB/s; %.1f MB of it read "
           "from the file, the rest from replicas)\n",
           path, (long long)step, bytes_loaded / 1e6, seconds, bytes_loaded / 1e9 / (seconds > 0 ? seconds : 1e-9),
           bytes_read / 1e6);
  return step;
}

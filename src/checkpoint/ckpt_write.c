/* ckpt_write — the two ways a checkpoint file gets written (checkpoint.h):
 * one writer (world rank 0, from the staged shards of every stage), or the
 * first replica's tp ranks together through parallel HDF5. Both write the
 * attributes first, every dataset with its per-tile CRC-32C, the `complete`
 * attribute last, and then put the file in place (fsync, rename, `latest`).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ckpt_names.h"
#include "ckpt_save_internal.h"
#include "ckpt_tokenizer.h"
#include "clock.h"

/* the test-only fault point: TESSERA_FAULT_SAVE="RANK:STEP" dies in the
 * save of STEP; "RANK:STEP:stall" stalls for 60 s in every save from STEP
 * on: a save too slow to end before mpirun's SIGKILL (tests/stop_signals.sh),
 * or a rank whose host is lost in the middle of a save
 * (tests/cluster_node_loss.sh cuts the host then) */
static void maybe_inject_fault(const grid *g, int64_t step) {
  int fault_rank = -1;
  long long fault_step = -1;
  char mode[8] = "";
  const char *fault = getenv("TESSERA_FAULT_SAVE");
  if (!fault || sscanf(fault, "%d:%lld:%7s", &fault_rank, &fault_step, mode) < 2) return;
  const bool stall = strcmp(mode, "stall") == 0;
  if (fault_rank != g->world_rank || (stall ? step < fault_step : step != fault_step)) return;
  fprintf(stderr, "tessera: rank %d: injected fault: %s in the save of step %lld\n", g->world_rank,
          stall ? "stalling for 60 s" : "dying", (long long)step);
  fflush(stderr);
  if (!stall) _exit(9);
  const double until = now_seconds() + 60; /* sleep() ends early at a signal: the stop's SIGTERM */
  while (now_seconds() < until) sleep(1);
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

/* A save that failed: its partial file goes (a full disk gets its space
 * back), `latest` and the earlier files were never touched. */
static void remove_partial(save_job *job) {
  if (unlink(job->tmp_path) != 0 && errno != ENOENT)
    fprintf(stderr, "tessera: warning: could not remove the partial checkpoint '%s': %s\n", job->tmp_path,
            strerror(errno));
}

/* The one message of a failed save: what failed (the file, the OS's
 * reason) and what is left. */
static void describe_failure(const checkpoint_saver *s, save_job *job, const char *what) {
  char latest[JOINED_PATH_BYTES];
  ckpt_latest_file(latest, sizeof latest, s->options.dir);
  snprintf(job->err, sizeof job->err, "checkpoint of step %lld not saved: %s; the partial file is removed, '%s' "
           "and the earlier checkpoints are unchanged", (long long)job->step, what, latest);
}

/* Rank 0, after the file is closed: on disk, renamed into place, `latest`
 * pointed at it, old checkpoints pruned. Returns 0 or fills job->err. */
static int put_in_place(const checkpoint_saver *s, save_job *job, int fd) {
  char what[MESSAGE_BYTES];
  if (fd < 0 || fsync(fd) != 0) {
    snprintf(what, sizeof what, "syncing '%s' to disk failed: %s", job->tmp_path, strerror(fd < 0 ? EBADF : errno));
    if (fd >= 0) close(fd);
    remove_partial(job);
    describe_failure(s, job, what);
    return EXIT_IO_ERROR;
  }
  close(fd);
  if (rename(job->tmp_path, job->final_path) != 0) {
    snprintf(what, sizeof what, "renaming the written file to '%s' failed: %s", job->final_path, strerror(errno));
    remove_partial(job);
    describe_failure(s, job, what);
    return EXIT_IO_ERROR;
  }
  if (ckpt_point_latest(s->options.dir, job->step) != 0) {
    /* the file is complete and in place; only the pointer is old */
    snprintf(job->err, sizeof job->err, "checkpoint '%s' is saved but '%s/latest' could not be pointed at it: %s",
             job->final_path, s->options.dir, strerror(errno));
    return EXIT_IO_ERROR;
  }
  if (s->options.keep > 0) ckpt_keep_newest(s->options.dir, s->options.keep);
  return 0;
}

/* ------------------------------------------------------- single writer */

void ckpt_write_single(checkpoint_saver *s, save_job *job) {
  const registry *reg = &s->whole;
  const int tp = s->g->shape.tp;
  ckpt_file f;
  const double write_start = now_seconds();
  job->status = ckpt_file_create(&f, job->tmp_path, MPI_COMM_NULL, job->err, sizeof job->err);
  if (job->status) return;
  ckpt_file_keep_write_errors(&f);
  const int fd = open(job->tmp_path, O_RDONLY);
  ckpt_write_run_attributes(&f, &s->info, s->g, job->step, job->optimizer_step);
  ckpt_write_tokenizer(&f, s->info.tokenizer);
  uint32_t *crcs = NULL;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    if (k == reg->n_params / 2) maybe_inject_fault(s->g, job->step);
    const ckpt_tiling tiling = ckpt_tiling_of(p);
    const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
    crcs = realloc(crcs, (size_t)n_slots * sizeof *crcs);
    ENSURE(crcs, "out of memory for the checksums of %s", p->name);
    const int n_shards = p->tp_split_dim >= 0 ? tp : 1;
    for (int st = 0; st < OPT_N_STATES; st++) {
      char path[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(path, p->name, (optimizer_state)st);
      const int64_t file_offset = ckpt_tensor_create(&f, path, p->n_dims, p->shape);
      memset(crcs, 0, (size_t)n_slots * sizeof *crcs);
      for (int r = 0; r < n_shards; r++) {
        const param_spec shard = registry_shard_of_tp_rank(p, r);
        int64_t start[4], count[4];
        ckpt_shard_slab(&shard, start, count);
        const float *data = s->shards[st] + (size_t)tp * p->offset + (size_t)r * p->n_local;
        ckpt_tensor_write(&f, path, file_offset, p->n_dims, p->shape, &tiling, start, count, data, true, crcs);
      }
      ckpt_tensor_write_checksums(&f, path, &tiling, crcs, n_slots);
    }
    start_writeback(fd);
  }
  free(crcs);
  ckpt_attr_write_i64(&f, "complete", 1); /* last: a file without it was never finished */
  if (ckpt_file_close(&f) != 0) { /* it drops the bytes of a failed file first */
    if (fd >= 0) close(fd);
    remove_partial(job);
    describe_failure(s, job, f.write_err);
    job->status = EXIT_IO_ERROR;
    return;
  }
  const double sync_start = now_seconds();
  job->stats.write_seconds = sync_start - write_start;
  job->status = put_in_place(s, job, fd);
  job->stats.sync_seconds = now_seconds() - sync_start;
}

/* ------------------------------------------------------- collective writer */

/* Every dataset created (collective metadata), its file offset kept;
 * returns the number of checksum slots of all of them. */
static int64_t create_datasets(const registry *reg, ckpt_file *f, int64_t *file_offsets) {
  int64_t n_slots_total = 0;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    const ckpt_tiling tiling = ckpt_tiling_of(p);
    n_slots_total += OPT_N_STATES * ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
    for (int st = 0; st < OPT_N_STATES; st++) {
      char path[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(path, p->name, (optimizer_state)st);
      file_offsets[OPT_N_STATES * k + st] = ckpt_tensor_create(f, path, p->n_dims, p->shape);
    }
  }
  return n_slots_total;
}

/* The tensors' bytes: first (direct = 0) the shards that are not one run of
 * the file, by HDF5's collective write that every rank joins; then (direct =
 * 1) the rest by the direct path, each by its writer alone. Each tile's CRC
 * lands in crcs at its slot. */
static void write_tensors(checkpoint_saver *s, save_job *job, ckpt_file *f, const int64_t *file_offsets, int fd,
                          uint32_t *crcs) {
  const grid *g = s->g;
  const registry *reg = &s->whole;
  for (int direct = 0; direct < 2; direct++) {
    int64_t slot = 0;
    for (int k = 0; k < reg->n_params; k++) {
      const param_spec *p = &reg->params[k];
      if (direct && k == reg->n_params / 2) maybe_inject_fault(g, job->step);
      const ckpt_tiling tiling = ckpt_tiling_of(p);
      const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
      /* the owning stage's first replica writes; a tensor every tp rank
       * holds whole is written by tp rank 0 only */
      const bool has_data = s->first_replica && s->owner[k] == g->pp_rank && (p->tp_split_dim >= 0 || g->tp_rank == 0);
      const param_spec *local = has_data ? registry_find(&s->m->layout.reg, p->name) : NULL;
      int64_t start[4], count[4];
      ckpt_shard_slab(p, start, count);
      for (int st = 0; st < OPT_N_STATES; st++, slot += n_slots) {
        const int64_t file_offset = file_offsets[OPT_N_STATES * k + st];
        if (ckpt_tensor_write_is_direct(f, p->shape, &tiling, file_offset) != direct || (direct && !has_data))
          continue;
        char path[CKPT_TENSOR_PATH_BYTES];
        ckpt_tensor_path(path, p->name, (optimizer_state)st);
        ckpt_tensor_write(f, path, file_offset, p->n_dims, p->shape, &tiling, start, count,
                          local ? s->state[st] + local->offset : s->state[st], has_data, crcs + slot);
      }
      if (direct) start_writeback(fd);
    }
  }
}

/* Each tile has one writer and zeros elsewhere: the maximum over the world
 * is its CRC, stored as the dataset's attributes. */
static void write_checksums(checkpoint_saver *s, ckpt_file *f, uint32_t *crcs, int64_t n_slots_total) {
  const registry *reg = &s->whole;
  int64_t *crcs_wide = xmalloc((size_t)n_slots_total * sizeof *crcs_wide, "checkpoint checksums");
  for (int64_t i = 0; i < n_slots_total; i++) crcs_wide[i] = crcs[i];
  comm_allreduce_max_i64(&s->g->world, crcs_wide, (size_t)n_slots_total);
  int64_t slot = 0;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    const ckpt_tiling tiling = ckpt_tiling_of(p);
    const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
    for (int st = 0; st < OPT_N_STATES; st++, slot += n_slots) {
      char path[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(path, p->name, (optimizer_state)st);
      for (int64_t i = 0; i < n_slots; i++) crcs[slot + i] = (uint32_t)crcs_wide[slot + i];
      ckpt_tensor_write_checksums(f, path, &tiling, crcs + slot, n_slots);
    }
  }
  free(crcs_wide);
}

/* Collective: when a rank's writes failed, the lowest such rank's message
 * reaches rank 0, which removes the partial file, and the job ends with one
 * message (the ranks all closed the file first). */
static void fail_if_any_writer_failed(checkpoint_saver *s, save_job *job, int status, const char *write_err, int fd) {
  grid *g = s->g;
  int64_t failing = status ? g->world_size - g->world_rank : 0;
  comm_allreduce_max_i64(&g->world, &failing, 1);
  if (!failing) return;
  char what[MESSAGE_BYTES];
  snprintf(what, sizeof what, "%s", write_err);
  comm_broadcast(&g->world, what, sizeof what, g->world_size - (int)failing);
  if (g->world_rank == 0) {
    if (fd >= 0) close(fd);
    remove_partial(job);
    describe_failure(s, job, what);
  }
  fail_collective(EXIT_IO_ERROR, "%s", job->err);
}

/* Every rank creates every dataset and takes part in the collective writes;
 * the writers then write the other tensors by the direct path, which needs
 * no other rank, while the rest wait in a barrier that sleeps: no
 * per-tensor collective makes them poll MPI while the writer works. */
void ckpt_write_collective(checkpoint_saver *s, save_job *job) {
  grid *g = s->g;
  const registry *reg = &s->whole;
  ckpt_file f;
  /* parallel HDF5's own collectives (create, close) are MPI calls the
   * watchdog cannot see: meet under it first, so that a rank lost before
   * the save is reported, not waited for there */
  comm_quiet_barrier(&g->world);
  const double write_start = now_seconds();
  int64_t bad = ckpt_file_create(&f, job->tmp_path, g->world.mpi, job->err, sizeof job->err) != 0;
  comm_allreduce_max_i64(&g->world, &bad, 1);
  if (bad) fail_collective(EXIT_IO_ERROR, "cannot create checkpoint file '%s'", job->tmp_path);
  ckpt_file_keep_write_errors(&f);
  const int fd = g->world_rank == 0 ? open(job->tmp_path, O_RDONLY) : -1;
  ckpt_write_run_attributes(&f, &s->info, g, job->step, job->optimizer_step);
  ckpt_write_tokenizer(&f, s->info.tokenizer); /* every rank: the dataset's creation is collective */
  int64_t *file_offsets = xmalloc((size_t)reg->n_params * OPT_N_STATES * sizeof *file_offsets, "checkpoint offsets");
  const int64_t n_slots_total = create_datasets(reg, &f, file_offsets);
  uint32_t *crcs = xcalloc((size_t)n_slots_total, sizeof *crcs, "checkpoint checksums");
  write_tensors(s, job, &f, file_offsets, fd, crcs);
  free(file_offsets);
  comm_phase_wait(&g->world, "checkpoint save"); /* the writers' direct writes */
  write_checksums(s, &f, crcs, n_slots_total);
  free(crcs);
  ckpt_attr_write_i64(&f, "complete", 1); /* last: a file without it was never finished */
  int64_t any_failed = ckpt_file_finish_bytes(&f);
  comm_allreduce_max_i64(&g->world, &any_failed, 1);
  if (any_failed) { /* every rank drops its bytes before any rank's close writes metadata */
    ckpt_file_drop(&f);
    comm_barrier(&g->world);
  }
  const int closed = ckpt_file_close(&f);
  fail_if_any_writer_failed(s, job, closed, f.write_err, fd);
  const double sync_start = now_seconds();
  job->stats.write_seconds = sync_start - write_start;
  if (g->world_rank == 0) job->status = put_in_place(s, job, fd);
  job->stats.sync_seconds = now_seconds() - sync_start;
}

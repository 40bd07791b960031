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

/* the test-only crash point: TESSERA_FAULT_SAVE="RANK:STEP" dies there;
 * "RANK:STEP:stall" stops there for good, as a rank whose host is lost
 * in the middle of a save (tests/cluster_node_loss.sh cuts the host then) */
static void maybe_inject_fault(const grid *g, int64_t step) {
  int fault_rank = -1;
  long long fault_step = -1;
  char mode[8] = "";
  const char *fault = getenv("TESSERA_FAULT_SAVE");
  if (!fault || sscanf(fault, "%d:%lld:%7s", &fault_rank, &fault_step, mode) < 2) return;
  if (fault_rank != g->world_rank || fault_step != step) return;
  const bool stall = strcmp(mode, "stall") == 0;
  fprintf(stderr, "tessera: rank %d: injected fault: %s in the save of step %lld\n", g->world_rank,
          stall ? "stalling" : "dying", (long long)step);
  fflush(stderr);
  while (stall) sleep(1); /* until the job is aborted */
  _exit(9);
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
static int put_in_place(const checkpoint_saver *s, save_job *job, int fd) {
  const int failed = fd < 0 || fsync(fd) != 0;
  if (fd >= 0) close(fd);
  if (failed || rename(job->tmp_path, job->final_path) != 0 || ckpt_point_latest(s->options.dir, job->step) != 0) {
    snprintf(job->err, sizeof job->err, "cannot put checkpoint '%s' in place: %s", job->final_path, strerror(errno));
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
  ckpt_file_close(&f);
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
  ckpt_file_close(&f);
  comm_barrier(&g->world);
  const double sync_start = now_seconds();
  job->stats.write_seconds = sync_start - write_start;
  if (g->world_rank == 0) job->status = put_in_place(s, job, fd);
  job->stats.sync_seconds = now_seconds() - sync_start;
}

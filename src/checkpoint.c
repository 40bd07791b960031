/* checkpoint — see checkpoint.h. */
#include "checkpoint.h"

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_info.h"
#include "checkpoint_file.h"
#include "fail.h"
#include "progress.h"

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

/* The spec tp rank r holds of p (for the serial writer, which writes every
 * tp rank's hyperslab). */
static param_spec spec_of_rank(const param_spec *p, int r) {
  param_spec shard = *p;
  if (p->tp_split_dim >= 0) {
    int64_t extent = p->local_shape[p->tp_split_dim];
    shard.local_start = extent * r;
    int64_t valid = p->shape[p->tp_split_dim] - shard.local_start;
    shard.local_valid = valid < 0 ? 0 : valid > extent ? extent : valid;
  }
  return shard;
}

static void write_attributes(ckpt_file *f, const config *cfg, const grid *g, const optimizer *opt,
                             int64_t step) {
  ckpt_attr_write_str(f, "format", "tessera-checkpoint");
  ckpt_attr_write_i64(f, "format_version", 1);
  ckpt_attr_write_str(f, "tessera_version", build_info_version());
  ckpt_attr_write_i64(f, "step", step);
  ckpt_attr_write_i64(f, "tokens", step * (int64_t)cfg->batch_size * cfg->seq_len);
  ckpt_attr_write_i64(f, "data_position", step * (int64_t)cfg->batch_size);
  ckpt_attr_write_i64(f, "seed", cfg->seed);
  ckpt_attr_write_i64(f, "n_layer", cfg->n_layer);
  ckpt_attr_write_i64(f, "n_head", cfg->n_head);
  ckpt_attr_write_i64(f, "d_model", cfg->d_model);
  ckpt_attr_write_i64(f, "vocab_size", cfg->vocab_size);
  ckpt_attr_write_i64(f, "seq_len", cfg->seq_len);
  ckpt_attr_write_i64(f, "optimizer_step", opt->step);
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
  ckpt_attr_write_i64(f, "saved_zero", cfg->zero);
}

checkpoint_stats checkpoint_save(const config *cfg, grid *g, model *m, optimizer *opt, int64_t step) {
  const double start_time = progress_now();
  const registry *reg = &m->reg;
  const size_t n = reg->n_local_total;
  float *state[3];
  for (int s = 0; s < 3; s++) state[s] = xmalloc(n * sizeof(float), "checkpoint staging");
  optimizer_gather_master(opt, state[0]); /* over dp×sp: the ZeRO ranges */
  optimizer_gather_moments(opt, state[1], state[2]);

  char final_path[4200], tmp_path[4300], err[4400];
  snprintf(final_path, sizeof final_path, "%s/step_%08lld.h5", cfg->save_dir, (long long)step);
  snprintf(tmp_path, sizeof tmp_path, "%s/.step_%08lld.h5.tmp", cfg->save_dir, (long long)step);
  int64_t failed = 0;
  if (g->world_rank == 0 && mkdir(cfg->save_dir, 0755) != 0 && errno != EEXIST) failed = 1;
  comm_allreduce_max_i64(&g->world, &failed, 1);
  if (failed) fail_collective(EXIT_IO_ERROR, "cannot create checkpoint directory '%s'", cfg->save_dir);

  const bool collective = ckpt_file_parallel_available();
  const bool first_replica = g->dp_rank == 0 && g->sp_rank == 0 && g->pp_rank == 0;
  const bool writes_file = collective || g->world_rank == 0;
  ckpt_file f;
  int status = 0;
  if (writes_file) status = ckpt_file_create(&f, tmp_path, collective ? g->world.mpi : MPI_COMM_NULL, err, sizeof err);
  int64_t bad = status != 0;
  comm_allreduce_max_i64(&g->world, &bad, 1);
  if (bad) fail_collective(EXIT_IO_ERROR, "cannot create checkpoint file '%s'", tmp_path);
  if (writes_file) write_attributes(&f, cfg, g, opt, step);

  double bytes = 0;
  float *gathered = NULL;
  /* test-only crash point (never set in production): TESSERA_FAULT_SAVE=
   * "RANK:STEP" kills world rank RANK halfway through the save of STEP */
  int fault_rank = -1;
  long long fault_step = -1;
  const char *fault = getenv("TESSERA_FAULT_SAVE");
  if (fault && sscanf(fault, "%d:%lld", &fault_rank, &fault_step) != 2) fault_rank = -1;
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    if (k == reg->n_params / 2 && fault_rank == g->world_rank && fault_step == step) {
      fprintf(stderr, "tessera: rank %d: injected fault: dying in the save of step %lld\n",
              g->world_rank, (long long)step);
      fflush(stderr);
      _exit(9);
    }
    for (int s = 0; s < 3; s++) {
      char path[REGISTRY_NAME_BYTES + 32];
      snprintf(path, sizeof path, "params/%s/%s", p->name, state_names[s]);
      const float *local = state[s] + p->offset;
      int64_t start[4], count[4];
      if (collective) {
        ckpt_tensor_create(&f, path, p->n_dims, p->shape);
        /* one writer per region: the first replica's tp ranks; a tensor every
         * tp rank holds whole is written by tp rank 0 only */
        bool has_data = first_replica && (p->tp_split_dim >= 0 || g->tp_rank == 0);
        shard_slab(p, start, count);
        ckpt_tensor_write(&f, path, p->n_dims, start, count, local, has_data);
      } else {
        /* serial HDF5: world rank 0 writes every tp rank's hyperslab */
        const int tp = g->shape.tp, n_shards = p->tp_split_dim >= 0 ? tp : 1;
        if (first_replica && n_shards > 1) {
          gathered = realloc(gathered, p->n_local * (size_t)tp * sizeof *gathered);
          ENSURE(gathered, "out of memory gathering %s", p->name);
          comm_allgather_f32(&g->tp, local, gathered, p->n_local);
        }
        if (g->world_rank == 0) {
          ckpt_tensor_create(&f, path, p->n_dims, p->shape);
          for (int r = 0; r < n_shards; r++) {
            param_spec shard = spec_of_rank(p, r);
            shard_slab(&shard, start, count);
            ckpt_tensor_write(&f, path, p->n_dims, start, count,
                              n_shards > 1 ? gathered + (size_t)r * p->n_local : local, true);
          }
        }
      }
      bytes += (double)p->n_logical * sizeof(float);
    }
  }
  free(gathered);
  if (writes_file) {
    ckpt_attr_write_i64(&f, "complete", 1); /* last: a file without it was never finished */
    ckpt_file_close(&f);
  }
  comm_barrier(&g->world);
  if (g->world_rank == 0) {
    /* on disk before it gets its final name */
    int fd = open(tmp_path, O_RDONLY);
    if (fd < 0 || fsync(fd) != 0) failed = 1;
    if (fd >= 0) close(fd);
    char latest_tmp[4300], latest[4200];
    snprintf(latest_tmp, sizeof latest_tmp, "%s/.latest.tmp", cfg->save_dir);
    snprintf(latest, sizeof latest, "%s/latest", cfg->save_dir);
    FILE *lf = NULL;
    if (rename(tmp_path, final_path) != 0 || !(lf = fopen(latest_tmp, "w")) ||
        fprintf(lf, "step_%08lld.h5\n", (long long)step) < 0 || fclose(lf) != 0 ||
        rename(latest_tmp, latest) != 0)
      failed = 1;
  }
  comm_allreduce_max_i64(&g->world, &failed, 1);
  if (failed) fail_collective(EXIT_IO_ERROR, "cannot put checkpoint '%s' in place", final_path);
  for (int s = 0; s < 3; s++) free(state[s]);
  return (checkpoint_stats){bytes, progress_now() - start_time};
}

/* ---------------------------------------------------------------- resume */

/* Whether path is a complete tessera checkpoint whose every tensor reads
 * back (checksums): the check `auto` applies before trusting a file. */
static int verify_file(const char *path, char *err, size_t err_bytes) {
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, err_bytes);
  if (status) return status;
  int64_t complete = 0;
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
static void resolve(const config *cfg, const grid *g, char *path, size_t path_bytes) {
  char err[4400];
  if (strcmp(cfg->resume, "auto") != 0) {
    int status = verify_file(cfg->resume, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
    snprintf(path, path_bytes, "%s", cfg->resume);
    return;
  }
  if (!cfg->save_dir[0])
    fail_collective(EXIT_USER_ERROR, "--resume auto needs --save-dir DIR to look in");
  char latest_file[4300], name[256] = "";
  snprintf(latest_file, sizeof latest_file, "%s/latest", cfg->save_dir);
  FILE *lf = fopen(latest_file, "r");
  if (lf) {
    if (!fgets(name, sizeof name, lf)) name[0] = '\0';
    fclose(lf);
    name[strcspn(name, "\n")] = '\0';
  }
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
  const double start_time = progress_now();
  double bytes_read = 0;
  char path[4600], err[4400];
  resolve(cfg, g, path, sizeof path);
  if (!path[0]) return 0;
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  err[0] = '\0';

  /* the model's shape must match; the layout, batch and schedule may change */
  const struct { const char *name; int64_t want; } shape[] = {
      {"n_layer", cfg->n_layer}, {"n_head", cfg->n_head}, {"d_model", cfg->d_model},
      {"vocab_size", cfg->vocab_size}, {"seq_len", cfg->seq_len}};
  char differences[1024] = "";
  for (size_t i = 0; i < sizeof shape / sizeof shape[0]; i++) {
    int64_t got = -1;
    if (ckpt_attr_read_i64(&f, shape[i].name, &got) != 0 || got != shape[i].want) {
      size_t used = strlen(differences);
      snprintf(differences + used, sizeof differences - used, "%s%s %lld in the checkpoint, %lld now",
               used ? "; " : "", shape[i].name, (long long)got, (long long)shape[i].want);
    }
  }
  if (differences[0])
    fail_collective(EXIT_USER_ERROR, "checkpoint '%s' holds a different model: %s", path, differences);

  const registry *reg = &m->reg;
  const size_t n = reg->n_local_total;
  float *state[3];
  for (int s = 0; s < 3; s++) state[s] = xcalloc(n, sizeof(float), "checkpoint staging");
  int64_t bad = 0;
  for (int k = 0; k < reg->n_params && !bad; k++) {
    const param_spec *p = &reg->params[k];
    int64_t start[4], count[4];
    shard_slab(p, start, count);
    for (int s = 0; s < 3 && !bad; s++) {
      char tensor[REGISTRY_NAME_BYTES + 32];
      snprintf(tensor, sizeof tensor, "params/%s/%s", p->name, state_names[s]);
      if (ckpt_tensor_read(&f, tensor, p->n_dims, start, count, state[s] + p->offset, err, sizeof err))
        bad = 1;
      int64_t n_read = 1;
      for (int d = 0; d < p->n_dims; d++) n_read *= count[d];
      bytes_read += (double)n_read * sizeof(float);
    }
  }
  int64_t step = 0, optimizer_step = 0;
  if (!bad && (ckpt_attr_read_i64(&f, "step", &step) || ckpt_attr_read_i64(&f, "optimizer_step", &optimizer_step)))
    bad = 1, snprintf(err, sizeof err, "checkpoint '%s' lacks its step attributes", path);
  ckpt_file_close(&f);
  comm_allreduce_max_i64(&g->world, &bad, 1);
  if (bad) fail_collective(EXIT_IO_ERROR, "%s", err[0] ? err : "a rank could not read the checkpoint");
  model_load_params(m, state[0]);
  optimizer_load(opt, state[0], state[1], state[2], optimizer_step);
  for (int s = 0; s < 3; s++) free(state[s]);
  const double seconds = progress_now() - start_time;
  if (g->world_rank == 0)
    printf("resumed from %s at step %lld (read %.1f MB per rank in %.2f s, %.2f GB/s)\n", path,
           (long long)step, bytes_read / 1e6, seconds, bytes_read / 1e9 / (seconds > 0 ? seconds : 1e-9));
  return step;
}

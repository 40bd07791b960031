/* ckpt_resume — loading a checkpoint into any layout (checkpoint.h).
 *
 * Who reads what: the dp×sp replicas of this rank's tp shard need the same
 * weights (and, without ZeRO, the same moments): each reads a disjoint
 * range — its ZeRO range, or without ZeRO the range the same split
 * (zero_partition) would give it — and an all-gather shares them, so each
 * byte is read and checked once per replica group rather than once per
 * rank. With ZeRO the moments stay in the range that was read.
 * doc/performance.md has the numbers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "ckpt_names.h"
#include "ckpt_tokenizer.h"
#include "ckpt_validate.h"
#include "clock.h"
#include "dataset_tokenizer.h"
#include "fail.h"
#include "weights_load.h"
#include "zero_partition.h"

/* Where a load puts what it reads. On the CPU backend they are the buffers
 * the state lives in (the model's fp32 weights and the optimizer's
 * ranges), all touched already, so no fresh pages are faulted in (on the
 * machine of doc/performance.md first touches cost more than the read
 * itself) and nothing is copied twice; elsewhere host copies. */
typedef struct load_target {
  bool into_model;
  float *weights;                 /* every weight of this rank's tp shard */
  float *moments[2];              /* this rank's optimizer range of m and v */
  bool own_moments[2];            /* moments[i] is the optimizer's own buffer */
} load_target;

static load_target load_target_of(model *m, optimizer *opt) {
  const backend *be = opt->be;
  load_target t = {0};
  t.into_model = be->act_elem_bytes == sizeof(float) && !m->w.windowed_params && be->host_pointer(m->w.params) != NULL;
  t.weights = t.into_model ? be->host_pointer(m->w.params)
                           : xmalloc(m->layout.reg.n_local_total * sizeof(float), "checkpoint weights");
  float *own[2] = {optimizer_moment_host(opt, OPT_ADAM_M), optimizer_moment_host(opt, OPT_ADAM_V)};
  for (int i = 0; i < 2; i++) {
    t.own_moments[i] = own[i] != NULL;
    t.moments[i] = own[i] ? own[i] : xmalloc(opt->part->n_own * sizeof(float), "checkpoint moments");
  }
  return t;
}

static void load_target_free(load_target *t) {
  if (!t->into_model) free(t->weights);
  for (int i = 0; i < 2; i++)
    if (!t->own_moments[i]) free(t->moments[i]);
}

/* Reads this rank's range [lo, hi) of the flat buffer, the first n_states
 * states (OPT_N_STATES: all; 1: the weights only), in the file's order (each
 * parameter's weight, adam_m, adam_v) so the kernel's readahead sees one
 * sequential stream. The moments' buffers begin at element moments_start of
 * the flat buffer. Returns 0, or 1 with err. */
static int read_range(ckpt_file *f, const registry *reg, int n_states, size_t moments_start, size_t lo, size_t hi,
                      load_target *t, double *bytes_read, char *err, size_t err_bytes) {
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    const size_t a = p->offset > lo ? p->offset : lo;
    const size_t b = p->offset + p->n_local < hi ? p->offset + p->n_local : hi;
    if (a >= b) continue;
    int64_t start[4], count[4], n_valid = 1;
    ckpt_shard_slab(p, start, count);
    for (int d = 0; d < p->n_dims; d++) n_valid *= count[d];
    /* valid elements are the shard's row-major prefix; padding (the
     * vocabulary's, past its end) is zero */
    const int64_t first = (int64_t)(a - p->offset), end = (int64_t)(b - p->offset);
    const int64_t valid_end = end < n_valid ? end : n_valid;
    for (int st = 0; st < n_states; st++) {
      /* the moments' buffer starts at the optimizer's range: the whole
       * buffer without ZeRO (read range [lo, hi) of it), the range with */
      float *into = st == OPT_MASTER ? t->weights + lo : t->moments[st - 1] + (lo - moments_start);
      char tensor[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(tensor, p->name, (optimizer_state)st);
      if (valid_end > first) {
        if (ckpt_tensor_read_part(f, tensor, p->n_dims, start, count, first, valid_end - first, into + (a - lo), err,
                                  err_bytes))
          return 1;
        *bytes_read += (double)(valid_end - first) * sizeof(float);
      }
      const int64_t pad_from = first > valid_end ? first : valid_end;
      if (end > pad_from) memset(into + (a - lo) + (pad_from - first), 0, (size_t)(end - pad_from) * sizeof(float));
    }
  }
  return 0;
}

/* The checkpoint's tokenizer against the data's (*tok; NULL: GPT-2 tokens
 * of an llm.c shard, files unnamed, which takes a GPT-2-sized one the
 * checkpoint carries). */
static void check_tokenizer(ckpt_file *f, const char *path, tokenizer **tok) {
  char err[MESSAGE_BYTES] = "";
  tokenizer *carried = ckpt_read_tokenizer(f, err, sizeof err);
  if (!carried) fail_collective(EXIT_IO_ERROR, "%s", err);
  if (!*tok) {
    if (tokenizer_kind_of(carried) != TOKENIZER_BYTES && tokenizer_vocab_size(carried) != 50257)
      fail_collective(EXIT_USER_ERROR, "checkpoint '%s' carries the tokenizer %s, the data holds GPT-2's tokens",
                      path, tokenizer_description(carried));
    if (tokenizer_kind_of(carried) != TOKENIZER_BYTES) *tok = carried, carried = NULL; /* kept for the run */
  } else if (!tokenizers_agree(carried, *tok)) {
    fail_collective(EXIT_USER_ERROR,
                    "checkpoint '%s' was trained on data of the tokenizer %s, the data now is of %s: resume "
                    "with data made by the checkpoint's tokenizer",
                    path, tokenizer_description(carried), tokenizer_description(*tok));
  }
  tokenizer_free(carried);
}

/* The file, with the model it holds checked against `shape` (the layout,
 * batch and schedule may change). */
static void open_checked(ckpt_file *f, const char *path, const model_shape *shape) {
  char err[MESSAGE_BYTES] = "";
  int status = ckpt_file_open(f, path, MPI_COMM_NULL, err, sizeof err);
  if (status) fail_collective(status, "%s", err);
  model_shape saved;
  if (ckpt_read_model_shape(f, &saved, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  char differences[MESSAGE_BYTES] = "";
  model_shape_differences(&saved, shape, differences, sizeof differences);
  if (differences[0]) fail_collective(EXIT_USER_ERROR, "checkpoint '%s' holds a different model: %s", path, differences);
}

int64_t checkpoint_resume(const char *resume, const char *save_dir, const model_shape *shape, int64_t batch_size,
                          tokenizer **tok, grid *g, model *m, optimizer *opt) {
  /* ranks arrive at different times (their setup shares the cores): the
   * load's clock starts once all are here */
  comm_quiet_barrier(&g->world);
  const double start_time = now_seconds();
  char path[JOINED_PATH_BYTES], err[MESSAGE_BYTES] = "";
  ckpt_resolve_resume(resume, save_dir, g->world_rank, path, sizeof path);
  if (!path[0]) return 0;
  ckpt_file f;
  open_checked(&f, path, shape);
  if (ckpt_is_weights_only(&f)) /* weights are all `tessera eval` needs; a resume needs the rest */
    fail_collective(EXIT_USER_ERROR,
                    "'%s' holds weights only (no optimizer state or step): start a run from it with --init-from %s, "
                    "not --resume", path, path);
  check_tokenizer(&f, path, tok);
  const int schedule_status = ckpt_check_schedule(&f, batch_size, err, sizeof err);
  if (schedule_status) fail_collective(schedule_status, "%s", err);
  if (ckpt_check_tensors(&f, &m->layout.reg, OPT_N_STATES, err, sizeof err) != 0)
    fail_collective(EXIT_IO_ERROR, "%s", err);

  const size_t n = m->layout.reg.n_local_total;
  comm *replicas = &g->dp_sp;
  /* the optimizer's ranges under ZeRO; the split ZeRO would use otherwise */
  zero_partition split;
  if (!opt->shard_group) zero_partition_make(&split, n, replicas->size, replicas->rank);
  const zero_partition *ranges = opt->shard_group ? opt->part : &split;
  const size_t lo = ranges->start, hi = lo + ranges->n_own;

  load_target t = load_target_of(m, opt);
  double bytes_read = 0;
  bool bad = read_range(&f, &m->layout.reg, OPT_N_STATES, opt->part->start, lo, hi, &t, &bytes_read, err,
                        sizeof err) != 0;
  int64_t step = 0, optimizer_step = 0;
  if (!bad && (ckpt_attr_read_i64(&f, "step", &step) || ckpt_attr_read_i64(&f, "optimizer_step", &optimizer_step)))
    bad = true, snprintf(err, sizeof err, "checkpoint '%s' lacks its step attributes", path);
  ckpt_file_close(&f);
  comm_phase_wait(&g->world, "checkpoint load"); /* ranks read different amounts */
  weights_fail_if_any_rank_failed(g, bad ? EXIT_IO_ERROR : 0, err, sizeof err, "a rank could not read the checkpoint");
  if (replicas->size > 1) {
    comm_allgatherv_inplace_f32(replicas, t.weights, ranges->counts, ranges->displs);
    if (!opt->shard_group) /* without ZeRO every replica holds all the moments */
      for (int i = 0; i < 2; i++) comm_allgatherv_inplace_f32(replicas, t.moments[i], ranges->counts, ranges->displs);
  }
  if (!t.into_model) model_load_params(m, t.weights); /* into_model: they are in place already */
  optimizer_load_range(opt, t.weights + opt->part->start, t.moments[0], t.moments[1], optimizer_step);
  load_target_free(&t);
  if (!opt->shard_group) zero_partition_free(&split);
  const double seconds = now_seconds() - start_time;
  const double bytes_loaded = (double)(n + 2 * opt->part->n_own) * sizeof(float);
  if (g->world_rank == 0)
    printf("resumed from %s at step %lld (loaded %.1f MB per rank in %.2f s, %.2f GB/s; %.1f MB of it read "
           "from the file, the rest from replicas)\n",
           path, (long long)step, bytes_loaded / 1e6, seconds, bytes_loaded / 1e9 / (seconds > 0 ? seconds : 1e-9),
           bytes_read / 1e6);
  return step;
}

/* checkpoint_load_weights' reader: the weights of [lo, hi), then the step. */
typedef struct weights_reader {
  ckpt_file *f;
  const char *path;
  int64_t step;
} weights_reader;

static int read_weights(void *ctx, const registry *reg, size_t lo, size_t hi, float *weights, char *err,
                        size_t err_bytes) {
  weights_reader *w = ctx;
  load_target t = {.weights = weights};
  double bytes_read = 0;
  if (read_range(w->f, reg, 1, 0, lo, hi, &t, &bytes_read, err, err_bytes) != 0) return EXIT_IO_ERROR;
  if (ckpt_attr_read_i64(w->f, "step", &w->step) == 0) return 0;
  snprintf(err, err_bytes, "checkpoint '%s' lacks its step attribute", w->path);
  return EXIT_IO_ERROR;
}

int64_t checkpoint_load_weights(const char *given, const model_shape *shape, grid *g, model *m) {
  char path[JOINED_PATH_BYTES];
  ckpt_resolve_resume(given, "", g->world_rank, path, sizeof path);
  ckpt_file f;
  open_checked(&f, path, shape);
  char err[MESSAGE_BYTES] = "";
  if (ckpt_check_tensors(&f, &m->layout.reg, 1, err, sizeof err) != 0) fail_collective(EXIT_IO_ERROR, "%s", err);
  /* as a resume without ZeRO: the even split of this tp shard's weights */
  weights_reader reader = {&f, path, 0};
  float *weights = weights_load(g, &m->layout.reg, NULL, read_weights, &reader, "a rank could not read the checkpoint");
  ckpt_file_close(&f);
  model_load_params(m, weights);
  free(weights);
  return reader.step;
}

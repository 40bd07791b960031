/* init_from — see init_from.h. */
#include "init_from.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "dataset_tokenizer.h"
#include "fail.h"
#include "model_io.h"
#include "weights_load.h"

/* This rank's elements [a, b) of the flat buffer, which lie in tensor p,
 * from p's logical tensor. */
static void keep_shard_part(const param_spec *p, const float *logical, size_t a, size_t b, float *flat) {
  if (p->tp_split_dim < 0) { /* held whole: the same order */
    memcpy(flat + a, logical + (a - p->offset), (b - a) * sizeof *flat);
    return;
  }
  for (size_t i = a - p->offset; i < b - p->offset; i++)
    flat[p->offset + i] = registry_is_padding(p, i) ? 0.0f : logical[registry_logical_index(p, i)];
}

/* Fills [lo, hi) of the flat buffer from the source (a weights_range_reader).
 * 0 or the exit status with err. */
static int read_range(void *ctx, const registry *reg, size_t lo, size_t hi, float *flat, char *err,
                      size_t err_bytes) {
  model_source *source = ctx;
  int64_t largest = 1;
  for (int k = 0; k < reg->n_params; k++)
    if (reg->params[k].n_logical > largest) largest = reg->params[k].n_logical;
  float *logical = xmalloc((size_t)largest * sizeof *logical, "one logical tensor");
  int status = 0;
  for (int k = 0; k < reg->n_params && !status; k++) {
    const param_spec *p = &reg->params[k];
    const size_t a = p->offset > lo ? p->offset : lo;
    const size_t b = p->offset + p->n_local < hi ? p->offset + p->n_local : hi;
    if (a >= b) continue;
    status = model_source_read(source, p->name, logical, err, err_bytes);
    if (!status) keep_shard_part(p, logical, a, b, flat);
  }
  free(logical);
  return status;
}

/* The source's tokenizer against the data's (*tok), as a resume checks a
 * checkpoint's. Foreign models often come without one: nothing to check. */
static void check_tokenizer(const char *path, const char *json, tokenizer **tok, int world_rank) {
  if (!json) return;
  char err[MESSAGE_BYTES];
  tokenizer *carried = tokenizer_from_json(json, strlen(json), err, sizeof err);
  if (!carried) {
    if (world_rank == 0)
      printf("note: the tokenizer of '%s' is not one tessera runs (%s); it is not compared with the data's\n", path,
             err);
    return;
  }
  if (!*tok) {
    if (tokenizer_vocab_size(carried) != 50257)
      fail_collective(EXIT_USER_ERROR, "--init-from '%s' carries the tokenizer %s, the data holds GPT-2's tokens",
                      path, tokenizer_description(carried));
    *tok = carried; /* kept for the run's samples */
    return;
  }
  if (!tokenizers_agree(carried, *tok))
    fail_collective(EXIT_USER_ERROR,
                    "--init-from '%s' carries the tokenizer %s, the data is of %s: train it on data made by its "
                    "tokenizer (tessera prep --tokenizer %s ...)",
                    path, tokenizer_description(carried), tokenizer_description(*tok), path);
  tokenizer_free(carried);
}

void model_init_from(const char *path, tokenizer **tok, grid *g, model *m, optimizer *opt) {
  comm_quiet_barrier(&g->world);
  const double start_time = now_seconds();
  char err[MESSAGE_BYTES] = "";
  int status = 0;
  model_source *source = model_source_open(path, &status, err, sizeof err);
  weights_fail_if_any_rank_failed(g, status, err, sizeof err, "a rank could not read the model to start from");
  check_tokenizer(path, model_source_tokenizer_json(source), tok, g->world_rank);

  /* under ZeRO each replica reads its own range of the optimizer's */
  float *weights = weights_load(g, &m->layout.reg, opt->shard_group ? opt->part : NULL, read_range, source,
                                "a rank could not read the model to start from");
  char description[128];
  snprintf(description, sizeof description, "%s", model_source_description(source));
  model_source_close(source);

  model_load_params(m, weights);
  float *zeros = xcalloc(opt->part->n_own ? opt->part->n_own : 1, sizeof *zeros, "fresh moments");
  optimizer_load_range(opt, weights + opt->part->start, zeros, zeros, 0);
  free(zeros);
  free(weights);
  if (g->world_rank == 0)
    printf("initialised from %s '%s' (weights only; fresh optimizer, step 0) in %.2f s\n", description, path,
           now_seconds() - start_time);
}

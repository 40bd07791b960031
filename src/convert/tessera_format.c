/* tessera_format — a tessera checkpoint as a model source (the `weight`
 * dataset of each parameter: a full checkpoint's master weights, or a
 * weights-only file's) and as a model sink: a weights-only checkpoint
 * (doc/checkpoint-format.md), every tensor whole with its CRC-32C tiles,
 * the tokenizer if one is given, `complete` last. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_config.h"
#include "checkpoint_file.h"
#include "ckpt_attributes.h"
#include "ckpt_dir.h"
#include "ckpt_names.h"
#include "ckpt_tokenizer.h"
#include "ckpt_validate.h"
#include "model_io_internal.h"
#include "param_layout.h"

typedef struct tessera_side {
  ckpt_file file;
  registry whole; /* the logical tensors, for their shapes */
} tessera_side;

/* ---------------------------------------------------------------- source */

static int source_read(model_source *s, const char *name, float *out, char *err, size_t err_bytes) {
  tessera_side *t = s->impl;
  const param_spec *p = registry_find(&t->whole, name);
  ENSURE(p, "tessera source: no tensor %s", name);
  char path[CKPT_TENSOR_PATH_BYTES];
  ckpt_tensor_path(path, name, OPT_MASTER);
  const int64_t start[4] = {0, 0, 0, 0};
  return ckpt_tensor_read(&t->file, path, p->n_dims, start, p->shape, out, err, err_bytes);
}

static void source_close(model_source *s) {
  tessera_side *t = s->impl;
  ckpt_file_close(&t->file);
  registry_free(&t->whole);
  free(t);
}

/* The tokenizer the checkpoint carries, as tokenizer.json text (none for bytes). */
static int read_tokenizer_json(model_source *s, ckpt_file *f, char *err, size_t err_bytes) {
  tokenizer *tok = ckpt_read_tokenizer(f, err, err_bytes);
  if (!tok) return EXIT_IO_ERROR;
  s->tokenizer_json = tokenizer_to_json(tok); /* NULL for the bytes tokenizer */
  tokenizer_free(tok);
  return 0;
}

int tessera_source_open(model_source *s, const char *given, char *err, size_t err_bytes) {
  char path[JOINED_PATH_BYTES];
  int status = checkpoint_path_of(given, path, sizeof path, err, err_bytes);
  if (status) return status;
  /* the format, its version and the `complete` marker */
  if ((status = ckpt_check_header(path, err, err_bytes)) != 0) return status;
  tessera_side *t = xcalloc(1, sizeof *t, "tessera source");
  if ((status = ckpt_file_open(&t->file, path, MPI_COMM_NULL, err, err_bytes)) != 0) {
    free(t);
    return status;
  }
  if (ckpt_read_model_shape(&t->file, &s->shape, err, err_bytes) != 0) status = EXIT_IO_ERROR;
  else status = read_tokenizer_json(s, &t->file, err, err_bytes);
  if (status) {
    ckpt_file_close(&t->file);
    free(t);
    return status;
  }
  registry_init(&t->whole, 0, 1);
  model_register(&t->whole, &s->shape, NULL);
  if ((status = ckpt_check_tensors(&t->file, &t->whole, 1, err, err_bytes)) != 0) {
    ckpt_file_close(&t->file);
    registry_free(&t->whole);
    free(t);
    return status;
  }
  snprintf(s->description, sizeof s->description, "tessera checkpoint%s",
           ckpt_is_weights_only(&t->file) ? " (weights only)" : "");
  s->impl = t;
  s->read = source_read;
  s->close = source_close;
  return 0;
}

/* ---------------------------------------------------------------- sink */

int tessera_sink_check(const model_shape *shape, char *err, size_t err_bytes) {
  (void)shape, (void)err, (void)err_bytes;
  return 0; /* the checkpoint holds every model tessera has */
}

static int sink_write(model_sink *s, const char *name, const float *data, char *err, size_t err_bytes) {
  tessera_side *t = s->impl;
  const param_spec *p = registry_find(&t->whole, name);
  ENSURE(p, "tessera sink: no tensor %s", name);
  char path[CKPT_TENSOR_PATH_BYTES];
  ckpt_tensor_path(path, name, OPT_MASTER);
  const ckpt_tiling tiling = ckpt_tiling_for(p->n_dims, p->shape, -1, 0);
  const int64_t n_slots = ckpt_tiling_slots(&tiling, p->n_dims, p->shape);
  uint32_t *crcs = xcalloc((size_t)n_slots, sizeof *crcs, "checksums");
  const int64_t start[4] = {0, 0, 0, 0};
  const int64_t file_offset = ckpt_tensor_create(&t->file, path, p->n_dims, p->shape);
  ckpt_tensor_write(&t->file, path, file_offset, p->n_dims, p->shape, &tiling, start, p->shape, data, true, crcs);
  ckpt_tensor_write_checksums(&t->file, path, &tiling, crcs, n_slots);
  free(crcs);
  (void)err, (void)err_bytes; /* HDF5 failures end the process through H5_CHECK */
  return 0;
}

static int sink_finish(model_sink *s, char *err, size_t err_bytes) {
  tessera_side *t = s->impl;
  ckpt_attr_write_i64(&t->file, "complete", 1); /* last: a file without it was never finished */
  ckpt_file_close(&t->file);
  registry_free(&t->whole);
  free(t);
  s->impl = NULL;
  const int fd = open(s->tmp_path, O_RDONLY);
  const bool ok = fd >= 0 && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  if (ok) return 0;
  snprintf(err, err_bytes, "cannot flush '%s': %s", s->tmp_path, strerror(errno));
  return EXIT_IO_ERROR;
}

static void sink_abandon(model_sink *s) {
  tessera_side *t = s->impl;
  if (!t) return;
  ckpt_file_close(&t->file);
  registry_free(&t->whole);
  free(t);
  s->impl = NULL;
}

int tessera_sink_create(model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes) {
  tokenizer *tok = NULL;
  if (tokenizer_json) {
    char why[MESSAGE_BYTES];
    tok = tokenizer_from_json(tokenizer_json, strlen(tokenizer_json), why, sizeof why);
    if (!tok) /* a tokenizer tessera cannot run is left out, not stored damaged */
      fprintf(stderr, "tessera: warning: the source's tokenizer.json is not stored in '%s': %s\n", s->path, why);
  }
  tessera_side *t = xcalloc(1, sizeof *t, "tessera sink");
  const int status = ckpt_file_create(&t->file, s->tmp_path, MPI_COMM_NULL, err, err_bytes);
  if (status) {
    tokenizer_free(tok);
    free(t);
    return status;
  }
  ckpt_write_weights_only_attributes(&t->file, &s->shape, PACKAGE_VERSION);
  if (tok) ckpt_write_tokenizer(&t->file, tok);
  tokenizer_free(tok);
  registry_init(&t->whole, 0, 1);
  model_register(&t->whole, &s->shape, NULL);
  s->impl = t;
  s->write = sink_write;
  s->finish = sink_finish;
  s->abandon = sink_abandon;
  return 0;
}

/* model_io_internal — what the formats' sources and sinks share with
 * model_io.c; not for the rest of tessera. Each format fills the function
 * pointers of a source or sink it opens or creates. */
#ifndef TESSERA_MODEL_IO_INTERNAL_H
#define TESSERA_MODEL_IO_INTERNAL_H

#include <stdint.h>

#include "fail.h"
#include "model_io.h"

/* A file inside a folder named by a user's path. */
#define MODEL_IO_FILE_BYTES (JOINED_PATH_BYTES + 64)

struct model_source {
  char path[JOINED_PATH_BYTES];
  char description[128];
  model_shape shape;
  char *tokenizer_json;  /* malloc'd, or NULL */
  void *impl;
  int (*read)(model_source *s, const char *name, float *out, char *err, size_t err_bytes);
  void (*close)(model_source *s); /* frees impl */
};

struct model_sink {
  char path[JOINED_PATH_BYTES];     /* where the result goes */
  char tmp_path[JOINED_PATH_BYTES]; /* where it is written: a file, or (hf) a folder */
  model_format format;
  model_shape shape;
  int n_written, n_expected;        /* tensors */
  void *impl;
  int (*write)(model_sink *s, const char *name, const float *data, char *err, size_t err_bytes);
  int (*finish)(model_sink *s, char *err, size_t err_bytes); /* everything flushed and closed; frees impl */
  void (*abandon)(model_sink *s);   /* closed unfinished; frees impl */
};

/* Each returns 0 or the exit status with err. */
int hf_source_open(model_source *s, const char *dir, char *err, size_t err_bytes);
int llmc_source_open(model_source *s, const char *path, char *err, size_t err_bytes);
int tessera_source_open(model_source *s, const char *path, char *err, size_t err_bytes);

/* Whether the format holds the model: 0, or EXIT_USER_ERROR with err. */
int hf_sink_check(const model_shape *shape, char *err, size_t err_bytes);
int llmc_sink_check(const model_shape *shape, char *err, size_t err_bytes);
int tessera_sink_check(const model_shape *shape, char *err, size_t err_bytes);
/* Create the output at s->tmp_path (s->shape set). */
int hf_sink_create(model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes);
int llmc_sink_create(model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes);
int tessera_sink_create(model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes);

/* GPT-2's and llm.c's norm epsilon. */
#define MODEL_IO_GPT2_NORM_EPS 1e-5

/* "layers.3.attn.wqkv" -> layer 3, suffix "attn.wqkv"; other names ->
 * layer −1, suffix the name. */
int model_io_split_name(const char *name, const char **suffix);

/* Whether the model is GPT-2's kind (LayerNorm, GELU, learned positions,
 * biases, softmax attention in every layer): 0, or EXIT_USER_ERROR with
 * err saying what `target` cannot hold. */
int model_io_check_gpt2(const model_shape *shape, const char *target, char *err, size_t err_bytes);

/* out [cols, rows] = in [rows, cols] transposed (blocked for the caches). */
void model_io_transpose(const float *in, int64_t rows, int64_t cols, float *out);

/* Reads a whole small file (config.json, tokenizer.json) into a malloc'd,
 * NUL-terminated string: 0; −1 when it does not exist; EXIT_IO_ERROR with
 * err when it cannot be read. */
int model_io_read_text(const char *path, char **text, size_t *n_bytes, char *err, size_t err_bytes);

#endif

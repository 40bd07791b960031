/* model_io — see model_io.h: the format of a path, opening a source,
 * creating, committing and aborting a sink, and the conversion loop. */
#include "model_io.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_io_internal.h"
#include "param_layout.h"
#include "registry.h"

static const char *const format_names[] = {"hf", "llmc", "tessera"};

const char *model_format_name(model_format format) { return format_names[format]; }

int model_format_from_name(const char *name) {
  for (int i = 0; i < 3; i++)
    if (strcmp(format_names[i], name) == 0) return i;
  return -1;
}

static bool ends_with(const char *s, const char *suffix) {
  const size_t n = strlen(s), m = strlen(suffix);
  return n >= m && strcmp(s + n - m, suffix) == 0;
}

int model_format_of_path(const char *path, model_format *format, char *err, size_t err_bytes) {
  struct stat st;
  const bool exists = stat(path, &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) {
    /* a tessera save directory holds `latest`; anything else is an hf folder */
    char latest[JOINED_PATH_BYTES];
    snprintf(latest, sizeof latest, "%s/latest", path);
    *format = access(latest, F_OK) == 0 ? MODEL_FORMAT_TESSERA : MODEL_FORMAT_HF;
    return 0;
  }
  if (ends_with(path, ".bin")) *format = MODEL_FORMAT_LLMC;
  else if (ends_with(path, ".h5")) *format = MODEL_FORMAT_TESSERA;
  else if (!exists) *format = MODEL_FORMAT_HF;
  else {
    snprintf(err, err_bytes,
             "'%s': cannot tell its format (a folder is a Hugging Face model, *.bin llm.c, *.h5 tessera); "
             "name it with --to hf|llmc|tessera", path);
    return EXIT_USER_ERROR;
  }
  return 0;
}

int model_io_split_name(const char *name, const char **suffix) {
  int layer = -1, used = 0;
  if (sscanf(name, "layers.%d.%n", &layer, &used) == 1 && used > 0) {
    *suffix = name + used;
    return layer;
  }
  *suffix = name;
  return -1;
}

int model_io_check_gpt2(const model_shape *shape, const char *target, char *err, size_t err_bytes) {
  char missing[MESSAGE_BYTES] = "";
  const struct { bool bad; const char *what; } checks[] = {
      {shape->norm != NORM_LAYERNORM, "LayerNorm"},
      {shape->mlp != MLP_GELU, "a GELU MLP"},
      {shape->position != POSITION_LEARNED, "learned positions"},
      {shape->no_bias, "biases"},
      {model_has_linear(shape), "softmax attention in every layer"}};
  for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
    if (checks[i].bad)
      snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s", missing[0] ? ", " : "",
               checks[i].what);
  if (!missing[0]) return 0;
  char description[MESSAGE_BYTES];
  model_shape_describe(shape, description, sizeof description);
  snprintf(err, err_bytes, "%s holds GPT-2's kind of model only (it needs %s); this model has %s", target, missing,
           description);
  return EXIT_USER_ERROR;
}

void model_io_transpose(const float *in, int64_t rows, int64_t cols, float *out) {
  const int64_t block = 32;
  for (int64_t r0 = 0; r0 < rows; r0 += block)
    for (int64_t c0 = 0; c0 < cols; c0 += block)
      for (int64_t r = r0; r < r0 + block && r < rows; r++)
        for (int64_t c = c0; c < c0 + block && c < cols; c++) out[c * rows + r] = in[r * cols + c];
}

int model_io_read_text(const char *path, char **text, size_t *n_bytes, char *err, size_t err_bytes) {
  FILE *file = fopen(path, "rb");
  if (!file) {
    if (errno == ENOENT) return -1;
    snprintf(err, err_bytes, "cannot open '%s': %s", path, strerror(errno));
    return EXIT_IO_ERROR;
  }
  size_t capacity = 1 << 16, n = 0;
  char *buf = xmalloc(capacity + 1, "text file");
  for (size_t got; (got = fread(buf + n, 1, capacity - n, file)) > 0;) {
    n += got;
    if (n == capacity) {
      capacity *= 2;
      char *bigger = realloc(buf, capacity + 1);
      ENSURE(bigger, "out of memory reading '%s'", path);
      buf = bigger;
    }
  }
  const bool failed = ferror(file);
  fclose(file);
  if (failed) {
    free(buf);
    snprintf(err, err_bytes, "cannot read '%s'", path);
    return EXIT_IO_ERROR;
  }
  buf[n] = '\0';
  *text = buf;
  if (n_bytes) *n_bytes = n;
  return 0;
}

/* ---------------------------------------------------------------- sources */

model_source *model_source_open(const char *path, int *status, char *err, size_t err_bytes) {
  model_format format;
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_bytes, "model '%s' does not exist", path);
    *status = EXIT_USER_ERROR;
    return NULL;
  }
  if ((*status = model_format_of_path(path, &format, err, err_bytes)) != 0) return NULL;
  model_source *s = xcalloc(1, sizeof *s, "model source");
  snprintf(s->path, sizeof s->path, "%s", path);
  *status = format == MODEL_FORMAT_HF     ? hf_source_open(s, path, err, err_bytes)
            : format == MODEL_FORMAT_LLMC ? llmc_source_open(s, path, err, err_bytes)
                                          : tessera_source_open(s, path, err, err_bytes);
  if (*status) {
    free(s->tokenizer_json);
    free(s);
    return NULL;
  }
  return s;
}

void model_source_close(model_source *s) {
  if (!s) return;
  if (s->close) s->close(s);
  free(s->tokenizer_json);
  free(s);
}

const model_shape *model_source_shape(const model_source *s) { return &s->shape; }
const char *model_source_description(const model_source *s) { return s->description; }
const char *model_source_tokenizer_json(const model_source *s) { return s->tokenizer_json; }

int model_source_read(model_source *s, const char *name, float *out, char *err, size_t err_bytes) {
  return s->read(s, name, out, err, err_bytes);
}

/* ---------------------------------------------------------------- sinks */

/* DIR/.NAME.tmp beside the output. */
static void temporary_path(const char *path, char *out, size_t out_bytes) {
  char copy[JOINED_PATH_BYTES];
  snprintf(copy, sizeof copy, "%s", path);
  size_t n = strlen(copy);
  while (n > 1 && copy[n - 1] == '/') copy[--n] = '\0';
  char *slash = strrchr(copy, '/');
  if (slash) {
    *slash = '\0';
    snprintf(out, out_bytes, "%s/.%s.tmp", slash == copy ? "" : copy, slash + 1);
  } else {
    snprintf(out, out_bytes, ".%s.tmp", copy);
  }
}

/* A flat folder and the files in it. */
static void remove_folder(const char *dir) {
  DIR *d = opendir(dir);
  if (d) {
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      char file[JOINED_PATH_BYTES + 256];
      snprintf(file, sizeof file, "%s/%s", dir, e->d_name);
      unlink(file);
    }
    closedir(d);
  }
  rmdir(dir);
}

static void remove_output(const model_sink *s) {
  if (s->format == MODEL_FORMAT_HF) remove_folder(s->tmp_path);
  else unlink(s->tmp_path);
}

static int count_tensors(const model_shape *shape) {
  registry whole;
  registry_init(&whole, 0, 1);
  model_register(&whole, shape, NULL);
  const int n = whole.n_params;
  registry_free(&whole);
  return n;
}

model_sink *model_sink_create(const char *path, model_format format, const model_shape *shape,
                              const char *tokenizer_json, int *status, char *err, size_t err_bytes) {
  *status = format == MODEL_FORMAT_HF     ? hf_sink_check(shape, err, err_bytes)
            : format == MODEL_FORMAT_LLMC ? llmc_sink_check(shape, err, err_bytes)
                                          : tessera_sink_check(shape, err, err_bytes);
  if (*status) return NULL;
  struct stat st;
  if (format == MODEL_FORMAT_HF && stat(path, &st) == 0) {
    snprintf(err, err_bytes, "'%s' exists already: a Hugging Face model is written into a new folder", path);
    *status = EXIT_USER_ERROR;
    return NULL;
  }
  model_sink *s = xcalloc(1, sizeof *s, "model sink");
  snprintf(s->path, sizeof s->path, "%s", path);
  temporary_path(path, s->tmp_path, sizeof s->tmp_path);
  s->format = format;
  s->shape = *shape;
  s->n_expected = count_tensors(shape);
  if (format == MODEL_FORMAT_HF) remove_folder(s->tmp_path); /* a crashed earlier attempt's */
  *status = format == MODEL_FORMAT_HF     ? hf_sink_create(s, tokenizer_json, err, err_bytes)
            : format == MODEL_FORMAT_LLMC ? llmc_sink_create(s, tokenizer_json, err, err_bytes)
                                          : tessera_sink_create(s, tokenizer_json, err, err_bytes);
  if (*status) {
    remove_output(s);
    free(s);
    return NULL;
  }
  return s;
}

int model_sink_write(model_sink *s, const char *name, const float *data, char *err, size_t err_bytes) {
  const int status = s->write(s, name, data, err, err_bytes);
  if (!status) s->n_written++;
  return status;
}

int model_sink_commit(model_sink *s, char *err, size_t err_bytes) {
  ENSURE(s->n_written == s->n_expected, "model sink: %d of %d tensors written", s->n_written, s->n_expected);
  int status = s->finish(s, err, err_bytes);
  if (!status && rename(s->tmp_path, s->path) != 0) {
    snprintf(err, err_bytes, "cannot put '%s' in place: %s", s->path, strerror(errno));
    status = EXIT_IO_ERROR;
  }
  if (status) remove_output(s);
  free(s);
  return status;
}

void model_sink_abort(model_sink *s) {
  if (!s) return;
  s->abandon(s);
  remove_output(s);
  free(s);
}

/* ---------------------------------------------------------------- conversion */

int model_convert(model_source *source, model_sink *sink, char *err, size_t err_bytes) {
  registry whole;
  registry_init(&whole, 0, 1);
  model_register(&whole, &source->shape, NULL);
  int64_t largest = 1;
  for (int k = 0; k < whole.n_params; k++)
    if (whole.params[k].n_logical > largest) largest = whole.params[k].n_logical;
  float *tensor = xmalloc((size_t)largest * sizeof *tensor, "one tensor");
  int status = 0;
  for (int k = 0; k < whole.n_params && !status; k++) {
    status = model_source_read(source, whole.params[k].name, tensor, err, err_bytes);
    if (!status) status = model_sink_write(sink, whole.params[k].name, tensor, err, err_bytes);
  }
  free(tensor);
  registry_free(&whole);
  if (status) {
    model_sink_abort(sink);
    return status;
  }
  return model_sink_commit(sink, err, err_bytes);
}

/* safetensors — see safetensors.h. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "file_range.h"

/* A header larger than this is not a model's (the format's reference
 * implementation refuses 100 MB too). */
#define ST_MAX_HEADER_BYTES ((uint64_t)100 << 20)

/* Element sizes of every dtype the format defines. */
static int dtype_bytes(const char *dtype) {
  static const struct { const char *name; int bytes; } table[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},   {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"I16", 2},
      {"U16", 2},  {"F16", 2}, {"BF16", 2}, {"I32", 4},     {"U32", 4},     {"F32", 4},
      {"F64", 8},  {"I64", 8}, {"U64", 8}};
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
    if (strcmp(table[i].name, dtype) == 0) return table[i].bytes;
  return 0;
}

static uint64_t le64(const unsigned char *b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | b[i];
  return v;
}

/* ---------------------------------------------------------------- reading */

/* One header entry into t; 0 or -1 with err. data_start: the header's end. */
static int parse_entry(const st_file *f, const char *name, json_t *entry, uint64_t data_start, st_tensor *t,
                       char *err, size_t err_bytes) {
#define BAD(...)                                                                 \
  do {                                                                           \
    char what_[512];                                                             \
    snprintf(what_, sizeof what_, __VA_ARGS__);                                  \
    snprintf(err, err_bytes, "safetensors file '%s': tensor '%s': %s", f->path, name, what_); \
    return -1;                                                                   \
  } while (0)
  memset(t, 0, sizeof *t);
  if (strlen(name) >= sizeof t->name) BAD("name longer than %zu bytes", sizeof t->name - 1);
  snprintf(t->name, sizeof t->name, "%s", name);
  json_t *dtype = json_object_get(entry, "dtype"), *shape = json_object_get(entry, "shape"),
         *offsets = json_object_get(entry, "data_offsets");
  if (!json_is_object(entry) || !json_is_string(dtype) || !json_is_array(shape) || !json_is_array(offsets))
    BAD("the header entry needs \"dtype\", \"shape\" and \"data_offsets\"");
  snprintf(t->dtype, sizeof t->dtype, "%s", json_string_value(dtype));
  t->elem_bytes = dtype_bytes(json_string_value(dtype));
  if (!t->elem_bytes) BAD("unknown dtype '%s'", json_string_value(dtype));
  if (json_array_size(shape) > ST_MAX_DIMS) BAD("more than %d dimensions", ST_MAX_DIMS);
  t->n_dims = (int)json_array_size(shape);
  t->n_elems = 1;
  for (int d = 0; d < t->n_dims; d++) {
    json_t *extent = json_array_get(shape, (size_t)d);
    if (!json_is_integer(extent) || json_integer_value(extent) < 0 || json_integer_value(extent) > ((int64_t)1 << 40))
      BAD("shape entry %d is not a size", d);
    t->shape[d] = json_integer_value(extent);
    if (t->shape[d] > 0 && t->n_elems > ((int64_t)1 << 50) / t->shape[d]) BAD("shape too large");
    t->n_elems *= t->shape[d];
  }
  json_t *b = json_array_get(offsets, 0), *e = json_array_get(offsets, 1);
  if (json_array_size(offsets) != 2 || !json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
      json_integer_value(e) < json_integer_value(b))
    BAD("data_offsets is not [begin, end] with begin <= end");
  const uint64_t begin = (uint64_t)json_integer_value(b), end = (uint64_t)json_integer_value(e);
  if (end - begin != (uint64_t)t->n_elems * (uint64_t)t->elem_bytes)
    BAD("data_offsets [%llu, %llu] hold %llu bytes, but shape and dtype %s need %llu", (unsigned long long)begin,
        (unsigned long long)end, (unsigned long long)(end - begin), t->dtype,
        (unsigned long long)t->n_elems * (unsigned long long)t->elem_bytes);
  if (data_start + end > f->n_bytes)
    BAD("its bytes end at %llu, past the end of the file (%llu bytes): truncated or damaged",
        (unsigned long long)(data_start + end), (unsigned long long)f->n_bytes);
  t->begin = data_start + begin, t->end = data_start + end;
  return 0;
#undef BAD
}

static int by_begin(const void *a, const void *b) {
  const st_tensor *x = a, *y = b;
  return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* The header's tensors into f; 0 or -1 with err. */
static int parse_header(st_file *f, const char *text, size_t n, uint64_t data_start, char *err, size_t err_bytes) {
  json_error_t jerr;
  json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
  if (!root || !json_is_object(root)) {
    snprintf(err, err_bytes, "safetensors file '%s': the header is not a JSON object (%s)", f->path,
             root ? "another JSON value" : jerr.text);
    json_decref(root);
    return -1;
  }
  f->tensors = xcalloc(json_object_size(root) + 1, sizeof *f->tensors, "safetensors header");
  const char *name;
  json_t *entry;
  int status = 0;
  json_object_foreach(root, name, entry) {
    if (strcmp(name, "__metadata__") == 0) continue;
    if ((status = parse_entry(f, name, entry, data_start, &f->tensors[f->n_tensors], err, err_bytes)) != 0) break;
    f->n_tensors++;
  }
  json_decref(root);
  if (status) return -1;
  /* no two tensors share a byte */
  st_tensor *sorted = xmalloc((size_t)(f->n_tensors + 1) * sizeof *sorted, "safetensors header");
  memcpy(sorted, f->tensors, (size_t)f->n_tensors * sizeof *sorted);
  qsort(sorted, (size_t)f->n_tensors, sizeof *sorted, by_begin);
  for (int i = 1; i < f->n_tensors && !status; i++)
    if (sorted[i].begin < sorted[i - 1].end) {
      snprintf(err, err_bytes, "safetensors file '%s': tensors '%s' and '%s' overlap", f->path, sorted[i - 1].name,
               sorted[i].name);
      status = -1;
    }
  free(sorted);
  return status;
}

int st_open(st_file *f, const char *path, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", path);
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    snprintf(err, err_bytes, "cannot open safetensors file '%s': %s", path, strerror(errno));
    return EXIT_USER_ERROR;
  }
  struct stat st;
  unsigned char len_bytes[8];
  if (fstat(f->fd, &st) != 0 || (f->n_bytes = (uint64_t)st.st_size) < 8 || file_read_exact(f->fd, len_bytes, 8, 0)) {
    snprintf(err, err_bytes, "safetensors file '%s' is shorter than its 8-byte header length", path);
    st_close(f);
    return EXIT_IO_ERROR;
  }
  const uint64_t header_bytes = le64(len_bytes);
  if (header_bytes < 2 || header_bytes > ST_MAX_HEADER_BYTES || 8 + header_bytes > f->n_bytes) {
    snprintf(err, err_bytes, "safetensors file '%s': header length %llu does not fit the file of %llu bytes", path,
             (unsigned long long)header_bytes, (unsigned long long)f->n_bytes);
    st_close(f);
    return EXIT_IO_ERROR;
  }
  char *text = xmalloc(header_bytes, "safetensors header");
  int status = file_read_exact(f->fd, text, header_bytes, 8) ? -1 : 0;
  if (status) snprintf(err, err_bytes, "cannot read the header of safetensors file '%s'", path);
  else status = parse_header(f, text, header_bytes, 8 + header_bytes, err, err_bytes);
  free(text);
  if (status) {
    st_close(f);
    return EXIT_IO_ERROR;
  }
  return 0;
}

void st_close(st_file *f) {
  if (f->fd >= 0) close(f->fd);
  free(f->tensors);
  f->tensors = NULL;
  f->fd = -1;
}

const st_tensor *st_find(const st_file *f, const char *name) {
  for (int i = 0; i < f->n_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
  return NULL;
}

int st_read_f32(st_file *f, const st_tensor *t, float *out, char *err, size_t err_bytes) {
  const bool f32 = strcmp(t->dtype, "F32") == 0, f16 = strcmp(t->dtype, "F16") == 0,
             bf16 = strcmp(t->dtype, "BF16") == 0;
  if (!f32 && !f16 && !bf16) {
    snprintf(err, err_bytes, "safetensors file '%s': tensor '%s' is %s; tessera reads F32, F16 and BF16", f->path,
             t->name, t->dtype);
    return EXIT_IO_ERROR;
  }
  const stored_float kind = f32 ? STORED_F32 : f16 ? STORED_F16 : STORED_BF16;
  if (file_read_floats(f->fd, kind, t->n_elems, t->begin, out) == 0) return 0;
  snprintf(err, err_bytes, "safetensors file '%s': cannot read tensor '%s' (truncated?)", f->path, t->name);
  return EXIT_IO_ERROR;
}

/* ---------------------------------------------------------------- writing */

/* The header's JSON (tensors in the given order), padded with spaces to a
 * multiple of 8 bytes as the reference writer does. */
static char *header_text(const st_writer *w, size_t *n_bytes) {
  json_t *root = json_object();
  json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"));
  uint64_t offset = 0;
  for (int i = 0; i < w->n_tensors; i++) {
    const st_tensor *t = &w->tensors[i];
    json_t *shape = json_array();
    for (int d = 0; d < t->n_dims; d++) json_array_append_new(shape, json_integer(t->shape[d]));
    const uint64_t n = (uint64_t)t->n_elems * 4;
    json_object_set_new(root, t->name,
                        json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape, "data_offsets",
                                  (json_int_t)offset, (json_int_t)(offset + n)));
    offset += n;
  }
  char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(root);
  if (!text) return NULL;
  const size_t len = strlen(text), padded = (len + 7) / 8 * 8;
  char *out = realloc(text, padded + 1);
  if (!out) {
    free(text);
    return NULL;
  }
  memset(out + len, ' ', padded - len);
  out[padded] = '\0';
  *n_bytes = padded;
  return out;
}

int st_writer_create(st_writer *w, const char *path, int n, const char *const *names, const int *n_dims,
                     const int64_t (*shapes)[ST_MAX_DIMS], char *err, size_t err_bytes) {
  memset(w, 0, sizeof *w);
  snprintf(w->path, sizeof w->path, "%s", path);
  w->fd = -1;
  w->n_tensors = n;
  w->tensors = xcalloc((size_t)n + 1, sizeof *w->tensors, "safetensors header");
  for (int i = 0; i < n; i++) {
    st_tensor *t = &w->tensors[i];
    ENSURE(strlen(names[i]) < sizeof t->name && n_dims[i] <= ST_MAX_DIMS, "safetensors tensor %s", names[i]);
    snprintf(t->name, sizeof t->name, "%s", names[i]);
    snprintf(t->dtype, sizeof t->dtype, "F32");
    t->elem_bytes = 4, t->n_dims = n_dims[i], t->n_elems = 1;
    for (int d = 0; d < n_dims[i]; d++) t->shape[d] = shapes[i][d], t->n_elems *= shapes[i][d];
  }
  size_t header_bytes = 0;
  char *header = header_text(w, &header_bytes);
  ENSURE(header, "out of memory for a safetensors header");
  unsigned char len_bytes[8];
  for (int i = 0; i < 8; i++) len_bytes[i] = (unsigned char)((uint64_t)header_bytes >> (8 * i));
  uint64_t offset = 8 + header_bytes;
  for (int i = 0; i < n; i++) {
    w->tensors[i].begin = offset;
    offset += (uint64_t)w->tensors[i].n_elems * 4;
    w->tensors[i].end = offset;
  }
  w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const bool ok = w->fd >= 0 && file_write_exact(w->fd, len_bytes, 8, 0) == 0 &&
                  file_write_exact(w->fd, header, header_bytes, 8) == 0 && ftruncate(w->fd, (off_t)offset) == 0;
  free(header);
  if (!ok) {
    snprintf(err, err_bytes, "cannot write safetensors file '%s': %s", path, strerror(errno));
    st_writer_abandon(w);
    return EXIT_IO_ERROR;
  }
  return 0;
}

int st_writer_find(const st_writer *w, const char *name) {
  for (int i = 0; i < w->n_tensors; i++)
    if (strcmp(w->tensors[i].name, name) == 0) return i;
  return -1;
}

int st_writer_write(st_writer *w, int index, int64_t first, const float *data, int64_t n, char *err,
                    size_t err_bytes) {
  const st_tensor *t = &w->tensors[index];
  ENSURE(first >= 0 && n >= 0 && first + n <= t->n_elems, "safetensors write past tensor %s", t->name);
  if (file_write_exact(w->fd, data, (size_t)n * 4, t->begin + (uint64_t)first * 4) == 0) return 0;
  snprintf(err, err_bytes, "cannot write tensor '%s' of safetensors file '%s': %s", t->name, w->path, strerror(errno));
  return EXIT_IO_ERROR;
}

int st_writer_close(st_writer *w, char *err, size_t err_bytes) {
  const int failed = fsync(w->fd) != 0;
  const int close_failed = close(w->fd) != 0;
  w->fd = -1;
  free(w->tensors);
  w->tensors = NULL;
  if (!failed && !close_failed) return 0;
  snprintf(err, err_bytes, "cannot finish safetensors file '%s': %s", w->path, strerror(errno));
  return EXIT_IO_ERROR;
}

void st_writer_abandon(st_writer *w) {
  if (w->fd >= 0) close(w->fd);
  w->fd = -1;
  free(w->tensors);
  w->tensors = NULL;
}

/* hf_format — a Hugging Face model folder as a model source and sink:
 * config.json (hf_config.c), the weights in model.safetensors or in the
 * shards that model.safetensors.index.json's weight_map names
 * (io/safetensors.h), tokenizer.json. hf_names.c says which HF tensors
 * make each of tessera's tensors; GPT-2's Conv1D weights are transposed on
 * the way, one tensor at a time.
 *
 * A source checks every tensor tessera will read (present, of the shape
 * config.json calls for) when it opens, so a mismatch is refused before
 * anything is written; a tied model's stray lm_head.weight must be the
 * embedding. A sink writes GPT2LMHeadModel or LlamaForCausalLM, tied or
 * with lm_head.weight, F32 weights, and the tokenizer when it is given one.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hf_config.h"
#include "hf_names.h"
#include "model_io_internal.h"
#include "param_layout.h"
#include "safetensors.h"

/* More shards than any published model has (the largest have a few hundred). */
#define HF_MAX_SHARDS 4096

typedef struct hf_side {
  hf_arch arch;
  const char *prefix;   /* GPT-2: "transformer." or "" */
  st_file *files;       /* reading: the shards */
  int n_files;
  st_writer writer;     /* writing: model.safetensors */
  registry whole;
  float *scratch;       /* one transposed tensor */
} hf_side;

static const st_tensor *find_tensor(const hf_side *h, const char *name, int *file) {
  for (int i = 0; i < h->n_files; i++) {
    const st_tensor *t = st_find(&h->files[i], name);
    if (t) {
      *file = i;
      return t;
    }
  }
  return NULL;
}

static size_t largest_tensor(const registry *whole) {
  int64_t n = 1;
  for (int k = 0; k < whole->n_params; k++)
    if (whole->params[k].n_logical > n) n = whole->params[k].n_logical;
  return (size_t)n;
}

/* ---------------------------------------------------------------- source */

static int source_read(model_source *s, const char *name, float *out, char *err, size_t err_bytes) {
  hf_side *h = s->impl;
  hf_piece pieces[HF_MAX_PIECES];
  const int n = hf_pieces(h->arch, h->prefix, &s->shape, name, pieces);
  ENSURE(n > 0, "hf source: no tensor %s", name);
  for (int i = 0; i < n; i++) {
    const hf_piece *p = &pieces[i];
    int file = 0;
    const st_tensor *t = find_tensor(h, p->name, &file);
    const int status = st_read_f32(&h->files[file], t, p->transposed ? h->scratch : out + p->offset, err, err_bytes);
    if (status) return status;
    if (p->transposed) model_io_transpose(h->scratch, p->cols, p->rows, out + p->offset);
  }
  return 0;
}

static void hf_side_free(hf_side *h) {
  for (int i = 0; i < h->n_files; i++) st_close(&h->files[i]);
  free(h->files);
  registry_free(&h->whole);
  free(h->scratch);
  free(h);
}

static void source_close(model_source *s) { hf_side_free(s->impl); }

/* The shard files: the index's weight_map, or model.safetensors. */
static int open_weights(hf_side *h, const char *dir, char *err, size_t err_bytes) {
  char path[MODEL_IO_FILE_BYTES];
  snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
  json_error_t jerr;
  json_t *index = access(path, F_OK) == 0 ? json_load_file(path, 0, &jerr) : NULL;
  json_t *map = json_object_get(index, "weight_map");
  if (access(path, F_OK) == 0 && !json_is_object(map)) {
    snprintf(err, err_bytes, "'%s' has no weight_map object%s%s", path, index ? "" : ": ", index ? "" : jerr.text);
    json_decref(index);
    return EXIT_IO_ERROR;
  }
  const char *names[HF_MAX_SHARDS];
  int n = 0;
  if (map) {
    const char *key;
    json_t *value;
    json_object_foreach(map, key, value) {
      const char *file = json_string_value(value);
      if (!file || strchr(file, '/')) {
        snprintf(err, err_bytes, "'%s': tensor '%s' names no shard file of this folder", path, key);
        json_decref(index);
        return EXIT_IO_ERROR;
      }
      bool seen = false;
      for (int i = 0; i < n; i++) seen = seen || strcmp(names[i], file) == 0;
      if (!seen && n == HF_MAX_SHARDS) {
        snprintf(err, err_bytes, "'%s' names more than %d shard files", path, HF_MAX_SHARDS);
        json_decref(index);
        return EXIT_USER_ERROR;
      }
      if (!seen) names[n++] = file;
    }
  } else {
    names[n++] = "model.safetensors";
  }
  h->files = xcalloc((size_t)n, sizeof *h->files, "safetensors shards");
  int status = 0;
  for (int i = 0; i < n && !status; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    if (!map && access(path, F_OK) != 0) {
      snprintf(err, err_bytes, "'%s' has no model.safetensors (nor model.safetensors.index.json); tessera reads "
               "safetensors weights only", dir);
      status = EXIT_USER_ERROR;
    } else if ((status = st_open(&h->files[i], path, err, err_bytes)) == 0) {
      h->n_files++;
    }
  }
  json_decref(index);
  return status;
}

/* Every tensor tessera reads is there with the shape config.json implies. */
static int check_tensors(const model_source *s, const hf_side *h, char *err, size_t err_bytes) {
  for (int k = 0; k < h->whole.n_params; k++) {
    hf_piece pieces[HF_MAX_PIECES];
    const int n = hf_pieces(h->arch, h->prefix, &s->shape, h->whole.params[k].name, pieces);
    for (int i = 0; i < n; i++) {
      int file, n_dims;
      int64_t want[2];
      const st_tensor *t = find_tensor(h, pieces[i].name, &file);
      n_dims = hf_piece_shape(&pieces[i], want);
      if (!t) {
        snprintf(err, err_bytes, "'%s': the %s has no tensor '%s'", s->path, hf_arch_name(h->arch), pieces[i].name);
        return EXIT_USER_ERROR;
      }
      if (t->n_dims != n_dims || t->shape[0] != want[0] || (n_dims == 2 && t->shape[1] != want[1])) {
        snprintf(err, err_bytes, "'%s': tensor '%s' has shape [%lld%s%lld], config.json calls for [%lld%s%lld]",
                 h->files[file].path, t->name, (long long)t->shape[0], t->n_dims > 1 ? ", " : "",
                 t->n_dims > 1 ? (long long)t->shape[1] : 0LL, (long long)want[0], n_dims > 1 ? ", " : "",
                 n_dims > 1 ? (long long)want[1] : 0LL);
        return EXIT_USER_ERROR;
      }
    }
  }
  return 0;
}

/* A tied head (config.json) and an lm_head.weight in the file too: it must
 * be the embedding (transformers would use the embedding and ignore it; a
 * different one means the file is not what config.json says). */
static int check_tied_head(model_source *s, hf_side *h, char *err, size_t err_bytes) {
  int file;
  const st_tensor *head = find_tensor(h, "lm_head.weight", &file);
  if (s->shape.untied_head || !head) return 0;
  const size_t n = (size_t)s->shape.vocab_size * (size_t)s->shape.d_model;
  if ((size_t)head->n_elems != n) {
    snprintf(err, err_bytes, "'%s': lm_head.weight has %lld elements, the embedding %zu", s->path,
             (long long)head->n_elems, n);
    return EXIT_USER_ERROR;
  }
  float *wte = xmalloc(n * sizeof *wte, "embedding"), *lm = xmalloc(n * sizeof *lm, "head");
  int status = source_read(s, "wte", wte, err, err_bytes);
  if (!status) status = st_read_f32(&h->files[file], head, lm, err, err_bytes);
  if (!status && memcmp(wte, lm, n * sizeof *lm) != 0) {
    snprintf(err, err_bytes, "'%s': lm_head.weight differs from the embedding although tie_word_embeddings is "
             "true; set tie_word_embeddings to false in config.json if the head is its own", s->path);
    status = EXIT_USER_ERROR;
  }
  free(wte);
  free(lm);
  return status;
}

int hf_source_open(model_source *s, const char *dir, char *err, size_t err_bytes) {
  hf_model_info info;
  int status = hf_config_read(dir, &info, err, err_bytes);
  if (status) return status;
  s->shape = info.shape;
  hf_side *h = xcalloc(1, sizeof *h, "hf source");
  h->arch = info.arch;
  registry_init(&h->whole, 0, 1);
  model_register(&h->whole, &s->shape, NULL);
  h->scratch = xmalloc(largest_tensor(&h->whole) * sizeof *h->scratch, "transposed tensor");
  s->impl = h;
  status = open_weights(h, dir, err, err_bytes);
  int file;
  h->prefix = h->arch == HF_GPT2 && find_tensor(h, "transformer.wte.weight", &file) ? "transformer." : "";
  if (!status) status = check_tensors(s, h, err, err_bytes);
  if (!status) status = check_tied_head(s, h, err, err_bytes);
  char path[MODEL_IO_FILE_BYTES];
  snprintf(path, sizeof path, "%s/tokenizer.json", dir);
  if (!status && model_io_read_text(path, &s->tokenizer_json, NULL, err, err_bytes) > 0) status = EXIT_IO_ERROR;
  if (status) {
    hf_side_free(h);
    s->impl = NULL;
    return status;
  }
  snprintf(s->description, sizeof s->description, "Hugging Face %s", hf_arch_name(h->arch));
  s->read = source_read;
  s->close = source_close;
  return 0;
}

/* ---------------------------------------------------------------- sink */

int hf_sink_check(const model_shape *shape, char *err, size_t err_bytes) {
  hf_arch arch;
  return hf_arch_of_shape(shape, &arch, err, err_bytes);
}

static int sink_write(model_sink *s, const char *name, const float *data, char *err, size_t err_bytes) {
  hf_side *h = s->impl;
  hf_piece pieces[HF_MAX_PIECES];
  const int n = hf_pieces(h->arch, h->prefix, &s->shape, name, pieces);
  ENSURE(n > 0, "hf sink: no tensor %s", name);
  for (int i = 0; i < n; i++) {
    const hf_piece *p = &pieces[i];
    const int index = st_writer_find(&h->writer, p->name);
    ENSURE(index >= 0, "hf sink: no tensor %s in the header", p->name);
    const float *from = data + p->offset;
    if (p->transposed) {
      model_io_transpose(from, p->rows, p->cols, h->scratch);
      from = h->scratch;
    }
    const int status = st_writer_write(&h->writer, index, 0, from, p->rows * p->cols, err, err_bytes);
    if (status) return status;
  }
  return 0;
}

static int sink_finish(model_sink *s, char *err, size_t err_bytes) {
  hf_side *h = s->impl;
  const int status = st_writer_close(&h->writer, err, err_bytes);
  hf_side_free(h);
  s->impl = NULL;
  return status;
}

static void sink_abandon(model_sink *s) {
  hf_side *h = s->impl;
  if (!h) return;
  st_writer_abandon(&h->writer);
  hf_side_free(h);
  s->impl = NULL;
}

/* tokenizer.json as given, and a tokenizer_config.json that lets
 * AutoTokenizer load it. */
static int write_tokenizer(const model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes) {
  char path[MODEL_IO_FILE_BYTES];
  snprintf(path, sizeof path, "%s/tokenizer.json", s->tmp_path);
  FILE *file = fopen(path, "wb");
  bool ok = file && fwrite(tokenizer_json, 1, strlen(tokenizer_json), file) == strlen(tokenizer_json);
  if (file && fclose(file) != 0) ok = false;
  json_t *cfg = json_pack("{s:s, s:i}", "tokenizer_class", "PreTrainedTokenizerFast", "model_max_length",
                          s->shape.seq_len);
  snprintf(path, sizeof path, "%s/tokenizer_config.json", s->tmp_path);
  if (ok && json_dump_file(cfg, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) ok = false;
  json_decref(cfg);
  if (ok) return 0;
  snprintf(err, err_bytes, "cannot write '%s': %s", path, strerror(errno));
  return EXIT_IO_ERROR;
}

/* The safetensors header: every piece of every tensor, in tessera's order. */
static int create_weights(model_sink *s, hf_side *h, char *err, size_t err_bytes) {
  const int max_pieces = h->whole.n_params * HF_MAX_PIECES;
  char (*names)[ST_NAME_BYTES] = xmalloc((size_t)max_pieces * sizeof *names, "safetensors names");
  const char **name_list = xmalloc((size_t)max_pieces * sizeof *name_list, "safetensors names");
  int *n_dims = xmalloc((size_t)max_pieces * sizeof *n_dims, "safetensors shapes");
  int64_t (*shapes)[ST_MAX_DIMS] = xcalloc((size_t)max_pieces, sizeof *shapes, "safetensors shapes");
  int n = 0;
  for (int k = 0; k < h->whole.n_params; k++) {
    hf_piece pieces[HF_MAX_PIECES];
    const int m = hf_pieces(h->arch, h->prefix, &s->shape, h->whole.params[k].name, pieces);
    ENSURE(m > 0, "hf sink: tensor %s has no Hugging Face name", h->whole.params[k].name);
    for (int i = 0; i < m; i++, n++) {
      memcpy(names[n], pieces[i].name, ST_NAME_BYTES);
      name_list[n] = names[n];
      n_dims[n] = hf_piece_shape(&pieces[i], shapes[n]);
    }
  }
  char path[MODEL_IO_FILE_BYTES];
  snprintf(path, sizeof path, "%s/model.safetensors", s->tmp_path);
  const int status = st_writer_create(&h->writer, path, n, name_list, n_dims, (const int64_t(*)[ST_MAX_DIMS])shapes,
                                      err, err_bytes);
  free(names);
  free(name_list);
  free(n_dims);
  free(shapes);
  return status;
}

int hf_sink_create(model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes) {
  hf_side *h = xcalloc(1, sizeof *h, "hf sink");
  ENSURE(hf_arch_of_shape(&s->shape, &h->arch, err, err_bytes) == 0, "hf sink: %s", err);
  h->prefix = h->arch == HF_GPT2 ? "transformer." : ""; /* as save_pretrained writes GPT-2 */
  h->writer.fd = -1;
  registry_init(&h->whole, 0, 1);
  model_register(&h->whole, &s->shape, NULL);
  h->scratch = xmalloc(largest_tensor(&h->whole) * sizeof *h->scratch, "transposed tensor");
  char path[MODEL_IO_FILE_BYTES];
  snprintf(path, sizeof path, "%s/config.json", s->tmp_path);
  int status = 0;
  if (mkdir(s->tmp_path, 0755) != 0) {
    snprintf(err, err_bytes, "cannot create folder '%s': %s", s->tmp_path, strerror(errno));
    status = EXIT_IO_ERROR;
  }
  if (!status) status = hf_config_write(path, h->arch, &s->shape, err, err_bytes);
  if (!status && tokenizer_json) status = write_tokenizer(s, tokenizer_json, err, err_bytes);
  if (!status) status = create_weights(s, h, err, err_bytes);
  if (status) {
    hf_side_free(h);
    return status;
  }
  s->impl = h;
  s->write = sink_write;
  s->finish = sink_finish;
  s->abandon = sink_abandon;
  return 0;
}

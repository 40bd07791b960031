/* llmc_format — llm.c's GPT-2 model file (io/llmc_model.h) as a model
 * source and sink. llm.c keeps each kind of tensor for all layers in one
 * array; tessera's per-layer tensors are slices of those, in the same
 * [out, in] layout (qkvw's rows are q, k, v, each head after head, as
 * tessera's [3, NH, HS, C]), so the mapping is names and offsets only. The
 * vocabulary is padded to Vp rows in the file: a source drops the padding
 * rows, a sink leaves them zero. Only GPT-2 fits: LayerNorm (ε 1e-5), GELU
 * with F = 4C, learned positions, biases, softmax attention, the tied head. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llmc_model.h"
#include "model_io_internal.h"

/* tessera's name within a block, and llm.c's array */
static const struct { const char *suffix; llmc_tensor tensor; } block_tensors[] = {
    {"ln1.weight", LLMC_LN1W}, {"ln1.bias", LLMC_LN1B}, {"attn.wqkv", LLMC_QKVW},   {"attn.bqkv", LLMC_QKVB},
    {"attn.wo", LLMC_ATTPROJW}, {"attn.bo", LLMC_ATTPROJB}, {"ln2.weight", LLMC_LN2W}, {"ln2.bias", LLMC_LN2B},
    {"mlp.w1", LLMC_FCW},      {"mlp.b1", LLMC_FCB},     {"mlp.w2", LLMC_FCPROJW},  {"mlp.b2", LLMC_FCPROJB}};

/* The array and layer of a tessera tensor; −1 when llm.c has none. */
static int llmc_place(const char *name, int *layer) {
  const char *suffix;
  *layer = model_io_split_name(name, &suffix);
  if (*layer < 0) {
    if (strcmp(name, "wte") == 0) return LLMC_WTE;
    if (strcmp(name, "wpe") == 0) return LLMC_WPE;
    if (strcmp(name, "lnf.weight") == 0) return LLMC_LNFW;
    if (strcmp(name, "lnf.bias") == 0) return LLMC_LNFB;
    return -1;
  }
  for (size_t i = 0; i < sizeof block_tensors / sizeof block_tensors[0]; i++)
    if (strcmp(block_tensors[i].suffix, suffix) == 0) return block_tensors[i].tensor;
  return -1;
}

/* ---------------------------------------------------------------- source */

/* Where tessera tensor `name` lies in the file (tensor k, layer) and how
 * many elements of it are the logical tensor's: wte its first V rows; the
 * padding rows after them are left on reading and stay zero on writing. */
static int64_t place_of(const llmc_file *f, const char *name, const char *side, int *k, int *layer) {
  *k = llmc_place(name, layer);
  ENSURE(*k >= 0, "llm.c %s: no tensor %s", side, name);
  return *k == LLMC_WTE ? (int64_t)f->sizes.vocab_size * f->sizes.channels
                        : llmc_slice_elems(&f->sizes, (llmc_tensor)*k);
}

static int source_read(model_source *s, const char *name, float *out, char *err, size_t err_bytes) {
  llmc_file *f = s->impl;
  int k, layer;
  const int64_t n = place_of(f, name, "source", &k, &layer);
  return llmc_read(f, (llmc_tensor)k, layer, n, out, err, err_bytes);
}

static void source_close(model_source *s) {
  llmc_close(s->impl);
  free(s->impl);
}

int llmc_source_open(model_source *s, const char *path, char *err, size_t err_bytes) {
  llmc_file *f = xcalloc(1, sizeof *f, "llm.c source");
  const int status = llmc_open(f, path, err, err_bytes);
  if (status) {
    free(f);
    return status;
  }
  const llmc_sizes *z = &f->sizes;
  s->shape = model_shape_gpt2(z->n_layer, z->n_head, z->channels, z->vocab_size, z->max_seq_len);
  snprintf(s->description, sizeof s->description, "llm.c GPT-2 model (version %d, %s)", f->version,
           f->version == 3 ? "fp32" : "bf16");
  s->impl = f;
  s->read = source_read;
  s->close = source_close;
  return 0;
}

/* ---------------------------------------------------------------- sink */

int llmc_sink_check(const model_shape *shape, char *err, size_t err_bytes) {
  if (model_io_check_gpt2(shape, "an llm.c model file", err, err_bytes)) return EXIT_USER_ERROR;
  if (model_ffn_hidden(shape) != 4 * shape->d_model) {
    snprintf(err, err_bytes, "an llm.c model file has an MLP of width 4·d_model = %d; this model's is %d",
             4 * shape->d_model, model_ffn_hidden(shape));
    return EXIT_USER_ERROR;
  }
  if (shape->untied_head) {
    snprintf(err, err_bytes, "an llm.c model file has the tied head (the token embedding); this model's head is "
             "lm_head, a tensor of its own");
    return EXIT_USER_ERROR;
  }
  if (fabs(model_norm_eps(shape) - MODEL_IO_GPT2_NORM_EPS) > 1e-12) {
    snprintf(err, err_bytes, "an llm.c model file's LayerNorm has epsilon 1e-5; this model's is %g",
             model_norm_eps(shape));
    return EXIT_USER_ERROR;
  }
  return 0;
}

static int sink_write(model_sink *s, const char *name, const float *data, char *err, size_t err_bytes) {
  llmc_file *f = s->impl;
  int k, layer;
  const int64_t n = place_of(f, name, "sink", &k, &layer);
  return llmc_write(f, (llmc_tensor)k, layer, 0, data, n, err, err_bytes);
}

static int sink_finish(model_sink *s, char *err, size_t err_bytes) {
  const int status = llmc_finish(s->impl, err, err_bytes);
  free(s->impl);
  s->impl = NULL;
  return status;
}

static void sink_abandon(model_sink *s) {
  if (!s->impl) return;
  llmc_close(s->impl);
  free(s->impl);
  s->impl = NULL;
}

int llmc_sink_create(model_sink *s, const char *tokenizer_json, char *err, size_t err_bytes) {
  (void)tokenizer_json; /* llm.c keeps its tokenizer in a file of its own */
  const model_shape *m = &s->shape;
  const llmc_sizes sizes = {m->seq_len, m->vocab_size, m->n_layer, m->n_head, m->d_model,
                            llmc_padded_vocab(m->vocab_size)};
  llmc_file *f = xcalloc(1, sizeof *f, "llm.c sink");
  const int status = llmc_create(f, s->tmp_path, &sizes, err, err_bytes);
  if (status) {
    free(f);
    return status;
  }
  s->impl = f;
  s->write = sink_write;
  s->finish = sink_finish;
  s->abandon = sink_abandon;
  return 0;
}

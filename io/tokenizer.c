/* tokenizer — see tokenizer.h. This file holds the interface and the bytes
 * tokenizer; byte-level BPE lives in the bpe_* files: the model and its
 * checks (bpe_model), reading files (bpe_files, bpe_hf_json), GPT-2's
 * pre-tokenizer (bpe_pretokenize) and the merging encoder (bpe_encode). */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_encode.h"
#include "bpe_files.h"
#include "bpe_hf_json.h"
#include "bpe_model.h"
#include "fail.h"

struct tokenizer {
  tokenizer_kind kind;
  int vocab_size;
  int32_t eot;
  char description[64];
  bpe_model *model;     /* BPE only */
  bpe_encoder *encoder; /* BPE only: the word cache and scratch */
};

tokenizer *tokenizer_bytes(void) {
  tokenizer *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->kind = TOKENIZER_BYTES;
  t->vocab_size = TOKENIZER_BYTES_VOCAB;
  t->eot = TOKENIZER_BYTES_EOT;
  snprintf(t->description, sizeof t->description, "bytes (%d ids)", t->vocab_size);
  return t;
}

static tokenizer *bpe_tokenizer(bpe_model *m) {
  if (!m) return NULL;
  tokenizer *t = xcalloc(1, sizeof *t, "tokenizer");
  t->kind = TOKENIZER_BPE;
  t->vocab_size = m->n_ids;
  t->eot = m->eot;
  t->model = m;
  t->encoder = bpe_encoder_new(m);
  snprintf(t->description, sizeof t->description, "byte-level BPE (%d ids)", t->vocab_size);
  return t;
}

tokenizer *tokenizer_load(const char *path, char *err, size_t err_bytes) {
  return bpe_tokenizer(bpe_load_path(path, err, err_bytes));
}

tokenizer *tokenizer_from_json(const char *text, size_t n_bytes, char *err, size_t err_bytes) {
  return bpe_tokenizer(bpe_from_hf_json(text, n_bytes, "the tokenizer.json text", err, err_bytes));
}

char *tokenizer_to_json(const tokenizer *t) {
  return t->kind == TOKENIZER_BPE ? bpe_to_hf_json(t->model) : NULL;
}

void tokenizer_free(tokenizer *t) {
  if (!t) return;
  bpe_encoder_free(t->encoder);
  bpe_model_free(t->model);
  free(t);
}

tokenizer_kind tokenizer_kind_of(const tokenizer *t) { return t->kind; }
int tokenizer_vocab_size(const tokenizer *t) { return t->vocab_size; }
int32_t tokenizer_eot(const tokenizer *t) { return t->eot; }
const char *tokenizer_description(const tokenizer *t) { return t->description; }

size_t tokenizer_encode(tokenizer *t, const char *text, size_t n_bytes, int32_t *out) {
  if (t->kind == TOKENIZER_BPE) return bpe_encode(t->encoder, text, n_bytes, out);
  /* bytes: the identity, lossless for any input, UTF-8 or not */
  for (size_t i = 0; i < n_bytes; i++) out[i] = (unsigned char)text[i];
  return n_bytes;
}

size_t tokenizer_token_bytes(const tokenizer *t, int32_t id, char scratch[32], const char **bytes) {
  *bytes = scratch;
  if (t->kind == TOKENIZER_BPE) {
    size_t n;
    const char *token = bpe_token(t->model, id, &n);
    if (token) {
      *bytes = token;
      return n;
    }
  } else if (id >= 0 && id < 256) {
    scratch[0] = (char)id;
    scratch[1] = '\0';
    return 1;
  } else if (id == t->eot) {
    return (size_t)snprintf(scratch, 32, "<|endoftext|>");
  }
  return (size_t)snprintf(scratch, 32, "<|%d|>", (int)id);
}

/* tokenizer — see tokenizer.h. This file holds the interface and the bytes
 * tokenizer; byte-level BPE is loaded here and encoded elsewhere (io/). */
#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tokenizer {
  tokenizer_kind kind;
  int vocab_size;
  int32_t eot;
  char description[64];
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

tokenizer *tokenizer_load(const char *path, char *err, size_t err_bytes) {
  snprintf(err, err_bytes, "cannot load tokenizer '%s': byte-level BPE is not implemented yet", path);
  return NULL;
}

tokenizer *tokenizer_from_json(const char *text, size_t n_bytes, char *err, size_t err_bytes) {
  (void)text;
  (void)n_bytes;
  snprintf(err, err_bytes, "byte-level BPE is not implemented yet");
  return NULL;
}

char *tokenizer_to_json(const tokenizer *t) {
  (void)t;
  return NULL;
}

void tokenizer_free(tokenizer *t) { free(t); }

tokenizer_kind tokenizer_kind_of(const tokenizer *t) { return t->kind; }
int tokenizer_vocab_size(const tokenizer *t) { return t->vocab_size; }
int32_t tokenizer_eot(const tokenizer *t) { return t->eot; }
const char *tokenizer_description(const tokenizer *t) { return t->description; }

size_t tokenizer_encode(tokenizer *t, const char *text, size_t n_bytes, int32_t *out) {
  (void)t; /* the identity on bytes: lossless for any input, UTF-8 or not */
  for (size_t i = 0; i < n_bytes; i++) out[i] = (unsigned char)text[i];
  return n_bytes;
}

size_t tokenizer_token_bytes(const tokenizer *t, int32_t id, char scratch[32], const char **bytes) {
  *bytes = scratch;
  if (t->kind == TOKENIZER_BYTES && id >= 0 && id < 256) {
    scratch[0] = (char)id;
    scratch[1] = '\0';
    return 1;
  }
  if (id == t->eot) return (size_t)snprintf(scratch, 32, "<|endoftext|>");
  return (size_t)snprintf(scratch, 32, "<|%d|>", (int)id);
}

/* ckpt_tokenizer — see ckpt_tokenizer.h. */
#include "ckpt_tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

void ckpt_write_tokenizer(ckpt_file *f, const tokenizer *t) {
  if (!t || tokenizer_kind_of(t) == TOKENIZER_BYTES) return;
  char *text = tokenizer_to_json(t);
  if (!text) fail_local(EXIT_IO_ERROR, "%s: the tokenizer could not be written as JSON", f->path);
  ckpt_bytes_write(f, CKPT_TOKENIZER_DATASET, text, strlen(text));
  free(text);
}

tokenizer *ckpt_read_tokenizer(ckpt_file *f, char *err, size_t err_bytes) {
  char *text = NULL;
  size_t n_bytes = 0;
  const int status = ckpt_bytes_read(f, CKPT_TOKENIZER_DATASET, &text, &n_bytes, err, err_bytes);
  if (status < 0) { /* none stored: trained on bytes */
    tokenizer *bytes = tokenizer_bytes();
    if (!bytes) snprintf(err, err_bytes, "out of memory for the bytes tokenizer");
    return bytes;
  }
  if (status > 0) return NULL;
  char why[MESSAGE_BYTES];
  tokenizer *t = tokenizer_from_json(text, n_bytes, why, sizeof why);
  free(text);
  if (!t) snprintf(err, err_bytes, "%s: its tokenizer (%s) is damaged: %s", f->path, CKPT_TOKENIZER_DATASET, why);
  return t;
}

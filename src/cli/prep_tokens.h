/* prep_tokens — one rank's documents as token bytes in the dataset's
 * storage type, and their lengths, ready to be written in rank order.
 * Every document is followed by the tokenizer's end-of-text token, as
 * Megatron's preprocess_data.py does with --append-eod. */
#ifndef TESSERA_PREP_TOKENS_H
#define TESSERA_PREP_TOKENS_H

#include <stddef.h>
#include <stdint.h>

#include "fail.h"
#include "token_dataset.h"
#include "tokenizer.h"

typedef struct prep_tokens {
  tokenizer *tok;
  token_dtype dtype;
  char *bytes; /* the tokens, stored */
  uint64_t n_bytes, capacity;
  int32_t *lengths; /* per document, in tokens */
  uint64_t n_documents, lengths_capacity, n_tokens;
  int32_t *ids; /* one document's ids */
  size_t ids_capacity;
  uint64_t text_bytes, share_bytes; /* tokenized so far; this rank's part of the text */
  double start, last_report;
  int report_progress; /* rank 0 says how far its part is, now and then */
  int status;          /* 0, or the first error, described in err */
  char err[MESSAGE_BYTES];
} prep_tokens;

void prep_tokens_init(prep_tokens *p, tokenizer *tok, token_dtype dtype, uint64_t share_bytes, int report_progress);
void prep_tokens_free(prep_tokens *p);
/* A prep_document_fn (prep_documents.h): context is a prep_tokens. */
void prep_tokens_add_document(const char *text, size_t n_bytes, void *context);

#endif

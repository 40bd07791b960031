/* dataset_tokenizer — the tokenizer a token dataset records.
 *
 * `tessera prep` writes the tokenizer it used beside the dataset as the
 * sidecar PREFIX.tokenizer.json (the text of tokenizer_to_json, a Hugging
 * Face tokenizer.json), put in place together with PREFIX.bin/.idx. The
 * bytes tokenizer needs no file: a Megatron dataset without a sidecar is a
 * bytes dataset. An llm.c shard FILE.bin may have FILE.tokenizer.json;
 * without one it holds GPT-2 tokens (the caller decides what that means).
 * doc/data-format.md, "The tokenizer of a dataset".
 */
#ifndef TESSERA_DATASET_TOKENIZER_H
#define TESSERA_DATASET_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>

#include "tokenizer.h"

#define DATASET_SIDECAR_SUFFIX ".tokenizer.json"

/* The sidecar's path: data_path (a Megatron PREFIX, or an llm.c FILE.bin)
 * without a final ".bin", then ".tokenizer.json". */
void dataset_sidecar_path(const char *data_path, char *out, size_t out_bytes);

/* Writes t's tokenizer.json text to path and fsyncs it; 0, or -1 with err.
 * t is not the bytes tokenizer (it has no text). */
int dataset_sidecar_write(const char *path, const tokenizer *t, char *err, size_t err_bytes);

/* The tokenizer recorded beside data_path: 0 with *t set, or *t NULL when
 * there is no sidecar; EXIT_IO_ERROR with err when the sidecar cannot be
 * read or is not a tokenizer. */
int dataset_sidecar_read(const char *data_path, tokenizer **t, char *err, size_t err_bytes);

/* Whether two tokenizers encode and decode alike: both bytes, or both with
 * the same tokenizer.json text. */
bool tokenizers_agree(const tokenizer *a, const tokenizer *b);

#endif

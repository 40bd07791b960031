/* indexed_writer — writes Megatron-LM's indexed dataset (PREFIX.bin + PREFIX.idx).
 *
 * Documents are appended one at a time; the index is written at close. Both
 * files are written under temporary names and renamed into place only when
 * complete, so an interrupted `tessera prep` never leaves a half-written
 * dataset that looks valid. Tokens are stored as uint16 (vocabularies < 65536)
 * or int32. Format: doc/data-format.md.
 */
#ifndef TESSERA_INDEXED_WRITER_H
#define TESSERA_INDEXED_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "token_dataset.h"

typedef struct indexed_writer indexed_writer;

/* Returns NULL and fills err on failure (cannot create the files). */
indexed_writer *indexed_writer_open(const char *prefix, token_dtype dtype, char *err,
                                    size_t err_bytes);
/* Appends one document (one Megatron "sequence"). Returns 0, or -1 with err set. */
int indexed_writer_add_document(indexed_writer *w, const int32_t *tokens, size_t n_tokens,
                                char *err, size_t err_bytes);
/* Writes the index, flushes, renames both files into place. Returns 0 or -1. */
int indexed_writer_close(indexed_writer *w, char *err, size_t err_bytes);
/* Removes the temporary files (after an error). */
void indexed_writer_discard(indexed_writer *w);

uint64_t indexed_writer_n_tokens(const indexed_writer *w);
uint64_t indexed_writer_n_documents(const indexed_writer *w);

#endif

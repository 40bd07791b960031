/* prep_documents — the documents of `tessera prep`'s input files, and which
 * of them one rank tokenizes.
 *
 * Each input file is one document, or with a separator LINE, a line equal
 * to LINE ends a document (the line itself is dropped; empty documents are
 * skipped). The inputs, concatenated, are cut into equal byte ranges, one
 * per rank; a document belongs to the rank whose range holds its first
 * byte. A rank finds its documents from its own range alone: a document can
 * start only at a file's start or right after a separator line, and both
 * are visible from the bytes just before the position. The ranks' documents
 * in rank order are therefore every document in input order, whatever the
 * number of ranks.
 */
#ifndef TESSERA_PREP_DOCUMENTS_H
#define TESSERA_PREP_DOCUMENTS_H

#include <stddef.h>
#include <stdint.h>

typedef struct prep_input {
  const char *path;
  const char *text; /* mapped read-only; NULL for an empty file */
  size_t n_bytes;
} prep_input;

/* Maps every input; 0, or EXIT_USER_ERROR with err naming the file that
 * cannot be read (on error, nothing stays mapped). */
int prep_inputs_map(prep_input *inputs, int n_inputs, char *err, size_t err_bytes);
void prep_inputs_unmap(prep_input *inputs, int n_inputs);

typedef void (*prep_document_fn)(const char *text, size_t n_bytes, void *context);

/* Calls fn, in input order, for each non-empty document whose first byte
 * lies in [lo, hi) of the inputs' concatenation. separator: NULL for one
 * document per file. */
void prep_for_each_document(const prep_input *inputs, int n_inputs, const char *separator, uint64_t lo,
                            uint64_t hi, prep_document_fn fn, void *context);

#endif

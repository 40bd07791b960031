/* indexed_writer — finishes Megatron-LM's indexed dataset (PREFIX.bin +
 * PREFIX.idx, doc/data-format.md) and its tokenizer sidecar.
 *
 * The token bytes are written by the caller (`tessera prep` writes them from
 * every MPI rank into one file) under a temporary name; this file writes the
 * index from the documents' lengths and puts the files into place. Nothing
 * becomes visible under PREFIX until every file is complete and flushed: an
 * interrupted or failed prep never leaves a half-written dataset that looks
 * valid. Tokens are stored as uint16 (vocabularies of up to 65536 ids) or
 * int32.
 */
#ifndef TESSERA_INDEXED_WRITER_H
#define TESSERA_INDEXED_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "fail.h"
#include "token_dataset.h"

/* The temporary names of a dataset being written (the same on every rank:
 * `tag` is one process's id, shared by the caller). */
typedef struct indexed_temp_paths {
  char bin[JOINED_PATH_BYTES], idx[JOINED_PATH_BYTES], sidecar[JOINED_PATH_BYTES];
} indexed_temp_paths;

void indexed_temp_paths_of(const char *prefix, long tag, indexed_temp_paths *tmp);

/* Bytes per token of a storage type. */
int64_t token_dtype_bytes(token_dtype dtype);

/* Writes and fsyncs the index of n_docs documents of the given lengths (in
 * tokens, one sequence per document) to path. 0, or -1 with err. */
int indexed_write_index(const char *path, token_dtype dtype, const int32_t *lengths, uint64_t n_docs,
                        char *err, size_t err_bytes);

/* Puts a complete dataset in place: the old PREFIX.idx is removed first (a
 * dataset is what its .idx describes), then the sidecar is renamed into
 * place (sidecar false: an old PREFIX.tokenizer.json is removed), then the
 * .bin, and the .idx last. 0, or -1 with err. */
int indexed_publish(const char *prefix, const indexed_temp_paths *tmp, int has_sidecar, char *err,
                    size_t err_bytes);

/* Removes whatever temporary files exist (after an error). */
void indexed_discard(const indexed_temp_paths *tmp);

#endif

/* bpe_files — byte-level BPE models from files.
 *
 * A path is a tokenizer.json file, or a folder holding tokenizer.json, or
 * GPT-2's published pair encoder.json + vocab.bpe (Hugging Face's copies of
 * the same two files are named vocab.json + merges.txt). A folder with a
 * tokenizer.json is read from it: it is the complete description (added
 * tokens, pre-tokenizer), the pairs only carry the vocabulary and merges.
 * Every error names the file and what is wrong with it. */
#ifndef TESSERA_BPE_FILES_H
#define TESSERA_BPE_FILES_H

#include <stddef.h>

#include "bpe_model.h"

bpe_model *bpe_load_path(const char *path, char *err, size_t err_bytes);

/* GPT-2's encoder.json (token -> id, tokens in the byte alphabet) and
 * vocab.bpe ("#version: 0.2", then one merge "left right" a line). */
bpe_model *bpe_load_gpt2_files(const char *encoder_path, const char *merges_path, char *err,
                               size_t err_bytes);

/* The whole file, NUL-terminated (malloc'd), or NULL with err set. */
char *bpe_read_file(const char *path, size_t *n_bytes, char *err, size_t err_bytes);

#endif

/* ckpt_tokenizer — the tokenizer a checkpoint carries.
 *
 * The text of its Hugging Face tokenizer.json (tokenizer_to_json) is the
 * 1-D uint8 dataset "/tokenizer.json" at the file's root, checked by a
 * CRC-32C like the tensors (doc/checkpoint-format.md). A checkpoint of a
 * model trained on bytes carries none: the bytes tokenizer needs no file.
 */
#ifndef TESSERA_CKPT_TOKENIZER_H
#define TESSERA_CKPT_TOKENIZER_H

#include <stddef.h>

#include "checkpoint_file.h"
#include "tokenizer.h"

#define CKPT_TOKENIZER_DATASET "/tokenizer.json"

/* Writes t's tokenizer.json text into the file as the 1-D uint8 dataset
 * "/tokenizer.json"; the bytes tokenizer writes nothing. In a collective
 * file every rank calls. */
void ckpt_write_tokenizer(ckpt_file *f, const tokenizer *t);
/* The tokenizer the file carries; the bytes tokenizer when it carries none;
 * NULL + err when the stored text is damaged. */
tokenizer *ckpt_read_tokenizer(ckpt_file *f, char *err, size_t err_bytes);

#endif

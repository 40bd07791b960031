/* tokenizer — text to token ids and back.
 *
 * Two kinds behind one interface:
 *   - bytes: ids 0..255 are the bytes of the text unchanged, 256 is the
 *     end-of-text token <|endoftext|>; 257 ids, lossless for any byte string.
 *     A dataset or checkpoint that names no tokenizer was made with this one.
 *   - byte-level BPE exactly as GPT-2's (doc/data-format.md, "Tokenizers"):
 *     loaded from GPT-2's published encoder.json + vocab.bpe, or from a
 *     Hugging Face tokenizer.json of a byte-level BPE model.
 *
 * A tokenizer travels with the data and the model as the text of a Hugging
 * Face tokenizer.json (tokenizer_to_json): the dataset's sidecar
 * PREFIX.tokenizer.json, a checkpoint's copy, an exported model's file.
 *
 * Errors are returned, not raised (one line in err), so every MPI rank can
 * load the same file and the caller reports once.
 * Encoding keeps a cache of words: one tokenizer per thread.
 */
#ifndef TESSERA_TOKENIZER_H
#define TESSERA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

typedef struct tokenizer tokenizer;
typedef enum tokenizer_kind { TOKENIZER_BYTES, TOKENIZER_BPE } tokenizer_kind;

#define TOKENIZER_BYTES_EOT 256
#define TOKENIZER_BYTES_VOCAB 257

/* The byte-level tokenizer. */
tokenizer *tokenizer_bytes(void);
/* PATH: a folder holding encoder.json + vocab.bpe (GPT-2's files) or
 * tokenizer.json, or a tokenizer.json file. NULL with err set on failure. */
tokenizer *tokenizer_load(const char *path, char *err, size_t err_bytes);
/* From the text of a tokenizer.json (what tokenizer_to_json writes). */
tokenizer *tokenizer_from_json(const char *text, size_t n_bytes, char *err, size_t err_bytes);
/* The tokenizer as the text of a Hugging Face tokenizer.json (malloc'd,
 * NUL-terminated; HF `tokenizers` loads it); NULL for the bytes tokenizer,
 * which needs no file. */
char *tokenizer_to_json(const tokenizer *t);
void tokenizer_free(tokenizer *t);

tokenizer_kind tokenizer_kind_of(const tokenizer *t);
/* Ids in use: the largest id + 1 (GPT-2: 50257). */
int tokenizer_vocab_size(const tokenizer *t);
/* The end-of-text id (GPT-2: 50256; bytes: 256), −1 when there is none. */
int32_t tokenizer_eot(const tokenizer *t);
/* For reports: "bytes (257 ids)", "byte-level BPE (50257 ids)". */
const char *tokenizer_description(const tokenizer *t);

/* Encodes n_bytes of text as ordinary text (the characters "<|endoftext|>"
 * in the text are not the special token, as tiktoken's encode_ordinary).
 * Never more ids than bytes: out holds n_bytes ids. Returns the count. */
size_t tokenizer_encode(tokenizer *t, const char *text, size_t n_bytes, int32_t *out);

/* The bytes id stands for, in *bytes (valid until the next call with the
 * same scratch or tokenizer_free): a BPE token's byte string, a special
 * token's text, "<|id|>" for an id outside the vocabulary. Returns the
 * length. Concatenating the ids' bytes decodes a sequence. */
size_t tokenizer_token_bytes(const tokenizer *t, int32_t id, char scratch[32], const char **bytes);

#endif

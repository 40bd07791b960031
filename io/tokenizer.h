/* tokenizer — byte-level tokenizer.
 *
 * Token ids 0..255 are the bytes of the UTF-8 text, unchanged; id 256 is the
 * end-of-text token <|endoftext|> that separates documents. The vocabulary is
 * therefore 257 ids; any model with vocab_size >= 257 can train on it.
 * Lossless: decode(encode(text)) == text for every byte string.
 */
#ifndef TESSERA_TOKENIZER_H
#define TESSERA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_N_BYTES 256
#define TOKENIZER_EOT 256
#define TOKENIZER_VOCAB_SIZE 257

/* Writes n_bytes ids into out (one per byte); returns the count. */
size_t tokenizer_encode(const char *text, size_t n_bytes, int32_t *out);
/* Appends the text of one token to out (at most 16 bytes, NUL-terminated);
 * returns its length. The end-of-text token decodes to "<|endoftext|>";
 * ids outside the vocabulary decode to "<|id|>". */
int tokenizer_decode(int32_t id, char out[32]);

#endif

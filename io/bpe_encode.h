/* bpe_encode — text to ids with a byte-level BPE model.
 *
 * The text is cut into pieces by GPT-2's pre-tokenizer (bpe_pretokenize.h);
 * each piece starts as one token per byte and merges are applied lowest rank
 * first, leftmost first among equal ranks, until no adjacent pair has a
 * merge. That is GPT-2's encoder.py and Hugging Face's BPE model (whose
 * priority queue we share: O(n log n) in the piece's length, so a megabyte
 * without a space costs no more than its length suggests).
 *
 * Pieces repeat (" the", ","), so their ids are cached by their bytes; the
 * cache is cleared when it reaches a few million ids. Nothing is allocated
 * per piece: the scratch arrays grow to the longest piece seen. One encoder
 * per thread. */
#ifndef TESSERA_BPE_ENCODE_H
#define TESSERA_BPE_ENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "bpe_model.h"

typedef struct bpe_encoder bpe_encoder;

bpe_encoder *bpe_encoder_new(const bpe_model *m);
void bpe_encoder_free(bpe_encoder *e);
/* Encodes n_bytes of text into out (room for n_bytes ids); returns the count. */
size_t bpe_encode(bpe_encoder *e, const char *text, size_t n_bytes, int32_t *out);

#endif

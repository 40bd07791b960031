/* bpe_alphabet — GPT-2's byte-to-unicode mapping.
 *
 * Byte-level BPE files (encoder.json, vocab.bpe, tokenizer.json) spell every
 * token as printable text: each byte stands for one Unicode character. The
 * 188 printable bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for the
 * character of the same number; the other 68 bytes (controls, space, 0x7F..0xA0,
 * 0xAD), in increasing order, for U+0100, U+0101, ... U+0143. So a space is
 * 'Ġ' (U+0120) and a newline 'Ċ' (U+010A). tessera keeps tokens as their raw
 * bytes and uses this mapping only to read and write those files. */
#ifndef TESSERA_BPE_ALPHABET_H
#define TESSERA_BPE_ALPHABET_H

#include <stddef.h>

/* Writes the mapped spelling of n_bytes raw bytes as UTF-8 (at most
 * 2·n_bytes bytes into out); returns its length. */
size_t bpe_alphabet_spell(const char *bytes, size_t n_bytes, char *out);

/* The raw bytes of a mapped spelling (at most n_bytes of them into out).
 * Returns their count, or -1 when the text holds a character outside the
 * alphabet (or is not UTF-8): then it is no byte-level token. */
long bpe_alphabet_unspell(const char *text, size_t n_bytes, char *out);

#endif

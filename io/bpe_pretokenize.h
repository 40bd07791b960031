/* bpe_pretokenize — GPT-2's pre-tokenizer: text into the pieces BPE merges
 * within. It is the regular expression of GPT-2's encoder.py
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * matched left to right, written out as a scanner (no regex engine). Classes:
 * \p{L} and \p{N} are the Unicode categories L* and N* (utf8proc's tables),
 * \s is Unicode White_Space (U+0009..000D, U+0020, U+0085, U+00A0, U+1680,
 * U+2000..200A, U+2028, U+2029, U+202F, U+205F, U+3000), as Rust's regex,
 * tiktoken and Oniguruma (HF tokenizers) read it. The contractions are
 * case-sensitive ("'S" is "'" then "S"), and a run of white space followed by
 * a word leaves its last character to the word (\s+(?!\S)).
 *
 * Bytes that are not valid UTF-8 (a stray continuation byte, a truncated or
 * overlong sequence, a surrogate, anything above U+10FFFF) count one byte at
 * a time as characters of the "other" class [^\s\p{L}\p{N}], so every byte of
 * any input lands in exactly one piece. */
#ifndef TESSERA_BPE_PRETOKENIZE_H
#define TESSERA_BPE_PRETOKENIZE_H

#include <stddef.h>

/* The end of the piece that starts at byte `start` (< n_bytes) of text. */
size_t bpe_pretoken_end(const unsigned char *text, size_t n_bytes, size_t start);

#endif

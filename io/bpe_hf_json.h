/* bpe_hf_json — Hugging Face's tokenizer.json for byte-level BPE, both ways.
 *
 * Read: model.type "BPE" (merges as "left right" strings or [left, right]
 * pairs), with the ByteLevel pre-tokenizer (add_prefix_space false, GPT-2's
 * regex) and no normalizer; anything else (a Unigram/SentencePiece model, a
 * Split pre-tokenizer with another pattern such as Llama 3's, byte fallback,
 * dropout, subword prefixes) is refused with one message naming it.
 * Write: the same layout as GPT-2's tokenizer.json on the Hugging Face hub,
 * merges as "left right" strings (byte-level tokens never hold a space: it is
 * spelled 'Ġ'), which every tokenizers release reads. */
#ifndef TESSERA_BPE_HF_JSON_H
#define TESSERA_BPE_HF_JSON_H

#include <stddef.h>

#include "bpe_model.h"

/* origin names the text in messages, e.g. "'PATH'" or "the stored tokenizer.json". */
bpe_model *bpe_from_hf_json(const char *text, size_t n_bytes, const char *origin, char *err,
                            size_t err_bytes);
/* malloc'd, NUL-terminated; NULL only when out of memory. */
char *bpe_to_hf_json(const bpe_model *m);

#endif

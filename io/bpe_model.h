/* bpe_model — a byte-level BPE vocabulary and its merges, in memory.
 *
 * Tokens are kept as their raw bytes (not GPT-2's printable spelling, see
 * bpe_alphabet.h), indexed by id. Merges are kept in rank order (rank 0 is
 * applied first) and looked up by their pair of ids in a hash table.
 * Added tokens (<|endoftext|> and the like) are kept with the flags a
 * tokenizer.json gives them, so that writing the model back loses nothing.
 *
 * Building checks what a damaged file would break: ids are non-negative and
 * unique, no token appears twice, every merge joins two vocabulary tokens
 * into a third, no merge repeats, and every one of the 256 bytes is a token
 * (so any text can be encoded). Each check fails with one line in err; the
 * loaders put the file's name in front. */
#ifndef TESSERA_BPE_MODEL_H
#define TESSERA_BPE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "byte_table.h"

typedef struct bpe_added_token {
  int32_t id;
  bool special, normalized, lstrip, rstrip, single_word;
} bpe_added_token;

typedef struct bpe_merge {
  int32_t left, right, merged;
} bpe_merge;

/* bpe_model.token_flags: a vocabulary token; an added token; an added token
 * that the vocabulary also lists under its own text (not byte-level spelled) */
enum { BPE_IN_VOCAB = 1, BPE_ADDED = 2, BPE_VOCAB_AS_TEXT = 4 };

typedef struct bpe_model {
  int32_t n_ids;          /* the largest id + 1 */
  size_t ids_capacity;
  uint32_t *token_offset; /* per id: where its bytes lie in text */
  uint32_t *token_bytes;  /* per id: how many */
  uint8_t *token_flags;   /* per id: BPE_* flags; 0 = id unused */
  char *text;
  size_t text_used, text_capacity;
  byte_table vocab;       /* bytes -> id of the vocabulary's tokens */
  int32_t byte_id[256];   /* the token of each single byte */
  bpe_merge *merges;      /* in rank order */
  size_t n_merges, merges_capacity;
  uint64_t *pair_key;     /* (left << 32 | right) + 1; 0 = empty slot */
  int32_t *pair_rank;
  size_t pair_slots;      /* a power of two */
  bpe_added_token *added;
  size_t n_added, added_capacity;
  int32_t eot;            /* <|endoftext|>, or -1 */
} bpe_model;

bpe_model *bpe_model_new(void);
void bpe_model_free(bpe_model *m);

/* A vocabulary token given by its raw bytes. */
int bpe_model_add_token(bpe_model *m, const char *bytes, size_t n_bytes, int64_t id, char *err,
                        size_t err_bytes);
/* An added token given by its text; it may also be the vocabulary token of
 * the same id (GPT-2's <|endoftext|> is both). */
int bpe_model_add_special(bpe_model *m, const char *text, size_t n_bytes, const bpe_added_token *token,
                          char *err, size_t err_bytes);
/* The next merge in rank order, its two parts given by their raw bytes. */
int bpe_model_add_merge(bpe_model *m, const char *left, size_t left_bytes, const char *right,
                        size_t right_bytes, char *err, size_t err_bytes);
/* After the last token and merge: checks the whole and builds the lookups. */
int bpe_model_finish(bpe_model *m, char *err, size_t err_bytes);

/* The bytes of id (NULL when the id is unused). */
static inline const char *bpe_token(const bpe_model *m, int32_t id, size_t *n_bytes) {
  if (id < 0 || id >= m->n_ids || !m->token_flags[id]) return NULL;
  *n_bytes = m->token_bytes[id];
  return m->text + m->token_offset[id];
}

/* The rank of merging left with right, or -1 when no merge joins them. */
static inline int32_t bpe_pair_rank(const bpe_model *m, int32_t left, int32_t right) {
  uint64_t key = ((uint64_t)(uint32_t)left << 32 | (uint32_t)right) + 1;
  size_t mask = m->pair_slots - 1;
  for (size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;; i = (i + 1) & mask) {
    if (m->pair_key[i] == key) return m->pair_rank[i];
    if (m->pair_key[i] == 0) return -1;
  }
}

#endif

/* bpe_model — see bpe_model.h. */
#include "bpe_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

/* Ids above this are refused as damage: no real vocabulary comes close, and
 * a bad number must not make us allocate gigabytes. */
#define MAX_ID 16000000

static void *grow(void *old, size_t n_bytes, const char *what) {
  void *p = realloc(old, n_bytes);
  if (!p) fail_local(EXIT_USER_ERROR, "out of memory: %zu bytes for %s", n_bytes, what);
  return p;
}

bpe_model *bpe_model_new(void) {
  bpe_model *m = xcalloc(1, sizeof *m, "tokenizer");
  byte_table_init(&m->vocab, 65536);
  m->eot = -1;
  for (int b = 0; b < 256; b++) m->byte_id[b] = -1;
  return m;
}

void bpe_model_free(bpe_model *m) {
  if (!m) return;
  free(m->token_offset);
  free(m->token_bytes);
  free(m->token_flags);
  free(m->text);
  byte_table_free(&m->vocab);
  free(m->merges);
  free(m->pair_key);
  free(m->pair_rank);
  free(m->added);
  free(m);
}

/* Makes ids 0..id exist (unused ones flagged 0). */
static void reserve_id(bpe_model *m, int32_t id) {
  if ((size_t)id >= m->ids_capacity) {
    size_t cap = m->ids_capacity ? m->ids_capacity : 1024;
    while (cap <= (size_t)id) cap *= 2;
    m->token_offset = grow(m->token_offset, cap * sizeof *m->token_offset, "token table");
    m->token_bytes = grow(m->token_bytes, cap * sizeof *m->token_bytes, "token table");
    m->token_flags = grow(m->token_flags, cap, "token table");
    memset(m->token_flags + m->ids_capacity, 0, cap - m->ids_capacity);
    m->ids_capacity = cap;
  }
  if (id >= m->n_ids) m->n_ids = id + 1;
}

static void store_text(bpe_model *m, int32_t id, const char *bytes, size_t n_bytes) {
  if (m->text_used + n_bytes > m->text_capacity) {
    size_t cap = m->text_capacity ? m->text_capacity : 65536;
    while (m->text_used + n_bytes > cap) cap *= 2;
    m->text = grow(m->text, cap, "token text");
    m->text_capacity = cap;
  }
  memcpy(m->text + m->text_used, bytes, n_bytes);
  m->token_offset[id] = (uint32_t)m->text_used;
  m->token_bytes[id] = (uint32_t)n_bytes;
  m->text_used += n_bytes;
}

/* For messages: the token's bytes, non-printable ones as \xNN, cut short. */
static const char *shown(const char *bytes, size_t n_bytes, char out[80]) {
  size_t o = 0;
  for (size_t i = 0; i < n_bytes && o < 70; i++) {
    unsigned char c = (unsigned char)bytes[i];
    if (c >= 0x20 && c < 0x7F && c != '\\') out[o++] = (char)c;
    else o += (size_t)snprintf(out + o, 80 - o, "\\x%02x", c);
  }
  if (o >= 70) o = (size_t)snprintf(out + 70, 10, "...") + 70;
  out[o] = '\0';
  return out;
}

int bpe_model_add_token(bpe_model *m, const char *bytes, size_t n_bytes, int64_t id, char *err,
                        size_t err_bytes) {
  char a[80], b[80];
  if (id < 0 || id > MAX_ID) {
    snprintf(err, err_bytes, "token '%s' has the id %lld, outside 0..%d", shown(bytes, n_bytes, a),
             (long long)id, MAX_ID);
    return -1;
  }
  if (n_bytes == 0) {
    snprintf(err, err_bytes, "the empty string is a token (id %lld)", (long long)id);
    return -1;
  }
  reserve_id(m, (int32_t)id);
  if (m->token_flags[id] & BPE_IN_VOCAB) {
    size_t n_old = 0;
    const char *old = bpe_token(m, (int32_t)id, &n_old);
    snprintf(err, err_bytes, "id %lld is given to two tokens, '%s' and '%s'", (long long)id,
             shown(old, n_old, a), shown(bytes, n_bytes, b));
    return -1;
  }
  uint32_t existing;
  if (byte_table_insert(&m->vocab, bytes, n_bytes, byte_table_hash(bytes, n_bytes), (uint32_t)id,
                        &existing)) {
    snprintf(err, err_bytes, "token '%s' appears twice (ids %u and %lld)", shown(bytes, n_bytes, a),
             existing, (long long)id);
    return -1;
  }
  store_text(m, (int32_t)id, bytes, n_bytes);
  m->token_flags[id] = BPE_IN_VOCAB;
  if (n_bytes == 1) m->byte_id[(unsigned char)bytes[0]] = (int32_t)id;
  return 0;
}

int bpe_model_add_special(bpe_model *m, const char *text, size_t n_bytes, const bpe_added_token *token,
                          char *err, size_t err_bytes) {
  char a[80], b[80];
  int32_t id = token->id;
  if (id < 0 || id > MAX_ID || n_bytes == 0) {
    snprintf(err, err_bytes, "added token '%s' has the id %d or no text", shown(text, n_bytes, a), (int)id);
    return -1;
  }
  reserve_id(m, id);
  size_t n_old = 0;
  const char *old = bpe_token(m, id, &n_old);
  if (m->token_flags[id] & BPE_ADDED) {
    snprintf(err, err_bytes, "id %d is given to two added tokens", (int)id);
    return -1;
  }
  if (old && (n_old != n_bytes || memcmp(old, text, n_bytes) != 0)) {
    snprintf(err, err_bytes, "added token '%s' has the id %d of the token '%s'", shown(text, n_bytes, a),
             (int)id, shown(old, n_old, b));
    return -1;
  }
  if (!old) store_text(m, id, text, n_bytes);
  m->token_flags[id] |= BPE_ADDED;
  if (m->n_added == m->added_capacity) {
    m->added_capacity = m->added_capacity ? 2 * m->added_capacity : 16;
    m->added = grow(m->added, m->added_capacity * sizeof *m->added, "added tokens");
  }
  m->added[m->n_added++] = *token;
  if (n_bytes == 13 && memcmp(text, "<|endoftext|>", 13) == 0) m->eot = id;
  return 0;
}

int bpe_model_add_merge(bpe_model *m, const char *left, size_t left_bytes, const char *right,
                        size_t right_bytes, char *err, size_t err_bytes) {
  char a[80], b[80];
  uint32_t l, r, merged;
  if (!byte_table_find(&m->vocab, left, left_bytes, byte_table_hash(left, left_bytes), &l) ||
      !byte_table_find(&m->vocab, right, right_bytes, byte_table_hash(right, right_bytes), &r)) {
    int left_missing = !byte_table_find(&m->vocab, left, left_bytes, byte_table_hash(left, left_bytes), &l);
    snprintf(err, err_bytes, "merge %zu ('%s' '%s') names '%s', which is not in the vocabulary",
             m->n_merges + 1, shown(left, left_bytes, a), shown(right, right_bytes, b),
             left_missing ? a : b);
    return -1;
  }
  size_t joined_bytes = left_bytes + right_bytes;
  char *joined = xmalloc(joined_bytes, "merge");
  memcpy(joined, left, left_bytes);
  memcpy(joined + left_bytes, right, right_bytes);
  int found = byte_table_find(&m->vocab, joined, joined_bytes, byte_table_hash(joined, joined_bytes), &merged);
  free(joined);
  if (!found) {
    snprintf(err, err_bytes, "merge %zu ('%s' '%s') makes a token that is not in the vocabulary",
             m->n_merges + 1, shown(left, left_bytes, a), shown(right, right_bytes, b));
    return -1;
  }
  if (m->n_merges == m->merges_capacity) {
    m->merges_capacity = m->merges_capacity ? 2 * m->merges_capacity : 65536;
    m->merges = grow(m->merges, m->merges_capacity * sizeof *m->merges, "merges");
  }
  m->merges[m->n_merges++] = (bpe_merge){(int32_t)l, (int32_t)r, (int32_t)merged};
  return 0;
}

/* The pair table: (left, right) -> rank, at most half full. */
static int build_pairs(bpe_model *m, char *err, size_t err_bytes) {
  m->pair_slots = 16;
  while (m->pair_slots < 2 * m->n_merges) m->pair_slots *= 2;
  m->pair_key = xcalloc(m->pair_slots, sizeof *m->pair_key, "merge table");
  m->pair_rank = xmalloc(m->pair_slots * sizeof *m->pair_rank, "merge table");
  size_t mask = m->pair_slots - 1;
  for (size_t r = 0; r < m->n_merges; r++) {
    uint64_t key = ((uint64_t)(uint32_t)m->merges[r].left << 32 | (uint32_t)m->merges[r].right) + 1;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;
    while (m->pair_key[i] != 0 && m->pair_key[i] != key) i = (i + 1) & mask;
    if (m->pair_key[i] == key) {
      char a[80], b[80];
      size_t nl = 0, nr = 0;
      const char *l = bpe_token(m, m->merges[r].left, &nl), *rt = bpe_token(m, m->merges[r].right, &nr);
      snprintf(err, err_bytes, "merge %zu ('%s' '%s') repeats merge %d", r + 1, shown(l, nl, a),
               shown(rt, nr, b), (int)m->pair_rank[i] + 1);
      return -1;
    }
    m->pair_key[i] = key;
    m->pair_rank[i] = (int32_t)r;
  }
  return 0;
}

int bpe_model_finish(bpe_model *m, char *err, size_t err_bytes) {
  for (int b = 0; b < 256; b++) {
    if (m->byte_id[b] < 0) {
      snprintf(err, err_bytes, "the vocabulary lacks the token of the byte 0x%02x: not a byte-level BPE", b);
      return -1;
    }
  }
  uint32_t id; /* an <|endoftext|> that is no added token is still the end of text */
  if (m->eot < 0 && byte_table_find(&m->vocab, "<|endoftext|>", 13, byte_table_hash("<|endoftext|>", 13), &id))
    m->eot = (int32_t)id;
  return build_pairs(m, err, err_bytes);
}

/* bpe_encode — see bpe_encode.h. */
#include "bpe_encode.h"

#include <stdlib.h>
#include <string.h>

#include "bpe_pretokenize.h"
#include "byte_table.h"
#include "fail.h"

/* Pieces longer than this are merged every time: they are rare, and caching
 * them would let one long line fill the cache. */
#define MAX_CACHED_BYTES 128
#define MAX_CACHED_IDS (4u << 20)
#define MAX_CACHED_KEY_BYTES (32u << 20)

typedef struct candidate {
  int32_t rank, left, right; /* merge `rank` would join the symbols at these positions */
} candidate;

struct bpe_encoder {
  const bpe_model *m;
  byte_table cache;       /* piece bytes -> offset in cache_ids: count, then the ids */
  int32_t *cache_ids;
  size_t cache_used;
  /* the piece being merged: symbol at byte position i (id -1 once absorbed) */
  int32_t *id, *next, *prev;
  candidate *heap;
  size_t n_heap, scratch_capacity;
};

bpe_encoder *bpe_encoder_new(const bpe_model *m) {
  bpe_encoder *e = xcalloc(1, sizeof *e, "tokenizer cache");
  e->m = m;
  byte_table_init(&e->cache, 1u << 16);
  e->cache_ids = xmalloc(MAX_CACHED_IDS * sizeof *e->cache_ids, "tokenizer cache");
  return e;
}

void bpe_encoder_free(bpe_encoder *e) {
  if (!e) return;
  byte_table_free(&e->cache);
  free(e->cache_ids);
  free(e->id);
  free(e->next);
  free(e->prev);
  free(e->heap);
  free(e);
}

static void reserve_scratch(bpe_encoder *e, size_t n_bytes) {
  if (n_bytes <= e->scratch_capacity) return;
  size_t cap = e->scratch_capacity ? e->scratch_capacity : 256;
  while (cap < n_bytes) cap *= 2;
  free(e->id);
  free(e->next);
  free(e->prev);
  free(e->heap);
  e->id = xmalloc(cap * sizeof *e->id, "tokenizer scratch");
  e->next = xmalloc(cap * sizeof *e->next, "tokenizer scratch");
  e->prev = xmalloc(cap * sizeof *e->prev, "tokenizer scratch");
  /* each merge adds at most two candidates to the n - 1 initial ones */
  e->heap = xmalloc(3 * cap * sizeof *e->heap, "tokenizer scratch");
  e->scratch_capacity = cap;
}

static int before(candidate a, candidate b) {
  return a.rank < b.rank || (a.rank == b.rank && a.left < b.left);
}

static void push(bpe_encoder *e, int32_t left, int32_t right) {
  int32_t rank = bpe_pair_rank(e->m, e->id[left], e->id[right]);
  if (rank < 0) return;
  candidate c = {rank, left, right};
  size_t i = e->n_heap++;
  while (i > 0 && before(c, e->heap[(i - 1) / 2])) {
    e->heap[i] = e->heap[(i - 1) / 2];
    i = (i - 1) / 2;
  }
  e->heap[i] = c;
}

static candidate pop(bpe_encoder *e) {
  candidate top = e->heap[0], last = e->heap[--e->n_heap];
  size_t i = 0, n = e->n_heap;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && before(e->heap[child + 1], e->heap[child])) child++;
    if (!before(e->heap[child], last)) break;
    e->heap[i] = e->heap[child];
    i = child;
  }
  if (n > 0) e->heap[i] = last;
  return top;
}

/* A candidate is stale once either symbol changed or left's neighbour did. */
static int still_valid(const bpe_encoder *e, candidate c) {
  const bpe_merge *mg = &e->m->merges[c.rank];
  return e->next[c.left] == c.right && e->id[c.left] == mg->left && e->id[c.right] == mg->right;
}

static size_t merge_piece(bpe_encoder *e, const unsigned char *piece, size_t n_bytes, int32_t *out) {
  ENSURE(n_bytes < INT32_MAX / 4, "a piece of %zu bytes is too long to merge", n_bytes);
  reserve_scratch(e, n_bytes);
  int32_t n = (int32_t)n_bytes;
  for (int32_t i = 0; i < n; i++) {
    e->id[i] = e->m->byte_id[piece[i]];
    e->next[i] = i + 1 < n ? i + 1 : -1;
    e->prev[i] = i - 1;
  }
  e->n_heap = 0;
  for (int32_t i = 0; i + 1 < n; i++) push(e, i, i + 1);
  while (e->n_heap > 0) {
    candidate c = pop(e);
    if (!still_valid(e, c)) continue;
    e->id[c.left] = e->m->merges[c.rank].merged;
    int32_t after = e->next[c.right];
    e->id[c.right] = -1;
    e->next[c.left] = after;
    if (after >= 0) e->prev[after] = c.left;
    if (e->prev[c.left] >= 0) push(e, e->prev[c.left], c.left);
    if (after >= 0) push(e, c.left, after);
  }
  size_t n_out = 0;
  for (int32_t i = 0; i >= 0; i = e->next[i]) out[n_out++] = e->id[i];
  return n_out;
}

static size_t encode_piece(bpe_encoder *e, const unsigned char *piece, size_t n_bytes, int32_t *out) {
  if (n_bytes == 1) {
    out[0] = e->m->byte_id[piece[0]];
    return 1;
  }
  if (n_bytes > MAX_CACHED_BYTES) return merge_piece(e, piece, n_bytes, out);
  uint64_t hash = byte_table_hash(piece, n_bytes);
  uint32_t at;
  if (byte_table_find(&e->cache, piece, n_bytes, hash, &at)) {
    size_t n_ids = (size_t)e->cache_ids[at];
    memcpy(out, e->cache_ids + at + 1, n_ids * sizeof *out);
    return n_ids;
  }
  size_t n_ids = merge_piece(e, piece, n_bytes, out);
  if (e->cache_used + n_ids + 1 > MAX_CACHED_IDS || e->cache.arena_used > MAX_CACHED_KEY_BYTES) {
    byte_table_clear(&e->cache);
    e->cache_used = 0;
  }
  uint32_t existing;
  byte_table_insert(&e->cache, piece, n_bytes, hash, (uint32_t)e->cache_used, &existing);
  e->cache_ids[e->cache_used] = (int32_t)n_ids;
  memcpy(e->cache_ids + e->cache_used + 1, out, n_ids * sizeof *out);
  e->cache_used += n_ids + 1;
  return n_ids;
}

size_t bpe_encode(bpe_encoder *e, const char *text, size_t n_bytes, int32_t *out) {
  const unsigned char *s = (const unsigned char *)text;
  size_t n_out = 0;
  for (size_t i = 0; i < n_bytes;) {
    size_t end = bpe_pretoken_end(s, n_bytes, i);
    n_out += encode_piece(e, s + i, end - i, out + n_out);
    i = end;
  }
  return n_out;
}

/* byte_table — see byte_table.h. */
#include "byte_table.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

#define EMPTY UINT32_MAX

/* Eight bytes at a time, each folded in by a multiply and a rotation, then
 * splitmix64's finalizer so that short keys differing in one byte spread
 * over all 64 bits (the slot index takes the low bits). */
uint64_t byte_table_hash(const void *key, size_t n_bytes) {
  const unsigned char *p = key;
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n_bytes;
  while (n_bytes >= 8) {
    uint64_t chunk;
    memcpy(&chunk, p, 8);
    h = (h ^ chunk) * 0xBF58476D1CE4E5B9ull;
    h = (h << 29) | (h >> 35);
    p += 8;
    n_bytes -= 8;
  }
  uint64_t tail = 0;
  memcpy(&tail, p, n_bytes);
  h = (h ^ tail) * 0x94D049BB133111EBull;
  h ^= h >> 31;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 29;
  return h;
}

static void *grow(void *old, size_t n_bytes, const char *what) {
  void *p = realloc(old, n_bytes);
  if (!p) fail_local(EXIT_USER_ERROR, "out of memory: %zu bytes for %s", n_bytes, what);
  return p;
}

static void empty_slots(byte_table_slot *slots, size_t n_slots) {
  for (size_t i = 0; i < n_slots; i++) slots[i].key_offset = EMPTY;
}

void byte_table_init(byte_table *t, size_t expected_keys) {
  memset(t, 0, sizeof *t);
  t->n_slots = 16;
  while (t->n_slots < 2 * expected_keys) t->n_slots *= 2;
  t->slots = xmalloc(t->n_slots * sizeof *t->slots, "hash table slots");
  empty_slots(t->slots, t->n_slots);
  t->arena_bytes = 8 * expected_keys + 64;
  t->arena = xmalloc(t->arena_bytes, "hash table keys");
}

void byte_table_free(byte_table *t) {
  free(t->slots);
  free(t->arena);
  memset(t, 0, sizeof *t);
}

void byte_table_clear(byte_table *t) {
  empty_slots(t->slots, t->n_slots);
  t->n_keys = 0;
  t->arena_used = 0;
}

int byte_table_find(const byte_table *t, const void *key, size_t n_bytes, uint64_t hash,
                    uint32_t *value) {
  size_t mask = t->n_slots - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const byte_table_slot *s = &t->slots[i];
    if (s->key_offset == EMPTY) return 0;
    if (s->hash == hash && s->key_bytes == n_bytes &&
        memcmp(t->arena + s->key_offset, key, n_bytes) == 0) {
      *value = s->value;
      return 1;
    }
  }
}

/* Doubles the slots at half full: probes stay short. */
static void rehash(byte_table *t) {
  size_t n_old = t->n_slots;
  byte_table_slot *old = t->slots;
  t->n_slots = 2 * n_old;
  t->slots = xmalloc(t->n_slots * sizeof *t->slots, "hash table slots");
  empty_slots(t->slots, t->n_slots);
  size_t mask = t->n_slots - 1;
  for (size_t j = 0; j < n_old; j++) {
    if (old[j].key_offset == EMPTY) continue;
    size_t i = old[j].hash & mask;
    while (t->slots[i].key_offset != EMPTY) i = (i + 1) & mask;
    t->slots[i] = old[j];
  }
  free(old);
}

int byte_table_insert(byte_table *t, const void *key, size_t n_bytes, uint64_t hash, uint32_t value,
                      uint32_t *existing) {
  if (byte_table_find(t, key, n_bytes, hash, existing)) return 1;
  ENSURE(n_bytes < EMPTY && t->arena_used + n_bytes < EMPTY, "hash table keys over 4 GiB");
  if (2 * (t->n_keys + 1) > t->n_slots) rehash(t);
  if (t->arena_used + n_bytes > t->arena_bytes) {
    while (t->arena_used + n_bytes > t->arena_bytes) t->arena_bytes *= 2;
    t->arena = grow(t->arena, t->arena_bytes, "hash table keys");
  }
  memcpy(t->arena + t->arena_used, key, n_bytes);
  size_t mask = t->n_slots - 1;
  size_t i = hash & mask;
  while (t->slots[i].key_offset != EMPTY) i = (i + 1) & mask;
  t->slots[i] = (byte_table_slot){hash, (uint32_t)t->arena_used, (uint32_t)n_bytes, value};
  t->arena_used += n_bytes;
  t->n_keys++;
  return 0;
}

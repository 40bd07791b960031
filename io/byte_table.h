/* byte_table — a hash map from byte strings to 32-bit values.
 *
 * Open addressing with linear probing over a power-of-two table of slots,
 * each holding the key's 64-bit hash, where its bytes lie in one arena, and
 * the value. Keys are copied into the arena, so inserting never allocates
 * per key (the arena and the slots grow geometrically). Used for the BPE
 * vocabulary (token bytes -> id) and the encoder's word cache (word bytes
 * -> where its ids lie). Out of memory ends the process (xmalloc). */
#ifndef TESSERA_BYTE_TABLE_H
#define TESSERA_BYTE_TABLE_H

#include <stddef.h>
#include <stdint.h>

typedef struct byte_table_slot {
  uint64_t hash;
  uint32_t key_offset; /* UINT32_MAX: empty slot */
  uint32_t key_bytes;
  uint32_t value;
} byte_table_slot;

typedef struct byte_table {
  byte_table_slot *slots;
  size_t n_slots; /* a power of two */
  size_t n_keys;
  char *arena;
  size_t arena_used, arena_bytes;
} byte_table;

/* The hash every table uses (64 bits, good on short keys). */
uint64_t byte_table_hash(const void *key, size_t n_bytes);

void byte_table_init(byte_table *t, size_t expected_keys);
void byte_table_free(byte_table *t);
/* Forgets every key, keeping the memory. */
void byte_table_clear(byte_table *t);

/* 1 and *value when key is present, else 0. hash = byte_table_hash(key). */
int byte_table_find(const byte_table *t, const void *key, size_t n_bytes, uint64_t hash,
                    uint32_t *value);
/* Inserts key -> value. Returns 0, or 1 (and leaves the table unchanged)
 * when the key is already there: *existing then holds its value. Keys are
 * at most UINT32_MAX bytes and the arena at most 4 GiB. */
int byte_table_insert(byte_table *t, const void *key, size_t n_bytes, uint64_t hash, uint32_t value,
                      uint32_t *existing);

#endif

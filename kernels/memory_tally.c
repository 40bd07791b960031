/* memory_tally — see memory_tally.h. A run holds a few dozen buffers, made
 * at start-up: a linear list is all the lookup needs. */
#include "memory_tally.h"

#include <pthread.h>
#include <stdlib.h>

#include "fail.h"

typedef struct tally_entry {
  const void *buffer;
  size_t bytes;
  memory_kind kind;
} tally_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static tally_entry *entries;
static size_t n_entries, capacity;
static size_t held[MEMORY_N_KINDS];

static tally_entry *find(const void *buffer) {
  for (size_t i = 0; i < n_entries; i++)
    if (entries[i].buffer == buffer) return &entries[i];
  return NULL;
}

void memory_tally_add(const void *buffer, size_t bytes) {
  pthread_mutex_lock(&lock);
  if (n_entries == capacity) {
    capacity = capacity ? 2 * capacity : 64;
    tally_entry *grown = realloc(entries, capacity * sizeof *entries);
    if (!grown) fail_local(EXIT_USER_ERROR, "out of memory growing the memory tally");
    entries = grown;
  }
  entries[n_entries++] = (tally_entry){.buffer = buffer, .bytes = bytes, .kind = MEMORY_OTHER};
  held[MEMORY_OTHER] += bytes;
  pthread_mutex_unlock(&lock);
}

void memory_tally_remove(const void *buffer) {
  pthread_mutex_lock(&lock);
  tally_entry *e = find(buffer);
  if (e) {
    held[e->kind] -= e->bytes;
    *e = entries[--n_entries];
  }
  pthread_mutex_unlock(&lock);
}

void memory_tally_claim(const void *buffer, memory_kind kind) {
  pthread_mutex_lock(&lock);
  tally_entry *e = find(buffer);
  if (e) {
    held[e->kind] -= e->bytes;
    e->kind = kind;
    held[kind] += e->bytes;
  }
  pthread_mutex_unlock(&lock);
  ENSURE(e != NULL, "memory tally: a buffer no backend allocated was claimed");
}

size_t memory_tally_bytes(memory_kind kind) {
  pthread_mutex_lock(&lock);
  const size_t bytes = held[kind];
  pthread_mutex_unlock(&lock);
  return bytes;
}

/* buffer_sizer — see buffer_sizer.h. */
#include "buffer_sizer.h"

#include <stdlib.h>
#include <string.h>

buffer_sizer buffer_sizer_allocating(const backend *be) { return (buffer_sizer){.be = be, .allocate = true}; }
buffer_sizer buffer_sizer_counting(const backend *be) { return (buffer_sizer){.be = be, .allocate = false}; }

/* the tally counts what was asked for (memory_tally.h): so does the sizer */
static void *counted(buffer_sizer *s, void *buffer, size_t bytes, memory_kind kind) {
  s->bytes[kind] += bytes;
  if (buffer && kind != MEMORY_OTHER) memory_tally_claim(buffer, kind);
  return buffer;
}

act_t *sizer_act(buffer_sizer *s, size_t n, memory_kind kind, const char *what) {
  return counted(s, s->allocate ? s->be->alloc_act(n, what) : NULL, n * s->be->act_elem_bytes, kind);
}
f32_t *sizer_f32(buffer_sizer *s, size_t n, memory_kind kind, const char *what) {
  return counted(s, s->allocate ? s->be->alloc_f32(n, what) : NULL, n * sizeof(float), kind);
}
ids_t *sizer_ids(buffer_sizer *s, size_t n, memory_kind kind, const char *what) {
  return counted(s, s->allocate ? s->be->alloc_ids(n, what) : NULL, n * sizeof(int32_t), kind);
}

float *sizer_host(buffer_sizer *s, size_t n, memory_kind kind, const char *what) {
  return counted(s, s->allocate ? s->be->alloc_host(n, what) : NULL, n * sizeof(float), kind);
}
void *sizer_host_bytes(buffer_sizer *s, size_t bytes, size_t align, memory_kind kind) {
  void *p = NULL;
  if (s->allocate) {
    if (posix_memalign(&p, align, bytes) != 0) return NULL;
    memset(p, 0, bytes); /* touched now: the RAM is held from the start, as reported */
    memory_tally_add(p, bytes);
  }
  return counted(s, p, bytes, kind);
}

uint64_t buffer_sizer_total(const buffer_sizer *s) {
  uint64_t t = 0;
  for (int k = 0; k < MEMORY_N_KINDS; k++) t += s->bytes[k];
  return t;
}

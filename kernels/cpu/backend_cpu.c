/* backend_cpu — the CPU backend's table: fp32 host memory, OpenBLAS GEMMs,
 * OpenMP loops. Every buffer is a plain 64-byte-aligned host array (float for
 * act_t and f32_t, int32_t for ids_t), so host_pointer is the identity and
 * communication needs no staging. This backend is the reference that every
 * other backend's test compares against.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu_ops.h"
#include "fail.h"
#include "memory_tally.h"

static void *aligned_buffer(size_t n_bytes, const char *what) {
  void *p = NULL;
  size_t rounded = (n_bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
    fail_local(EXIT_USER_ERROR, "out of memory allocating %.1f MiB for %s",
               (double)n_bytes / (1 << 20), what);
  memory_tally_add(p, n_bytes); /* what was asked for: the formulas' bytes */
  return p;
}

static act_t *alloc_act(size_t n, const char *what) { return aligned_buffer(n * sizeof(float), what); }
static f32_t *alloc_f32(size_t n, const char *what) { return aligned_buffer(n * sizeof(float), what); }
static ids_t *alloc_ids(size_t n, const char *what) { return aligned_buffer(n * sizeof(int32_t), what); }
static void free_buffer(void *buffer) {
  memory_tally_remove(buffer);
  free(buffer);
}
static float *alloc_host(size_t n, const char *what) { return aligned_buffer(n * sizeof(float), what); }
static void free_host(float *buffer) { free_buffer(buffer); }
static void zero_act(act_t *x, size_t n) { memset(x, 0, n * sizeof(float)); }
static void zero_f32(f32_t *x, size_t n) { memset(x, 0, n * sizeof(float)); }
static void act_from_host(act_t *dst, const float *src, size_t n) { memmove(dst, src, n * sizeof(float)); }
static void act_to_host(float *dst, const act_t *src, size_t n) { memmove(dst, src, n * sizeof(float)); }
static void f32_from_host(f32_t *dst, const float *src, size_t n) { memmove(dst, src, n * sizeof(float)); }
static void f32_to_host(float *dst, const f32_t *src, size_t n) { memmove(dst, src, n * sizeof(float)); }
static void ids_from_host(ids_t *dst, const int32_t *src, size_t n) {
  memmove(dst, src, n * sizeof(int32_t));
}
static void *host_pointer(void *buffer) { return buffer; }
static void synchronize(void) {}
static void *mark_create(void) { return xcalloc(1, sizeof(struct timespec), "timing mark"); }
static void mark_record(void *mark) { clock_gettime(CLOCK_MONOTONIC, (struct timespec *)mark); }
static double mark_elapsed_ms(void *from, void *to) {
  const struct timespec *a = from, *b = to;
  return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) * 1e-6;
}
static void mark_destroy(void *mark) { free(mark); }
static int device_count(void) { return 0; }
static void device_describe(char *out, size_t out_bytes) { snprintf(out, out_bytes, "host CPU (fp32, BLAS)"); }
static void device_id(char *out, size_t out_bytes) { snprintf(out, out_bytes, "host"); }
static void *stream(void) { return NULL; }

/* the runtime ops are this file's statics; the compute ops cpu_<op> (cpu_ops.h) */
#define CPU_OP_ENTRY(ret, op, params) .op = cpu_##op,
static const backend cpu_backend = {
    .name = "cpu",
    .kind = BACKEND_CPU,
    .act_elem_bytes = sizeof(float),
    BACKEND_RUNTIME_OPS(BACKEND_RUNTIME_ENTRY)
    BACKEND_COMPUTE_OPS(CPU_OP_ENTRY)
};

const backend *backend_cpu(void) { return &cpu_backend; }

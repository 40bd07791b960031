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

static void *aligned_buffer(size_t n_bytes, const char *what) {
  void *p = NULL;
  size_t rounded = (n_bytes + 63) / 64 * 64;
  if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0)
    fail_local(EXIT_USER_ERROR, "out of memory allocating %.1f MiB for %s",
               (double)n_bytes / (1 << 20), what);
  return p;
}

static act_t *alloc_act(size_t n, const char *what) { return aligned_buffer(n * sizeof(float), what); }
static f32_t *alloc_f32(size_t n, const char *what) { return aligned_buffer(n * sizeof(float), what); }
static ids_t *alloc_ids(size_t n, const char *what) { return aligned_buffer(n * sizeof(int32_t), what); }
static void free_buffer(void *buffer) { free(buffer); }
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
static void cast_f32_to_act(act_t *dst, const f32_t *src, size_t n) {
  memmove(dst, src, n * sizeof(float));
}
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

static const backend cpu_backend = {
    .name = "cpu",
    .kind = BACKEND_CPU,
    .act_elem_bytes = sizeof(float),
    .alloc_act = alloc_act,
    .alloc_f32 = alloc_f32,
    .alloc_ids = alloc_ids,
    .free_buffer = free_buffer,
    .zero_act = zero_act,
    .zero_f32 = zero_f32,
    .act_from_host = act_from_host,
    .act_to_host = act_to_host,
    .f32_from_host = f32_from_host,
    .f32_to_host = f32_to_host,
    .ids_from_host = ids_from_host,
    .host_pointer = host_pointer,
    .cast_f32_to_act = cast_f32_to_act,
    .synchronize = synchronize,
    .mark_create = mark_create,
    .mark_record = mark_record,
    .mark_elapsed_ms = mark_elapsed_ms,
    .mark_destroy = mark_destroy,
    .device_count = device_count,
    .device_describe = device_describe,
    .device_id = device_id,
    .stream = stream,
    .gemm = cpu_gemm,
    .gemm_bias = cpu_gemm_bias,
    .gemm_bias_gelu = cpu_gemm_bias_gelu,
    .bias_add = cpu_bias_add,
    .bias_backward = cpu_bias_backward,
    .add = cpu_add,
    .accumulate = cpu_accumulate,
    .scale = cpu_scale,
    .copy_rows = cpu_copy_rows,
    .gelu_forward = cpu_gelu_forward,
    .gelu_backward = cpu_gelu_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .attention_saved_elems = cpu_attention_saved_elems,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .attention_block_forward = cpu_attention_block_forward,
    .attention_merge = cpu_attention_merge,
    .attention_delta = cpu_attention_delta,
    .attention_block_backward = cpu_attention_block_backward,
    .linear_attention_forward = cpu_linear_attention_forward,
    .linear_attention_state_forward = cpu_linear_attention_state_forward,
    .linear_attention_backward = cpu_linear_attention_backward,
    .linear_attention_state_backward = cpu_linear_attention_state_backward,
    .linear_attention_state_combine = cpu_linear_attention_state_combine,
    .crossentropy_max = cpu_crossentropy_max,
    .crossentropy_sumexp = cpu_crossentropy_sumexp,
    .crossentropy_finish = cpu_crossentropy_finish,
    .adamw = cpu_adamw,
    .sum_squares = cpu_sum_squares,
    .segments_create = cpu_segments_create,
    .segments_free = cpu_segments_free,
    .adamw_multi = cpu_adamw_multi,
    .sum_squares_multi = cpu_sum_squares_multi,
};

const backend *backend_cpu(void) { return &cpu_backend; }

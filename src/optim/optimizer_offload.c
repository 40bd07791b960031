/* optimizer_offload — see optimizer_offload.h. */
#include "optimizer_offload.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
#include "memory_tally.h"

#define MiB (1024.0 * 1024.0)

struct offload_state {
  offload_kind kind;
  const backend *be;      /* where the gradients and compute weights live */
  const backend *host;    /* the CPU backend: the update's arithmetic */
  size_t n_own, chunk_elems, n_chunks;
  float *state[3];        /* host: master, m, v of the whole range */
  offload_file *file;     /* nvme */
  segment_table **tables; /* per chunk: its part of each tensor, offsets from the chunk's start */
  float *grad_stage;      /* a chunk's gradient, when the backend's is not host memory */
};

offload_kind offload_kind_parse(const char *spec, const char **dir) {
  *dir = NULL;
  if (strcmp(spec, "host") == 0) return OFFLOAD_HOST;
  if (strncmp(spec, "nvme:", 5) == 0) {
    *dir = spec + 5;
    return OFFLOAD_NVME;
  }
  return OFFLOAD_NONE;
}

size_t offload_chunk_elems(double chunk_mb) {
  const size_t q = OFFLOAD_FILE_CHUNK_QUANTUM;
  size_t n = (size_t)(chunk_mb * MiB / sizeof(float));
  return n < q ? q : (n + q - 1) / q * q;
}

static size_t chunk_len(const offload_state *s, size_t k) {
  const size_t start = k * s->chunk_elems;
  return s->n_own - start < s->chunk_elems ? s->n_own - start : s->chunk_elems;
}

/* Each chunk's table: the update segments cut at the chunk's bounds. */
static void build_tables(offload_state *s, const tensor_segment *segs, int n_segs) {
  s->tables = xcalloc(s->n_chunks ? s->n_chunks : 1, sizeof *s->tables, "offload chunk tables");
  tensor_segment *cut = xmalloc((size_t)(n_segs ? n_segs : 1) * sizeof *cut, "offload chunk segments");
  for (size_t k = 0; k < s->n_chunks; k++) {
    const size_t lo = k * s->chunk_elems, hi = lo + chunk_len(s, k);
    int n = 0;
    for (int i = 0; i < n_segs; i++) {
      const size_t a = segs[i].offset > lo ? segs[i].offset : lo;
      const size_t b = segs[i].offset + segs[i].n_elems < hi ? segs[i].offset + segs[i].n_elems : hi;
      if (a < b) cut[n] = segs[i], cut[n].offset = a - lo, cut[n].n_elems = b - a, n++;
    }
    s->tables[k] = s->host->segments_create(cut, n);
  }
  free(cut);
}

void offload_buffers(buffer_sizer *sizer, offload_kind kind, size_t n_own, size_t chunk_elems, float *state[3],
                     float **grad_stage) {
  for (int i = 0; i < 3; i++)
    state[i] = kind == OFFLOAD_HOST ? sizer_host(sizer, n_own, MEMORY_OFFLOADED, "offloaded optimizer state") : NULL;
  *grad_stage = sizer->be->kind != BACKEND_CPU
                    ? sizer_host(sizer, chunk_elems, MEMORY_OFFLOADED, "offload gradient staging")
                    : NULL;
}

void offload_count(buffer_sizer *sizer, offload_kind kind, size_t n_own, size_t chunk_elems) {
  if (kind == OFFLOAD_NONE) return;
  float *slots[OFFLOAD_FILE_SLOTS], *state[3], *grad_stage;
  if (kind == OFFLOAD_NVME) offload_file_buffers(sizer, chunk_elems, slots);
  offload_buffers(sizer, kind, n_own, chunk_elems, state, &grad_stage);
}

offload_state *offload_state_create(const offload_request *req, const backend *be, size_t n_own,
                                    const tensor_segment *update_segments, int n_update, const float *master_init) {
  ENSURE(req->kind != OFFLOAD_NONE, "offload state without an offload");
  offload_state *s = xcalloc(1, sizeof *s, "offload state");
  s->kind = req->kind;
  s->be = be;
  s->host = backend_cpu();
  s->n_own = n_own;
  s->chunk_elems = req->kind == OFFLOAD_NVME ? offload_file_chunk_elems(req->file) : req->chunk_elems;
  s->n_chunks = (n_own + s->chunk_elems - 1) / s->chunk_elems;
  if (req->kind == OFFLOAD_NVME) s->file = req->file;
  buffer_sizer allocating = buffer_sizer_allocating(be);
  offload_buffers(&allocating, req->kind, n_own, s->chunk_elems, s->state, &s->grad_stage);
  build_tables(s, update_segments, n_update);
  offload_state_write(s, master_init, NULL, NULL);
  return s;
}

void offload_state_free(offload_state *s) {
  if (!s) return;
  for (size_t k = 0; k < s->n_chunks; k++) s->host->segments_free(s->tables[k]);
  free(s->tables);
  for (int i = 0; i < 3; i++)
    if (s->state[i]) s->be->free_host(s->state[i]);
  if (s->grad_stage) s->be->free_host(s->grad_stage);
  if (s->file) offload_file_remove(s->file);
  free(s);
}

offload_kind offload_state_kind(const offload_state *s) { return s->kind; }

float *offload_state_host_array(offload_state *s, int which) { return s->kind == OFFLOAD_HOST ? s->state[which] : NULL; }

/* Chunk k's three states: in the host arrays, or in an nvme slot. */
static void chunk_states(offload_state *s, size_t k, int slot, float *out[3]) {
  for (int i = 0; i < 3; i++)
    out[i] = s->kind == OFFLOAD_HOST ? s->state[i] + k * s->chunk_elems
                                     : offload_file_slot(s->file, slot) + (size_t)i * s->chunk_elems;
}

typedef struct adam_args {
  float lr, beta1, beta2, eps, grad_scale;
  int64_t step_t;
} adam_args;

/* One chunk's update: its gradient to the host (in place where it is
 * there already), the CPU AdamW, its new weights to the backend. */
static void update_chunk(offload_state *s, size_t k, float *st[3], const act_t *grad, act_t *weights,
                         const adam_args *a) {
  const backend *be = s->be;
  const size_t off = k * s->chunk_elems, n = chunk_len(s, k);
  const float *g;
  if (be->kind == BACKEND_CPU) { /* fp32 host memory: read in place */
    g = (const float *)be->host_pointer((void *)grad) + off;
  } else {
    be->act_to_host(s->grad_stage, act_at(be, grad, off), n);
    g = s->grad_stage;
  }
  s->host->adamw_multi((f32_t *)st[0], (const act_t *)g, (f32_t *)st[1], (f32_t *)st[2], s->tables[k], a->lr,
                       a->beta1, a->beta2, a->eps, a->grad_scale, a->step_t);
  be->act_from_host(act_at(be, weights, off), st[0], n);
}

/* Test-only, never set in production: TESSERA_TEST_OFFLOAD_KILL=STEP makes
 * every rank SIGKILL itself in the middle of step STEP's nvme update (chunk 0
 * written, the rest not), as a node lost mid-training leaves the files
 * (tests/offload.sh). */
static void die_if_asked(int64_t step_t) {
  const char *v = getenv("TESSERA_TEST_OFFLOAD_KILL");
  if (v && atoll(v) == step_t && raise(SIGKILL) != 0) fail_local(EXIT_INTERNAL_ERROR, "raise(SIGKILL) failed");
}

void offload_state_step(offload_state *s, const act_t *grad, act_t *weights, float lr, float beta1, float beta2,
                        float eps, float grad_scale, int64_t step_t) {
  const adam_args a = {lr, beta1, beta2, eps, grad_scale, step_t};
  float *st[3];
  if (s->kind == OFFLOAD_HOST) {
    for (size_t k = 0; k < s->n_chunks; k++) {
      chunk_states(s, k, 0, st);
      update_chunk(s, k, st, grad, weights, &a);
    }
    return;
  }
  /* three slots: while chunk k updates in slot k%3, the I/O thread writes
   * chunk k−1 (queued at the end of its update) and then reads chunk k+1
   * (queued two updates ago); chunk k+2's read goes to k−1's slot, queued
   * after that slot's write, and requests run in order */
  uint64_t reads[OFFLOAD_FILE_SLOTS] = {0};
  for (size_t k = 0; k < 2 && k < s->n_chunks; k++) reads[k] = offload_file_read(s->file, k, (int)k);
  for (size_t k = 0; k < s->n_chunks; k++) {
    const int slot = (int)(k % OFFLOAD_FILE_SLOTS);
    offload_file_wait(s->file, reads[slot]);
    chunk_states(s, k, slot, st);
    update_chunk(s, k, st, grad, weights, &a);
    offload_file_write(s->file, k, slot);
    if (k == 0) die_if_asked(step_t);
    if (k + 2 < s->n_chunks) {
      const int next = (int)((k + 2) % OFFLOAD_FILE_SLOTS);
      reads[next] = offload_file_read(s->file, k + 2, next);
    }
  }
  /* the last writes finish while the weights are shared; whatever reads
   * the file next queues behind them */
}

void offload_state_read(offload_state *s, float *const host[3]) {
  float *st[3];
  uint64_t reads[OFFLOAD_FILE_SLOTS] = {0};
  /* nvme: chunk k+1 is read while chunk k is copied out */
  if (s->kind == OFFLOAD_NVME && s->n_chunks) reads[0] = offload_file_read(s->file, 0, 0);
  for (size_t k = 0; k < s->n_chunks; k++) {
    const int slot = (int)(k % OFFLOAD_FILE_SLOTS);
    if (s->kind == OFFLOAD_NVME) {
      offload_file_wait(s->file, reads[slot]);
      if (k + 1 < s->n_chunks) {
        const int next = (int)((k + 1) % OFFLOAD_FILE_SLOTS);
        reads[next] = offload_file_read(s->file, k + 1, next);
      }
    }
    chunk_states(s, k, slot, st);
    for (int i = 0; i < 3; i++)
      if (host[i]) memcpy(host[i] + k * s->chunk_elems, st[i], chunk_len(s, k) * sizeof(float));
  }
}

void offload_state_write(offload_state *s, const float *master, const float *m, const float *v) {
  const float *from[3] = {master, m, v};
  float *st[3];
  for (size_t k = 0; k < s->n_chunks; k++) {
    const size_t off = k * s->chunk_elems, n = chunk_len(s, k);
    if (s->kind == OFFLOAD_NVME) offload_file_drain(s->file); /* slot 0 is free */
    chunk_states(s, k, 0, st);
    for (int i = 0; i < 3; i++) {
      if (!from[i]) memset(st[i], 0, n * sizeof(float));
      else if (from[i] + off != st[i]) memcpy(st[i], from[i] + off, n * sizeof(float)); /* not already in place */
    }
    if (s->kind == OFFLOAD_NVME) offload_file_write(s->file, k, 0);
  }
  if (s->kind == OFFLOAD_NVME) offload_file_drain(s->file);
}

void offload_state_describe(const offload_state *s, char *out, size_t out_bytes) {
  if (s->kind == OFFLOAD_HOST) {
    snprintf(out, out_bytes, "optimizer offloaded to host memory: %.1f MiB of master weights and Adam moments, "
             "updated in chunks of %zu elements by the host's AdamW", 3.0 * s->n_own * sizeof(float) / MiB,
             s->chunk_elems);
    return;
  }
  snprintf(out, out_bytes, "optimizer offloaded to nvme: '%s' (%s), %.1f MiB on disk, %.1f MiB of chunk buffers "
           "in RAM (3 chunks of %zu elements x 3 states)", offload_file_path(s->file),
           offload_file_direct(s->file) ? "O_DIRECT" : "page cache: the file system refused O_DIRECT",
           offload_file_disk_bytes(s->file) / MiB, offload_file_ram_bytes(s->file) / MiB, s->chunk_elems);
}

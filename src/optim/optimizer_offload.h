/* optimizer_offload — the optimizer's state of its ZeRO range kept off the
 * backend (ZeRO-Offload, ZeRO-Infinity): the fp32 master weights and both
 * Adam moments live in host memory (OFFLOAD_HOST) or in a per-rank file
 * (OFFLOAD_NVME, io/offload_file.h), and the update runs on the host with
 * the CPU backend's AdamW, chunk by chunk: each chunk's gradient read from
 * the backend (in place where it is host memory, else copied), its AdamW,
 * and its new weights written to the backend's compute weights. On the CPU
 * backend every element gets the arithmetic of the on-backend update, so
 * the results are the same bit for bit.
 *
 * With nvme the chunks flow through three buffers: chunk k+1 is read and
 * chunk k−1 written by the file's I/O thread while chunk k updates, and the
 * last writes finish while the weights are shared (the next read of the
 * file queues behind them). doc/design.md ("Optimizer offload") has the
 * memory formula and what overlaps.
 */
#ifndef TESSERA_OPTIMIZER_OFFLOAD_H
#define TESSERA_OPTIMIZER_OFFLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "offload_file.h"

typedef enum offload_kind { OFFLOAD_NONE, OFFLOAD_HOST, OFFLOAD_NVME } offload_kind;

/* What the run asks for: the kind, the chunk (elements, a multiple of
 * OFFLOAD_FILE_CHUNK_QUANTUM) and, for nvme, the file already created
 * (the offload takes it over). */
typedef struct offload_request {
  offload_kind kind;
  size_t chunk_elems;
  offload_file *file;
} offload_request;

typedef struct offload_state offload_state;

/* The state's host buffers of a range of n_own elements (host: master, m,
 * v; with a non-CPU backend a chunk's gradient staging), allocated or only
 * counted by sizer (kernels/buffer_sizer.h), as MEMORY_OFFLOADED. */
void offload_buffers(buffer_sizer *sizer, offload_kind kind, size_t n_own, size_t chunk_elems, float *state[3],
                     float **grad_stage);
/* (planner) Counts everything the run's offload of that range holds:
 * offload_buffers and, for nvme, the file's chunk buffers
 * (offload_file_buffers). The bytes the run's tally reports as offloaded. */
void offload_count(buffer_sizer *sizer, offload_kind kind, size_t n_own, size_t chunk_elems);

/* "none", "host", "nvme:DIR" (config's offload_optimizer, validated) ->
 * the kind; *dir points into spec for nvme. */
offload_kind offload_kind_parse(const char *spec, const char **dir);
/* offload_chunk_mb -> elements, rounded up to the file's quantum. */
size_t offload_chunk_elems(double chunk_mb);

/* The state of a range of n_own elements: master from master_init, moments
 * zero. update_segments: the range's tensors (optimizer.h), offsets from
 * the range's start. */
offload_state *offload_state_create(const offload_request *req, const backend *be, size_t n_own,
                                    const tensor_segment *update_segments, int n_update, const float *master_init);
void offload_state_free(offload_state *s);

/* AdamW on the range as adamw_multi would (optimizer.h); the new master
 * weights go into `weights` (the backend's compute weights of the range). */
void offload_state_step(offload_state *s, const act_t *grad, act_t *weights, float lr, float beta1, float beta2,
                        float eps, float grad_scale, int64_t step_t);

/* The states of the range into host[0] (master), host[1] (m), host[2]
 * (v), n_own floats each; a NULL one is skipped. The file is read once. */
void offload_state_read(offload_state *s, float *const host[3]);
/* The three states from host copies of the range (NULL moments: zeros). */
void offload_state_write(offload_state *s, const float *master, const float *m, const float *v);
/* The host array of state `which` when the state is in host memory, else NULL. */
float *offload_state_host_array(offload_state *s, int which);

offload_kind offload_state_kind(const offload_state *s);
/* One line for the run's report: where the state lives and its bytes. */
void offload_state_describe(const offload_state *s, char *out, size_t out_bytes);

#endif

/* memory_tally — the bytes a process holds in backend buffers, by kind, as
 * counted at allocation: every backend's alloc_* adds the bytes it was asked
 * for (before any rounding up) under MEMORY_OTHER, free_buffer takes them
 * back, and the owner of a buffer says which kind it is with
 * memory_tally_claim. The memory report (src/train/report.c) prints these
 * counts, not a formula, so tests/zero_memory.sh and
 * tests/activation_memory.sh compare what the run allocated with formulas
 * derived in the test from the model shape.
 *
 * Kinds as doc/design.md ("Memory per rank") defines them: weights (the
 * compute copy and the fp32 master), gradients, optimizer state (Adam's
 * moments), activations (the arenas of src/model/activations.c), and other
 * (communication buffers, token ids, scratch, workspaces); and offloaded:
 * with --offload-optimizer, the host RAM the optimizer's master weights and
 * moments take instead of the backend's memory (host: all of the range;
 * nvme: only the chunk buffers), registered by its owner with
 * memory_tally_add and claimed as MEMORY_OFFLOADED. Process-wide
 * and thread-safe; buffers that never go through a backend (host staging
 * with malloc) are not counted.
 */
#ifndef TESSERA_MEMORY_TALLY_H
#define TESSERA_MEMORY_TALLY_H

#include <stddef.h>

typedef enum memory_kind {
  MEMORY_WEIGHTS,
  MEMORY_GRADS,
  MEMORY_OPTIMIZER,
  MEMORY_ACTIVATIONS,
  MEMORY_OTHER,
  MEMORY_OFFLOADED, /* host RAM of optimizer state moved off the backend (--offload-optimizer) */
  MEMORY_N_KINDS
} memory_kind;

/* For backends (and the offloaded state's host buffers): a buffer of `bytes` now exists at `buffer` / is gone. */
void memory_tally_add(const void *buffer, size_t bytes);
void memory_tally_remove(const void *buffer);

/* For owners: `buffer` (from a backend's alloc_*) holds `kind`. A pointer
 * the tally does not know is an internal error. */
void memory_tally_claim(const void *buffer, memory_kind kind);

/* The bytes held now, of one kind. */
size_t memory_tally_bytes(memory_kind kind);

#endif

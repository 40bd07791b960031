/* registry — the table of every parameter (DESIGN.md principle 1).
 *
 * Each entry names a logical tensor (`layers.3.attn.wqkv`), gives its logical
 * (global) shape, the logical dimension that tensor parallelism splits (or -1
 * when every tp rank holds it whole), how it is initialised, whether weight
 * decay applies, and where this rank's shard lives in the flat parameter
 * buffer. Initialisation, the optimizer, gradient synchronisation and (later)
 * checkpoints and ZeRO partitions are all driven from this table, so a new
 * layout needs no new code there.
 *
 * A tp split takes one contiguous range of indices along one dimension: tp
 * rank r of t holds indices [r·n/t, (r+1)·n/t) of dimension `tp_split_dim`.
 * A padded split (the vocabulary) rounds n up to a multiple of t: every rank
 * holds ⌈n/t⌉ indices and the last ones may lie past the logical end. Those
 * padding rows are a layout detail: initialised to zero, never given a
 * gradient, never written to a checkpoint.
 */
#ifndef TESSERA_REGISTRY_H
#define TESSERA_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REGISTRY_MAX_DIMS 4
#define REGISTRY_NAME_BYTES 64

typedef enum init_kind { INIT_NORMAL, INIT_ZEROS, INIT_ONES } init_kind;

typedef struct param_spec {
  char name[REGISTRY_NAME_BYTES];
  int n_dims;
  int64_t shape[REGISTRY_MAX_DIMS];       /* logical shape */
  int tp_split_dim;                       /* -1: replicated over tp */
  init_kind init;
  double init_std;                        /* INIT_NORMAL only */
  bool weight_decay;                      /* decoupled decay applies (matrices) */
  int layer;                              /* transformer block, or -1 (embeddings, final norm) */
  int64_t local_shape[REGISTRY_MAX_DIMS]; /* this rank's shard */
  int64_t local_start;                    /* first index along tp_split_dim held here */
  int64_t local_valid;                    /* of those, how many are < the logical extent */
  size_t offset;                          /* of the shard in the flat buffer, elements */
  size_t n_local;                         /* elements held here */
  int64_t n_logical;                      /* elements of the logical tensor */
} param_spec;

typedef struct registry {
  param_spec *params;
  int n_params, capacity;
  size_t n_local_total; /* flat buffer length, elements */
  int tp_rank, tp_size;
} registry;

void registry_init(registry *reg, int tp_rank, int tp_size);
void registry_free(registry *reg);

/* Appends a parameter; its shard is placed after the previous one. */
const param_spec *registry_add(registry *reg, const char *name, int n_dims, const int64_t *shape,
                               int tp_split_dim, init_kind init, double init_std,
                               bool weight_decay, int layer);

/* Like registry_add, but the split dimension is padded up to a multiple of tp. */
const param_spec *registry_add_padded(registry *reg, const char *name, int n_dims,
                                      const int64_t *shape, int tp_split_dim, init_kind init,
                                      double init_std, bool weight_decay, int layer);

/* Whether local element i is padding (outside the logical tensor). */
bool registry_is_padding(const param_spec *p, size_t local_index);

const param_spec *registry_find(const registry *reg, const char *name);

/* The spec as tp rank r holds it: p with local_start and local_valid of
 * rank r's shard (offsets unchanged). Writers of other ranks' shards use it. */
param_spec registry_shard_of_tp_rank(const param_spec *p, int r);

/* Logical (row-major, global) element index of this rank's local element i. */
int64_t registry_logical_index(const param_spec *p, size_t local_index);

#endif

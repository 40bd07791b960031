/* registry — see registry.h. */
#include "registry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"

void registry_init(registry *reg, int tp_rank, int tp_size) {
  memset(reg, 0, sizeof *reg);
  reg->tp_rank = tp_rank;
  reg->tp_size = tp_size;
}

void registry_free(registry *reg) {
  free(reg->params);
  memset(reg, 0, sizeof *reg);
}

static const param_spec *add(registry *reg, const char *name, int n_dims, const int64_t *shape,
                              int tp_split_dim, init_kind init, double init_std, bool weight_decay,
                              int layer, bool padded) {
  ENSURE(n_dims >= 1 && n_dims <= REGISTRY_MAX_DIMS, "parameter %s: %d dims", name, n_dims);
  ENSURE(tp_split_dim < n_dims, "parameter %s: split dim %d of %d", name, tp_split_dim, n_dims);
  ENSURE(strlen(name) < REGISTRY_NAME_BYTES, "parameter name too long: %s", name);
  ENSURE(!registry_find(reg, name), "parameter %s registered twice", name);
  if (reg->n_params == reg->capacity) {
    reg->capacity = reg->capacity ? 2 * reg->capacity : 64;
    param_spec *grown = realloc(reg->params, (size_t)reg->capacity * sizeof *grown);
    if (!grown) fail_local(EXIT_USER_ERROR, "out of memory growing the parameter registry");
    reg->params = grown;
  }
  param_spec *p = &reg->params[reg->n_params++];
  memset(p, 0, sizeof *p);
  snprintf(p->name, sizeof p->name, "%s", name);
  p->n_dims = n_dims;
  p->tp_split_dim = tp_split_dim;
  p->init = init;
  p->init_std = init_std;
  p->weight_decay = weight_decay;
  p->layer = layer;
  p->n_logical = 1;
  p->n_local = 1;
  for (int d = 0; d < n_dims; d++) {
    p->shape[d] = shape[d];
    p->local_shape[d] = shape[d];
    if (d == tp_split_dim) {
      ENSURE(padded || shape[d] % reg->tp_size == 0,
             "parameter %s: dim %d (%lld) not divisible by tp %d", name, d, (long long)shape[d],
             reg->tp_size);
      p->local_shape[d] = (shape[d] + reg->tp_size - 1) / reg->tp_size;
    }
    p->n_logical *= shape[d];
    p->n_local *= (size_t)p->local_shape[d];
  }
  if (tp_split_dim < 0) p->local_valid = n_dims ? shape[0] : 1;
  else *p = registry_shard_of_tp_rank(p, reg->tp_rank);
  p->offset = reg->n_local_total;
  reg->n_local_total += p->n_local;
  return p;
}

const param_spec *registry_add(registry *reg, const char *name, int n_dims, const int64_t *shape,
                               int tp_split_dim, init_kind init, double init_std,
                               bool weight_decay, int layer) {
  return add(reg, name, n_dims, shape, tp_split_dim, init, init_std, weight_decay, layer, false);
}

const param_spec *registry_add_padded(registry *reg, const char *name, int n_dims,
                                      const int64_t *shape, int tp_split_dim, init_kind init,
                                      double init_std, bool weight_decay, int layer) {
  return add(reg, name, n_dims, shape, tp_split_dim, init, init_std, weight_decay, layer, true);
}

bool registry_is_padding(const param_spec *p, size_t local_index) {
  if (p->tp_split_dim < 0 || p->local_valid == p->local_shape[p->tp_split_dim]) return false;
  size_t inner = 1;
  for (int d = p->tp_split_dim + 1; d < p->n_dims; d++) inner *= (size_t)p->local_shape[d];
  int64_t coord = (int64_t)(local_index / inner % (size_t)p->local_shape[p->tp_split_dim]);
  return coord >= p->local_valid;
}

const param_spec *registry_find(const registry *reg, const char *name) {
  for (int i = 0; i < reg->n_params; i++)
    if (strcmp(reg->params[i].name, name) == 0) return &reg->params[i];
  return NULL;
}

int64_t registry_logical_index(const param_spec *p, size_t local_index) {
  /* Unravel the local index over the local shape, shift the split dimension,
   * ravel over the logical shape. */
  int64_t coords[REGISTRY_MAX_DIMS];
  size_t rest = local_index;
  for (int d = p->n_dims - 1; d >= 0; d--) {
    coords[d] = (int64_t)(rest % (size_t)p->local_shape[d]);
    rest /= (size_t)p->local_shape[d];
  }
  if (p->tp_split_dim >= 0) coords[p->tp_split_dim] += p->local_start;
  int64_t logical = 0;
  for (int d = 0; d < p->n_dims; d++) logical = logical * p->shape[d] + coords[d];
  return logical;
}

param_spec registry_shard_of_tp_rank(const param_spec *p, int r) {
  param_spec shard = *p;
  if (p->tp_split_dim >= 0) {
    const int64_t extent = p->local_shape[p->tp_split_dim];
    shard.local_start = extent * r;
    const int64_t valid = p->shape[p->tp_split_dim] - shard.local_start;
    shard.local_valid = valid < 0 ? 0 : valid > extent ? extent : valid;
  }
  return shard;
}

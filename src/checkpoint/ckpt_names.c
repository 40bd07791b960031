/* ckpt_names — see ckpt_names.h. */
#include "ckpt_names.h"

#include <stdio.h>
#include <string.h>

#include "fail.h"

static const char *const state_names[OPT_N_STATES] = {"weight", "adam_m", "adam_v"};

void ckpt_tensor_path(char out[CKPT_TENSOR_PATH_BYTES], const char *param_name, optimizer_state state) {
  snprintf(out, CKPT_TENSOR_PATH_BYTES, "params/%s/%s", param_name, state_names[state]);
}

void ckpt_step_name(char *out, size_t out_bytes, int64_t step) {
  snprintf(out, out_bytes, "step_%08lld.h5", (long long)step);
}

/* A step file's name: "step_" and 8 or more digits, ".h5". */
#define STEP_NAME_BYTES 32

void ckpt_step_file(char *out, size_t out_bytes, const char *dir, int64_t step) {
  char name[STEP_NAME_BYTES];
  ckpt_step_name(name, sizeof name, step);
  snprintf(out, out_bytes, "%s/%s", dir, name);
}

void ckpt_step_tmp_file(char *out, size_t out_bytes, const char *dir, int64_t step) {
  char name[STEP_NAME_BYTES];
  ckpt_step_name(name, sizeof name, step);
  snprintf(out, out_bytes, "%s/.%s.tmp", dir, name);
}

bool ckpt_parse_step_file(const char *name, long long *step) {
  char tail[8];
  return sscanf(name, "step_%lld.h%7s", step, tail) == 2 && strcmp(tail, "5") == 0;
}

void ckpt_latest_file(char *out, size_t out_bytes, const char *dir) { snprintf(out, out_bytes, "%s/latest", dir); }

void ckpt_shard_slab(const param_spec *p, int64_t start[4], int64_t count[4]) {
  for (int d = 0; d < p->n_dims; d++) start[d] = 0, count[d] = p->shape[d];
  if (p->tp_split_dim >= 0) {
    ENSURE(p->local_valid == p->local_shape[p->tp_split_dim] || p->tp_split_dim == 0,
           "padding of %s is not a prefix", p->name);
    start[p->tp_split_dim] = p->local_start;
    count[p->tp_split_dim] = p->local_valid;
  }
}

ckpt_tiling ckpt_tiling_of(const param_spec *p) {
  const int sd = p->tp_split_dim;
  return ckpt_tiling_for(p->n_dims, p->shape, sd, sd >= 0 ? p->local_shape[sd] : 0);
}

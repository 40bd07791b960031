/* ckpt_names — where things are in a checkpoint (doc/checkpoint-format.md):
 * the dataset of each tensor's state, the files of a save directory, and the
 * hyperslab and checksum tiling of a tp shard inside a logical tensor. Every
 * part of the checkpoint code names things through here, once.
 */
#ifndef TESSERA_CKPT_NAMES_H
#define TESSERA_CKPT_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "checkpoint_file.h"
#include "optimizer.h"
#include "registry.h"

/* The format this tessera writes and reads. */
#define CKPT_FORMAT_NAME "tessera-checkpoint"
#define CKPT_FORMAT_VERSION 2

/* "params/NAME/STATE": a parameter's name and the longest state's. */
#define CKPT_TENSOR_PATH_BYTES (REGISTRY_NAME_BYTES + 32)

/* The dataset of one state (weight, adam_m, adam_v) of a parameter. */
void ckpt_tensor_path(char out[CKPT_TENSOR_PATH_BYTES], const char *param_name, optimizer_state state);

/* A save directory: DIR/step_NNNNNNNN.h5 per save, written as
 * DIR/.step_NNNNNNNN.h5.tmp and renamed; DIR/latest names the newest. */
void ckpt_step_name(char *out, size_t out_bytes, int64_t step); /* "step_NNNNNNNN.h5" */
void ckpt_step_file(char *out, size_t out_bytes, const char *dir, int64_t step);
void ckpt_step_tmp_file(char *out, size_t out_bytes, const char *dir, int64_t step);
/* The step of a file name "step_N.h5", or false when it is not one. */
bool ckpt_parse_step_file(const char *name, long long *step);
void ckpt_latest_file(char *out, size_t out_bytes, const char *dir);

/* The hyperslab of the logical tensor that tp shard `p` holds (padding
 * excluded: only the vocabulary is padded, along its first dimension, so
 * the valid rows are a prefix of the shard). */
void ckpt_shard_slab(const param_spec *p, int64_t start[4], int64_t count[4]);
/* Checksum tiles follow the saving layout's tp shards, so each tile has one writer. */
ckpt_tiling ckpt_tiling_of(const param_spec *p);

#endif

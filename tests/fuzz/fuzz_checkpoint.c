/* fuzz_checkpoint — the checkpoint validator (src/checkpoint/ckpt_validate)
 * and the checked tensor reads behind it (io/checkpoint_file).
 *
 * Structure-aware: the input is not an HDF5 file. Raw bytes would spend
 * nearly every execution in libhdf5's own parser (whose robustness tessera
 * does not claim, doc/design.md), so the input instead decides the contents
 * of a small, well-formed HDF5 file that this harness writes with the HDF5
 * API: a model of one or two parameters (ranks 1-3, extents 1-6), the root
 * attributes (each missing, right, a wrong integer, a string, a float or a
 * vector), and per tensor either tessera's own writer (a chosen tiling, then
 * optionally a fuzzed `checksum_tiling`, fuzzed `crc32c` values or a changed
 * element) or a dataset of a mutated shape, element type and storage layout,
 * or a group in its place; and a stored tokenizer.json of fuzzed bytes.
 * The file is then opened as every reader does: ckpt_check_attributes,
 * ckpt_check_tensors, and when they pass, every tensor read whole and in
 * part (CRC-checked), and the tokenizer.
 * Properties: a read that succeeds returns exactly the stored values, and a
 * changed element under tessera's own checksums is never read as good. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint_file.h"
#include "ckpt_names.h"
#include "ckpt_tokenizer.h"
#include "ckpt_validate.h"
#include "fuzz.h"
#include "registry.h"
#include "tokenizer.h"

#define MAX_TENSORS (2 * OPT_N_STATES)

/* what the harness stored for one tensor, to judge the reads */
typedef struct stored_tensor {
  float *values;       /* as stored (row-major, the model's shape) */
  int64_t n;
  bool exact_values;   /* stored with the model's shape as fp32 or exactly convertible */
  bool corrupt_under_own_crc; /* an element changed after tessera's checksums */
  bool changed;        /* values differ from what tessera wrote: stored after the file is closed */
} stored_tensor;

static void check(herr_t status, const char *what) { FUZZ_ASSERT(status >= 0, "harness: %s failed", what); }

static void write_raw_attr(hid_t obj, const char *name, hid_t type, int n, const void *value) {
  if (H5Aexists(obj, name) > 0) check(H5Adelete(obj, name), "H5Adelete");
  hsize_t dims[1] = {(hsize_t)n};
  hid_t space = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL);
  hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  check(attr, "H5Acreate2");
  check(H5Awrite(attr, type, value), "H5Awrite");
  H5Aclose(attr);
  H5Sclose(space);
}

static void write_string_attr(hid_t obj, const char *name, const char *value, bool variable) {
  hid_t type = H5Tcopy(H5T_C_S1);
  if (variable) {
    check(H5Tset_size(type, H5T_VARIABLE), "H5Tset_size");
    write_raw_attr(obj, name, type, 1, &value);
  } else {
    check(H5Tset_size(type, strlen(value) + 1), "H5Tset_size");
    write_raw_attr(obj, name, type, 1, value);
  }
  H5Tclose(type);
}

/* One root attribute: missing, right (most often), or wrong in value or type. */
static void write_root_attr(fuzz_input *in, hid_t root, const char *name, int64_t right, const char *right_text) {
  const uint8_t kind = fuzz_u8(in) % 10;
  char text[24];
  if (kind == 0) return;
  if (kind <= 5) {
    if (right_text) write_string_attr(root, name, right_text, false);
    else write_raw_attr(root, name, H5T_NATIVE_INT64, 1, &right);
  } else if (kind == 6) {
    const int64_t value = (int64_t)fuzz_u64(in);
    write_raw_attr(root, name, H5T_NATIVE_INT64, 1, &value);
  } else if (kind == 7) {
    for (int i = 0; i < (int)sizeof text - 1; i++) text[i] = (char)(fuzz_u8(in) | 1);
    text[fuzz_u8(in) % sizeof text] = '\0';
    text[sizeof text - 1] = '\0';
    write_string_attr(root, name, text, fuzz_u8(in) & 1);
  } else if (kind == 8) {
    const double value = (double)(int64_t)fuzz_u64(in) / (double)(1 + fuzz_u8(in));
    write_raw_attr(root, name, H5T_NATIVE_DOUBLE, 1, &value);
  } else {
    const int64_t values[2] = {right, (int64_t)fuzz_u64(in)};
    write_raw_attr(root, name, H5T_NATIVE_INT64, 2, values);
  }
}

static void write_root_attrs(fuzz_input *in, ckpt_file *f) {
  const int64_t step = fuzz_u8(in) % 8, batch = 1 + fuzz_u8(in) % 4;
  write_root_attr(in, f->file, "format", 0, CKPT_FORMAT_NAME);
  write_root_attr(in, f->file, "format_version", CKPT_FORMAT_VERSION, NULL);
  write_root_attr(in, f->file, "step", step, NULL);
  write_root_attr(in, f->file, "optimizer_step", step, NULL);
  write_root_attr(in, f->file, "batch_size", batch, NULL);
  write_root_attr(in, f->file, "data_position", step * batch, NULL);
  write_root_attr(in, f->file, "complete", 1, NULL);
}

/* Row-major index in shape of the element at idx. */
static int64_t flat_index(int n_dims, const int64_t *shape, const int64_t *idx) {
  int64_t at = 0;
  for (int d = 0; d < n_dims; d++) at = at * shape[d] + idx[d];
  return at;
}

/* tessera's writer: tiling split along split_dim (-1: none) in shards of
 * shard_extent, rows per tile as given; every shard written. */
static void write_with_tessera(ckpt_file *f, const char *path, const param_spec *p, ckpt_tiling tiling,
                               const float *values) {
  const int n_dims = p->n_dims;
  const int64_t *shape = p->shape;
  const int64_t at = ckpt_tensor_create(f, path, n_dims, shape);
  const int64_t n_slots = ckpt_tiling_slots(&tiling, n_dims, shape);
  uint32_t *crcs = calloc((size_t)n_slots, sizeof *crcs);
  float *shard = malloc((size_t)p->n_logical * sizeof *shard);
  FUZZ_ASSERT(crcs && shard, "out of memory");
  const int sd = tiling.split_dim;
  const int64_t n_shards = sd < 0 ? 1 : (shape[sd] + tiling.shard_extent - 1) / tiling.shard_extent;
  for (int64_t s = 0; s < n_shards; s++) {
    int64_t start[4] = {0, 0, 0, 0}, count[4], idx[4] = {0, 0, 0, 0};
    for (int d = 0; d < n_dims; d++) count[d] = shape[d];
    if (sd >= 0) {
      start[sd] = s * tiling.shard_extent;
      count[sd] = shape[sd] - start[sd] < tiling.shard_extent ? shape[sd] - start[sd] : tiling.shard_extent;
    }
    int64_t n = 1;
    for (int d = 0; d < n_dims; d++) n *= count[d];
    for (int64_t i = 0; i < n; i++) { /* gather the shard, row-major over count */
      int64_t rest = i, global[4];
      for (int d = n_dims - 1; d >= 0; d--) idx[d] = rest % count[d], rest /= count[d];
      for (int d = 0; d < n_dims; d++) global[d] = start[d] + idx[d];
      shard[i] = values[flat_index(n_dims, shape, global)];
    }
    ckpt_tensor_write(f, path, at, n_dims, shape, &tiling, start, count, shard, true, crcs);
  }
  ckpt_tensor_write_checksums(f, path, &tiling, crcs, n_slots);
  free(crcs);
  free(shard);
}

/* Stores the changed values of the tensors that have them, in the closed
 * file: tessera's writer may keep small writes until ckpt_file_close, which
 * would overwrite a change made before. */
static void store_changes(const char *file_path, const registry *reg, const stored_tensor *stored) {
  hid_t file = H5Fopen(file_path, H5F_ACC_RDWR, H5P_DEFAULT);
  check(file, "H5Fopen");
  for (int k = 0; k < reg->n_params; k++)
    for (int s = 0; s < OPT_N_STATES; s++) {
      if (!stored[k * OPT_N_STATES + s].changed) continue;
      char path[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(path, reg->params[k].name, (optimizer_state)s);
      hid_t dset = H5Dopen2(file, path, H5P_DEFAULT);
      check(dset, "H5Dopen2");
      check(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, stored[k * OPT_N_STATES + s].values),
            "H5Dwrite");
      H5Dclose(dset);
    }
  check(H5Fclose(file), "H5Fclose");
}

static void fuzz_attrs_of(fuzz_input *in, ckpt_file *f, const char *path, uint8_t what) {
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  check(dset, "H5Dopen2");
  if (what & 1) {
    int64_t tiling[3] = {(int8_t)fuzz_u8(in), (int64_t)fuzz_u64(in), (int64_t)fuzz_u64(in)};
    if (fuzz_u8(in) & 1) tiling[1] &= 15, tiling[2] &= 15; /* small values: plausible tilings */
    write_raw_attr(dset, "checksum_tiling", H5T_NATIVE_INT64, 3, tiling);
  }
  if (what & 2) {
    const int n = 1 + fuzz_u8(in) % 8;
    uint32_t crcs[8];
    for (int i = 0; i < n; i++) crcs[i] = fuzz_u32(in);
    write_raw_attr(dset, "crc32c", H5T_NATIVE_UINT32, n, crcs);
  }
  H5Dclose(dset);
}

/* A dataset that is not what the model expects: shape, type, storage. */
static void write_mutant(fuzz_input *in, ckpt_file *f, const char *path, const param_spec *p, stored_tensor *st) {
  const uint8_t shape_change = fuzz_u8(in), layout = fuzz_u8(in) % 3, type_pick = fuzz_u8(in) % 5;
  int n_dims = p->n_dims + (shape_change % 3) - 1; /* one fewer, same, one more */
  if (n_dims < 1) n_dims = 1;
  hsize_t dims[5], chunk[5], n = 1;
  for (int d = 0; d < n_dims; d++) {
    const int64_t model = d < p->n_dims ? p->shape[d] : 1;
    const int delta = (shape_change >> (2 + d)) & 1 ? ((fuzz_u8(in) & 1) ? 1 : -1) : 0;
    dims[d] = (hsize_t)(model + delta), chunk[d] = dims[d] ? dims[d] : 1, n *= dims[d];
  }
  hid_t space = H5Screate_simple(n_dims, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE),
        lcpl = H5Pcreate(H5P_LINK_CREATE);
  check(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group");
  if (layout == 1) check(H5Pset_chunk(dcpl, n_dims, chunk), "H5Pset_chunk");
  if (layout == 2) check(H5Pset_layout(dcpl, H5D_COMPACT), "H5Pset_layout");
  const hid_t type = type_pick == 0   ? H5T_IEEE_F32LE
                     : type_pick == 1 ? H5T_IEEE_F32BE
                     : type_pick == 2 ? H5T_IEEE_F64LE
                     : type_pick == 3 ? H5T_STD_I32LE
                                      : H5T_STD_U8LE;
  hid_t dset = H5Dcreate2(f->file, path, type, space, lcpl, dcpl, H5P_DEFAULT);
  check(dset, "H5Dcreate2");
  float *values = calloc((size_t)n + 1, sizeof *values);
  FUZZ_ASSERT(values, "out of memory");
  for (hsize_t i = 0; i < n; i++) values[i] = (float)(i % 200);
  if (n) check(H5Dwrite(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, values), "H5Dwrite");
  const ckpt_tiling right = ckpt_tiling_for(p->n_dims, p->shape, -1, 0);
  const int64_t tiling[3] = {right.split_dim, right.shard_extent, right.rows};
  write_raw_attr(dset, "checksum_tiling", H5T_NATIVE_INT64, 3, tiling);
  const uint32_t crc = fuzz_u32(in);
  write_raw_attr(dset, "crc32c", H5T_NATIVE_UINT32, 1, &crc);
  H5Dclose(dset);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Sclose(space);
  /* the same shape as the model's and a type fp32 holds exactly: its values are known */
  bool same = n_dims == p->n_dims;
  for (int d = 0; same && d < n_dims; d++) same = (int64_t)dims[d] == p->shape[d];
  if (same) {
    memcpy(st->values, values, (size_t)st->n * sizeof *values);
    st->exact_values = true;
  }
  free(values);
}

static void write_tensor(fuzz_input *in, ckpt_file *f, const param_spec *p, int state, stored_tensor *st) {
  char path[CKPT_TENSOR_PATH_BYTES];
  ckpt_tensor_path(path, p->name, (optimizer_state)state);
  st->n = p->n_logical;
  st->values = calloc((size_t)st->n, sizeof *st->values);
  FUZZ_ASSERT(st->values, "out of memory");
  for (int64_t i = 0; i < st->n; i++) st->values[i] = (float)(i + 1) * 0.5f + (float)state;
  const uint8_t kind = fuzz_u8(in) % 8;
  if (kind == 0) return;
  if (kind == 6) {
    write_mutant(in, f, path, p, st);
    return;
  }
  if (kind == 7) { /* a group where the dataset should be */
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    check(H5Pset_create_intermediate_group(lcpl, 1), "H5Pset_create_intermediate_group");
    hid_t group = H5Gcreate2(f->file, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    check(group, "H5Gcreate2");
    H5Gclose(group);
    H5Pclose(lcpl);
    return;
  }
  const uint8_t split = fuzz_u8(in), rows = fuzz_u8(in), changes = kind >= 4 ? fuzz_u8(in) : 0;
  ckpt_tiling tiling = {-1, 0, 1 + rows % p->shape[0]};
  if (split % 3 == 1) { /* split along one dimension, in shards of 1.. extent */
    tiling.split_dim = (split >> 2) % p->n_dims;
    tiling.shard_extent = 1 + (split >> 4) % p->shape[tiling.split_dim];
    if (tiling.split_dim == 0 && tiling.rows > tiling.shard_extent) tiling.rows = tiling.shard_extent;
  }
  write_with_tessera(f, path, p, tiling, st->values);
  st->exact_values = true;
  if (changes & 4) {
    st->values[fuzz_u8(in) % st->n] += 1.0f;
    st->changed = true;
    st->corrupt_under_own_crc = !(changes & 3);
  }
  if (changes & 3) fuzz_attrs_of(in, f, path, changes);
}

/* The reads a reader makes after the validator passed. */
static void read_tensors(ckpt_file *f, const registry *reg, int n_states, const stored_tensor *stored) {
  char err[MESSAGE_BYTES];
  for (int k = 0; k < reg->n_params; k++) {
    const param_spec *p = &reg->params[k];
    for (int s = 0; s < n_states; s++) {
      const stored_tensor *st = &stored[k * OPT_N_STATES + s];
      char path[CKPT_TENSOR_PATH_BYTES];
      ckpt_tensor_path(path, p->name, (optimizer_state)s);
      float *got = malloc((size_t)st->n * sizeof *got);
      FUZZ_ASSERT(got, "out of memory");
      const int64_t start[4] = {0, 0, 0, 0};
      err[0] = '\0';
      const int status = ckpt_tensor_read(f, path, p->n_dims, start, p->shape, got, err, sizeof err);
      if (status == 0) {
        FUZZ_ASSERT(!st->corrupt_under_own_crc, "%s: a changed element passed its checksum", path);
        FUZZ_ASSERT(!st->exact_values || memcmp(got, st->values, (size_t)st->n * sizeof *got) == 0,
                    "%s: the read returned other values than stored", path);
        /* a ZeRO-like part: the last half */
        const int64_t first = st->n / 2, n = st->n - first;
        if (ckpt_tensor_read_part(f, path, p->n_dims, start, p->shape, first, n, got, err, sizeof err) == 0)
          FUZZ_ASSERT(!st->exact_values || memcmp(got, st->values + first, (size_t)n * sizeof *got) == 0,
                      "%s: the partial read returned other values than stored", path);
      } else {
        fuzz_refused(err);
      }
      free(got);
    }
  }
}

int fuzz_checkpoint(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size, 0};
  registry reg;
  registry_init(&reg, 0, 1);
  const int n_params = 1 + fuzz_u8(&in) % 2, n_states = fuzz_u8(&in) & 1 ? OPT_N_STATES : 1;
  const bool need_complete = fuzz_u8(&in) & 1;
  for (int k = 0; k < n_params; k++) {
    const int n_dims = 1 + fuzz_u8(&in) % 3;
    int64_t shape[4];
    for (int d = 0; d < n_dims; d++) shape[d] = 1 + fuzz_u8(&in) % 6;
    char name[16];
    snprintf(name, sizeof name, "p%d", k);
    registry_add(&reg, name, n_dims, shape, -1, INIT_ZEROS, 0.0, false, -1);
  }
  char path[512], err[MESSAGE_BYTES] = "";
  snprintf(path, sizeof path, "%s/fuzz.ckpt", fuzz_scratch_dir());
  ckpt_file f;
  FUZZ_ASSERT(ckpt_file_create(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "harness: %s", err);
  write_root_attrs(&in, &f);
  stored_tensor stored[MAX_TENSORS] = {{0}};
  for (int k = 0; k < n_params; k++)
    for (int s = 0; s < OPT_N_STATES; s++) write_tensor(&in, &f, &reg.params[k], s, &stored[k * OPT_N_STATES + s]);
  const uint8_t tokenizer_kind = fuzz_u8(&in) % 3;
  size_t text_bytes;
  const uint8_t *text = fuzz_rest(&in, &text_bytes);
  if (tokenizer_kind) ckpt_bytes_write(&f, "tokenizer.json", text, text_bytes);
  if (tokenizer_kind == 2) { /* damaged: its checksum no longer matches */
    const uint32_t crc = 0x12345678;
    hid_t dset = H5Dopen2(f.file, "tokenizer.json", H5P_DEFAULT);
    check(dset, "H5Dopen2");
    write_raw_attr(dset, "crc32c", H5T_NATIVE_UINT32, 1, &crc);
    H5Dclose(dset);
  }
  ckpt_file_close(&f);
  store_changes(path, &reg, stored);

  err[0] = '\0';
  if (ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0) {
    if (ckpt_check_attributes(&f, need_complete, err, sizeof err) == 0 &&
        ckpt_check_tensors(&f, &reg, n_states, err, sizeof err) == 0)
      read_tensors(&f, &reg, n_states, stored);
    else
      fuzz_refused(err);
    err[0] = '\0';
    tokenizer *t = ckpt_read_tokenizer(&f, err, sizeof err);
    if (t) tokenizer_free(t);
    else fuzz_refused(err);
    ckpt_file_close(&f);
  } else {
    fuzz_refused(err);
  }
  for (int i = 0; i < MAX_TENSORS; i++) free(stored[i].values);
  registry_free(&reg);
  unlink(path);
  return 0;
}

FUZZ_ENTRY(fuzz_checkpoint)

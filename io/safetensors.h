/* safetensors — the Hugging Face tensor file, read and written.
 *
 * Format (huggingface/safetensors): an 8-byte little-endian header length
 * N, N bytes of JSON (an object: each tensor's name -> {"dtype", "shape",
 * "data_offsets": [begin, end]}, offsets relative to the end of the header,
 * and an optional "__metadata__" object of strings), then the tensors'
 * bytes, row-major, little-endian.
 *
 * Reading checks the whole header before any tensor is used: the length
 * fits in the file, the JSON is an object of well-formed entries, every
 * dtype is one the format defines, each tensor's byte range is exactly
 * shape × element size, lies inside the file and overlaps no other. A file
 * that fails is one message naming the file and the tensor (EXIT_IO_ERROR).
 * Tensors are read one at a time with pread, F32, F16 and BF16 widened to
 * fp32 in blocks, so memory stays one tensor plus a block.
 *
 * Writing takes the list of tensors (names and shapes, all F32) first, so
 * the header and every offset are known; each tensor's elements are then
 * written with pwrite at their place, in any order and in pieces.
 * The caller writes into a temporary name and renames it (model_sink).
 * JSON is read and written with jansson. Errors are returned (one line in
 * err), never raised.
 */
#ifndef TESSERA_SAFETENSORS_H
#define TESSERA_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ST_MAX_DIMS 8
#define ST_NAME_BYTES 256

typedef struct st_tensor {
  char name[ST_NAME_BYTES];
  char dtype[16];          /* as the file spells it: "F32", "BF16", "I64", ... */
  int elem_bytes;
  int n_dims;
  int64_t shape[ST_MAX_DIMS];
  int64_t n_elems;
  uint64_t begin, end;     /* absolute file offsets of its bytes */
} st_tensor;

typedef struct st_file {
  char path[4352];
  int fd;
  uint64_t n_bytes;        /* of the file */
  st_tensor *tensors;
  int n_tensors;
} st_file;

/* Opens and checks path. 0, or EXIT_USER_ERROR (cannot open) /
 * EXIT_IO_ERROR (not a valid safetensors file) with err. */
int st_open(st_file *f, const char *path, char *err, size_t err_bytes);
void st_close(st_file *f);
/* The tensor of that name, or NULL. */
const st_tensor *st_find(const st_file *f, const char *name);
/* The tensor's elements as fp32 (n_elems floats; F32, F16 or BF16 in the
 * file). 0, or EXIT_IO_ERROR with err (another dtype, a short read). */
int st_read_f32(st_file *f, const st_tensor *t, float *out, char *err, size_t err_bytes);

typedef struct st_writer {
  char path[4352];
  int fd;
  st_tensor *tensors;      /* begin: absolute offsets */
  int n_tensors;
} st_writer;

/* Creates path (truncating) with the header of n tensors, all F32, in the
 * given order: names[i] of shape shapes[i][0..n_dims[i]). 0 or
 * EXIT_IO_ERROR / EXIT_USER_ERROR with err. */
int st_writer_create(st_writer *w, const char *path, int n, const char *const *names, const int *n_dims,
                     const int64_t (*shapes)[ST_MAX_DIMS], char *err, size_t err_bytes);
/* The index of tensor `name`, or −1. */
int st_writer_find(const st_writer *w, const char *name);
/* Writes elements [first, first + n) of tensor `index`. 0 or EXIT_IO_ERROR. */
int st_writer_write(st_writer *w, int index, int64_t first, const float *data, int64_t n, char *err,
                    size_t err_bytes);
/* fsync and close. 0 or EXIT_IO_ERROR. */
int st_writer_close(st_writer *w, char *err, size_t err_bytes);
/* Closes without syncing (the caller removes the file). */
void st_writer_abandon(st_writer *w);

#endif

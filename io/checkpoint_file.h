/* checkpoint_file — the HDF5 side of a universal checkpoint.
 *
 * A checkpoint is one HDF5 file holding the logical model: every parameter as
 * datasets of its logical shape under /params/<name>/ (weight, adam_m,
 * adam_v; fp32), and attributes on the root group for the run's state. The
 * format is doc/checkpoint-format.md. Datasets are chunked with HDF5's
 * Fletcher-32 checksum filter, so a flipped byte makes the read of that
 * chunk fail (verified on every load), and the root attribute `complete` is
 * written last: a file without it was never finished.
 *
 * With a parallel HDF5 build the file is opened by a communicator and ranks
 * write their hyperslabs collectively (ranks without data select nothing);
 * with serial HDF5 one process writes and any number read. Errors of HDF5
 * calls go through the one error path (H5_CHECK); reads of a damaged file
 * return an error instead, so the caller can fall back to an older file.
 */
#ifndef TESSERA_CHECKPOINT_FILE_H
#define TESSERA_CHECKPOINT_FILE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ckpt_file {
  hid_t file;
  bool collective; /* opened by a communicator (parallel HDF5) */
  char path[4096];
} ckpt_file;

/* True when this build can open one file from many processes. */
bool ckpt_file_parallel_available(void);

/* Creates path (truncating). comm: the ranks that open it together
 * (parallel HDF5), or MPI_COMM_NULL for one process. */
int ckpt_file_create(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes);
/* Opens path read-only; returns EXIT_USER_ERROR (missing) or EXIT_IO_ERROR. */
int ckpt_file_open(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes);
/* Flushes and closes. */
void ckpt_file_close(ckpt_file *f);

void ckpt_attr_write_i64(ckpt_file *f, const char *name, int64_t value);
void ckpt_attr_write_f64(ckpt_file *f, const char *name, double value);
void ckpt_attr_write_str(ckpt_file *f, const char *name, const char *value);
/* 0, or -1 when the attribute is missing or of another type. */
int ckpt_attr_read_i64(ckpt_file *f, const char *name, int64_t *value);
int ckpt_attr_read_f64(ckpt_file *f, const char *name, double *value);
int ckpt_attr_read_str(ckpt_file *f, const char *name, char *value, size_t value_bytes);

/* Creates dataset `path` (intermediate groups too) of the logical shape. */
void ckpt_tensor_create(ckpt_file *f, const char *path, int n_dims, const int64_t *shape);
/* Writes the hyperslab [start, start + count) from contiguous data. In a
 * collective file every rank calls, has_data false selecting nothing. */
void ckpt_tensor_write(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                       const int64_t *count, const float *data, bool has_data);
/* Reads a hyperslab; returns 0, or EXIT_IO_ERROR with err set when the
 * dataset is missing, has another shape rank, or fails its checksum. */
int ckpt_tensor_read(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                     const int64_t *count, float *data, char *err, size_t err_bytes);
/* The dataset's shape; -1 when it does not exist. */
int ckpt_tensor_shape(ckpt_file *f, const char *path, int *n_dims, int64_t shape[4]);

#endif

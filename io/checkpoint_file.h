/* checkpoint_file — the HDF5 side of a universal checkpoint.
 *
 * A checkpoint is one HDF5 file holding the logical model: every parameter as
 * datasets of its logical shape under /params/<name>/ (weight, adam_m,
 * adam_v; fp32), and attributes on the root group for the run's state. The
 * format is doc/checkpoint-format.md. Datasets are contiguous and carry the
 * CRC-32C of each tile (ckpt_tiling) as attributes, verified on every read,
 * and the root attribute `complete` is written last: a file without it was
 * never finished. (HDF5's own Fletcher-32 filter needs chunked storage,
 * which parallel HDF5 fills at creation: every byte written twice.)
 *
 * With a parallel HDF5 build the file is opened by a communicator and ranks
 * write their hyperslabs collectively (ranks without data select nothing);
 * with serial HDF5 one process writes and any number read.
 *
 * The bytes of large tensors whose hyperslab is one contiguous run of the
 * file bypass HDF5 and the page cache: datasets are allocated at creation
 * on 4 KiB boundaries, so their file offsets are fixed (H5Dget_offset), and
 * the writer sends the 4 KiB-aligned middle of each run with O_DIRECT
 * (io/direct_writer.h: copies into aligned buffers overlap the writes; the
 * head and tail, and file systems without O_DIRECT, go through an ordinary
 * descriptor). HDF5 still writes
 * every byte of metadata; the file is an ordinary HDF5 file. Errors of HDF5
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
  /* the direct path for tensor bytes (files being written): */
  struct direct_writer *direct; /* O_DIRECT, or NULL where the file system refuses it */
  int buffered_fd;              /* the unaligned head and tail of each tensor */
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

/* How a tensor is cut into checksum tiles. The saving layout's shards along
 * split_dim (shard_extent indices each; split_dim -1: one shard, the whole
 * tensor) are each cut into blocks of `rows` indices along dimension 0
 * (within the shard when split_dim is 0). A tile is therefore contiguous both
 * in a writer's shard and in the file's row-major order, and one writer
 * computes each tile's CRC-32C. A reader reads whole tiles, checks them and
 * keeps the part it needs. */
typedef struct ckpt_tiling {
  int split_dim;
  int64_t shard_extent;
  int64_t rows;
} ckpt_tiling;

/* The tiling of a tensor whose shards along split_dim hold shard_extent
 * indices: row blocks of about 2^20 elements. */
ckpt_tiling ckpt_tiling_for(int n_dims, const int64_t *shape, int split_dim, int64_t shard_extent);
/* Number of checksum slots of the tensor (some may be unused). */
int64_t ckpt_tiling_slots(const ckpt_tiling *t, int n_dims, const int64_t *shape);

/* Creates dataset `path` (intermediate groups too) of the logical shape:
 * contiguous fp32, no fill pass (every element gets written). */
void ckpt_tensor_create(ckpt_file *f, const char *path, int n_dims, const int64_t *shape);
/* Writes the hyperslab [start, start + count) from contiguous data: one
 * whole shard of `tiling`, whose tiles' CRCs are stored into crcs (slots of
 * other shards untouched). In a collective file every rank calls, has_data
 * false selecting nothing. A hyperslab that is one contiguous run of a
 * tensor of at least 1 MiB goes by the direct path (no collective call);
 * the choice depends only on the shape and the slab's form, so every rank
 * makes the same one. */
void ckpt_tensor_write(ckpt_file *f, const char *path, int n_dims, const int64_t *shape,
                       const ckpt_tiling *tiling, const int64_t *start, const int64_t *count,
                       const float *data, bool has_data, uint32_t *crcs);
/* Stores the tiling and every tile's CRC as attributes of the dataset (in a
 * collective file, every rank with the same values). */
void ckpt_tensor_write_checksums(ckpt_file *f, const char *path, const ckpt_tiling *tiling,
                                 const uint32_t *crcs, int64_t n_slots);
/* Reads a hyperslab, checking the CRC of every tile it touches; returns 0,
 * or EXIT_IO_ERROR with err set when the dataset is missing, has another
 * shape rank or lacks its checksums, or a tile fails its checksum. */
int ckpt_tensor_read(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                     const int64_t *count, float *data, char *err, size_t err_bytes);
/* The dataset's shape; -1 when it does not exist. */
int ckpt_tensor_shape(ckpt_file *f, const char *path, int *n_dims, int64_t shape[4]);

#endif

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
 * With a parallel HDF5 build the file is opened by a communicator: every
 * rank creates every dataset (collective metadata), and hyperslabs that are
 * not one run of the file are written collectively (ranks without data
 * select nothing); with serial HDF5 one process writes and any number read.
 *
 * Tensor bytes bypass HDF5's raw-data path. Datasets are allocated at
 * creation on 4 KiB boundaries, so their file offsets are fixed
 * (H5Dget_offset). A writer whose hyperslab is one contiguous run of the
 * file writes it itself with no collective call: for tensors of 1 MiB and
 * more the 4 KiB-aligned middle with O_DIRECT (io/direct_writer.h: copies
 * into aligned buffers overlap the writes; file systems without O_DIRECT
 * get an ordinary descriptor); the unaligned head and tail, and smaller
 * tensors, through the page cache, kept in memory until the O_DIRECT
 * thread has finished (a buffered write would wait for its inode lock).
 * Readers read every tile they need once, with pread at the dataset's
 * offset (HDF5 only for a dataset without one, e.g. a file repacked by
 * h5repack), check its CRC and keep their part. A file that is not in the
 * page cache (as a save leaves it) is read with O_DIRECT too, a block ahead
 * of the checks (io/direct_reader.h): the page cache would only add a copy
 * and fresh pages of its own. HDF5 still writes and reads every byte of
 * metadata; the file is an ordinary HDF5 file. Errors of HDF5 calls go
 * through the one error path (H5_CHECK); reads of a damaged file return an
 * error instead, so the caller can fall back to an older file.
 */
#ifndef TESSERA_CHECKPOINT_FILE_H
#define TESSERA_CHECKPOINT_FILE_H

#include <hdf5.h>
#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fail.h"

/* a write through the page cache kept for later (ckpt_file_close) */
typedef struct ckpt_deferred_write {
  off_t offset;      /* in the file */
  size_t at, bytes;  /* in deferred_data */
} ckpt_deferred_write;

typedef struct ckpt_file {
  hid_t file;
  bool collective; /* opened by a communicator (parallel HDF5) */
  char path[JOINED_PATH_BYTES];
  /* the direct path for tensor bytes (files being written): */
  struct direct_writer *direct; /* O_DIRECT, or NULL where the file system refuses it */
  bool keep_write_errors;       /* a failed write is recorded, not fatal (ckpt_file_keep_write_errors) */
  int write_status;             /* 0, or EXIT_IO_ERROR once a write failed */
  bool dropped;                 /* to be removed: no more bytes written (ckpt_file_drop) */
  char write_err[MESSAGE_BYTES]; /* the first failure: the file and the OS's reason */
  int buffered_fd;              /* the unaligned head and tail of each tensor, small tensors */
  ckpt_deferred_write *deferred; /* those, while the O_DIRECT thread runs */
  size_t n_deferred, deferred_capacity;
  char *deferred_data;
  size_t deferred_used, deferred_bytes;
  /* files being read: */
  int read_fd;                  /* tensor bytes, by pread through the page cache */
  struct direct_reader *reader; /* the same by O_DIRECT; NULL: refused, or the file is cached */
  bool reader_decided;          /* reader is opened (or not) at the first large read */
  float *scratch;               /* one tile, for tiles only partly wanted */
  size_t scratch_elements;
} ckpt_file;

/* True when this build can open one file from many processes. */
bool ckpt_file_parallel_available(void);

/* Creates path (truncating). comm: the ranks that open it together
 * (parallel HDF5), or MPI_COMM_NULL for one process. */
int ckpt_file_create(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes);
/* Opens path read-only; returns EXIT_USER_ERROR (missing) or EXIT_IO_ERROR. */
int ckpt_file_open(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes);
/* A failed write of a file being written (disk full, I/O error) ends the
 * job (fail_local), unless the writer asks for it back: from this call on
 * the first failure is recorded in write_err, later byte writes are
 * skipped, and HDF5 calls still run (every rank of a collective file must
 * make the same ones); ckpt_file_close returns the failure, and the writer
 * removes the file. */
void ckpt_file_keep_write_errors(ckpt_file *f);
/* A file being written, before it is closed: waits for the direct writes,
 * does the deferred ones, and reserves the file's whole extent on disk, so
 * that only HDF5's metadata is left to write, into space the file has (a
 * metadata flush that fails leaves HDF5 1.10 unable to close the file: it
 * crashes at exit). 0, or (keeping write errors) the first failure. */
int ckpt_file_finish_bytes(ckpt_file *f);
/* A file that will be removed (a write failed here, or on another rank of
 * a collective file): waits for the direct writes, writes nothing more and
 * truncates the file to nothing, so that on a full disk HDF5's close finds
 * room for its metadata (a failed H5Fclose leaves HDF5 1.10 to crash at
 * exit). Every rank of a collective file calls it (after
 * ckpt_file_finish_bytes everywhere), then a barrier, then ckpt_file_close.
 * Only for files that keep write errors. */
void ckpt_file_drop(ckpt_file *f);
/* Finishes the bytes (ckpt_file_finish_bytes) and closes; HDF5 flushes
 * its metadata unless the file was dropped (after a failed write it is,
 * here if not before). 0, or (after ckpt_file_keep_write_errors) the
 * EXIT_IO_ERROR of the first failed write, its message in f->write_err. */
int ckpt_file_close(ckpt_file *f);

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
 * contiguous fp32, no fill pass (every element gets written), space
 * allocated now. Returns the file offset of its first byte, the same on
 * every rank of a collective file, or -1 when HDF5 gives none. */
int64_t ckpt_tensor_create(ckpt_file *f, const char *path, int n_dims, const int64_t *shape);
/* Whether ckpt_tensor_write writes this tensor by the direct path: the
 * writer's hyperslab is one contiguous run of the file (the whole tensor, or
 * a shard along a dimension that only dimensions of extent 1 precede) and
 * the dataset has a file offset. Depends on the shape, the tiling and the
 * offset only, so every rank of a collective file decides the same. */
bool ckpt_tensor_write_is_direct(const ckpt_file *f, const int64_t *shape, const ckpt_tiling *tiling,
                                 int64_t file_offset);
/* Writes the hyperslab [start, start + count) from contiguous data: one
 * whole shard of `tiling`, whose tiles' CRCs are stored into crcs (slots of
 * other shards untouched). file_offset: ckpt_tensor_create's answer. By the
 * direct path the call is the writer's alone (no HDF5 call; ranks without
 * data need not call). Otherwise, in a collective file, every rank calls,
 * has_data false selecting nothing (a collective H5Dwrite). */
void ckpt_tensor_write(ckpt_file *f, const char *path, int64_t file_offset, int n_dims, const int64_t *shape,
                       const ckpt_tiling *tiling, const int64_t *start, const int64_t *count,
                       const float *data, bool has_data, uint32_t *crcs);
/* Stores the tiling and every tile's CRC as attributes of the dataset (in a
 * collective file, every rank with the same values). */
void ckpt_tensor_write_checksums(ckpt_file *f, const char *path, const ckpt_tiling *tiling,
                                 const uint32_t *crcs, int64_t n_slots);
/* Whether dataset `path` is what a reader of the model expects, checked
 * before any of its bytes is used: there, of exactly `shape` (every
 * extent, not only the rank), stored as fp32, with a checksum tiling whose
 * fields lie in the writer's ranges and one CRC per tile. 0, or
 * EXIT_IO_ERROR with err naming the file, the tensor, the model's and the
 * stored shape. Local. */
int ckpt_tensor_check(ckpt_file *f, const char *path, int n_dims, const int64_t *shape, char *err,
                      size_t err_bytes);
/* Reads a hyperslab, checking the CRC of every tile it touches; returns 0,
 * or EXIT_IO_ERROR with err set when the dataset is missing, has another
 * shape rank or lacks its checksums, or a tile fails its checksum or cannot
 * be read (a truncated file). Local: no collective call. */
int ckpt_tensor_read(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                     const int64_t *count, float *data, char *err, size_t err_bytes);
/* The same for the elements [first, first + n) of the hyperslab in its
 * row-major order (data[0] is element `first`): only the tiles holding
 * them are read and checked (a ZeRO range of a shard). */
int ckpt_tensor_read_part(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                          const int64_t *count, int64_t first, int64_t n, float *data, char *err,
                          size_t err_bytes);
/* A byte string as the 1-D uint8 dataset `path` (at the root: no
 * intermediate groups) with its CRC-32C as the attribute `crc32c`. In a
 * collective file every rank calls with the same bytes. */
void ckpt_bytes_write(ckpt_file *f, const char *path, const void *data, size_t n_bytes);
/* The byte string of dataset `path`, malloc'd with a NUL after its
 * n_bytes: 0; -1 when there is no such dataset; EXIT_IO_ERROR with err
 * when it is not a 1-D uint8 dataset, cannot be read or fails its CRC.
 * Local. */
int ckpt_bytes_read(ckpt_file *f, const char *path, char **data, size_t *n_bytes, char *err,
                    size_t err_bytes);
/* The dataset's shape; -1 when it does not exist. */
int ckpt_tensor_shape(ckpt_file *f, const char *path, int *n_dims, int64_t shape[4]);

#endif

/* checkpoint_file — see checkpoint_file.h. */
#include "checkpoint_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "crc32c.h"
#include "direct_reader.h"
#include "direct_writer.h"
#include "fail.h"
#include "offload_file.h"
#include "file_range.h"

/* The first failure of a file whose writer keeps write errors. */
static void write_failed(ckpt_file *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void write_failed(ckpt_file *f, const char *fmt, ...) {
  if (f->write_status) return;
  f->write_status = EXIT_IO_ERROR;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(f->write_err, sizeof f->write_err, fmt, ap);
  va_end(ap);
}

/* HDF5's error stack, outermost first: the first entry says what failed;
 * the OS's reason, when a file driver saw one, is in an inner entry (the
 * sec2 driver writes "... error message = 'No space left on device' ...";
 * the MPI-IO driver's stack has none, errno has it: see h5_failed). */
typedef struct h5_failure {
  char what[256], reason[256];
} h5_failure;

static void copy_reason(char *out, size_t out_bytes, const char *desc) {
  const char *marker = "error message = '";
  const char *at = strstr(desc, marker);
  if (!at) {
    snprintf(out, out_bytes, "%s", desc);
    return;
  }
  at += strlen(marker);
  const size_t n = strcspn(at, "'");
  snprintf(out, out_bytes, "%.*s", (int)n, at);
}

static herr_t keep_failure(unsigned n, const H5E_error2_t *e, void *out) {
  h5_failure *fail = out;
  const char *desc = e->desc ? e->desc : "?";
  if (n == 0) snprintf(fail->what, sizeof fail->what, "%s (%s)", desc, e->func_name);
  if (strstr(desc, "error message = '") || strstr(desc, "MPI_ERR") || strstr(desc, "errno"))
    copy_reason(fail->reason, sizeof fail->reason, desc);
  return 0;
}

/* The HDF5 checking macro: the call and HDF5's message; the job ends, or
 * the failure is kept for the writer (ckpt_file_keep_write_errors). errno
 * is cleared before the call: the MPI-IO driver's stack carries no OS
 * reason, but the failed write leaves it in errno (ENOSPC, EIO). */
static void h5_failed(ckpt_file *f, const char *call, int os_error) {
  h5_failure fail = {"no message", ""};
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_failure, &fail);
  if (!f->keep_write_errors) fail_local(EXIT_IO_ERROR, "HDF5: %s failed on '%s': %s", call, f->path, fail.what);
  if (!fail.reason[0] && os_error) snprintf(fail.reason, sizeof fail.reason, "%s", strerror(os_error));
  const int name_length = (int)strcspn(call, "(");
  if (fail.reason[0])
    write_failed(f, "writing '%s' failed: %s (HDF5: %.*s)", f->path, fail.reason, name_length, call);
  else
    write_failed(f, "writing '%s' failed: HDF5: %.*s: %s", f->path, name_length, call, fail.what);
}
#define H5_CHECK(call)                                   \
  do {                                                   \
    errno = 0;                                           \
    if ((call) < 0) h5_failed(f, #call, errno);          \
  } while (0)

bool ckpt_file_parallel_available(void) {
#ifdef TESSERA_HDF5_PARALLEL
  return true;
#else
  return false;
#endif
}

static hid_t access_plist(MPI_Comm comm, ckpt_file *f) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  f->collective = false;
#ifdef TESSERA_HDF5_PARALLEL
  if (comm != MPI_COMM_NULL) {
    H5_CHECK(H5Pset_fapl_mpio(fapl, comm, MPI_INFO_NULL));
    f->collective = true;
  }
#else
  (void)comm;
#endif
  return fapl;
}

#define DIRECT_ALIGN DIRECT_WRITER_ALIGN  /* file offsets and lengths of O_DIRECT writes */
#define DIRECT_MIN_BYTES ((size_t)1 << 20) /* smaller tensors go through the page cache, both ways */

int ckpt_file_create(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  f->buffered_fd = -1;
  f->read_fd = -1;
  snprintf(f->path, sizeof f->path, "%s", path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are ours to report */
  hid_t fapl = access_plist(comm, f);
  /* every object of 64 KiB or more starts on a 4 KiB boundary */
  H5_CHECK(H5Pset_alignment(fapl, (hsize_t)1 << 16, DIRECT_ALIGN));
  f->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f->file < 0) {
    snprintf(err, err_bytes, "cannot create checkpoint file '%s'", path);
    return EXIT_IO_ERROR;
  }
  f->buffered_fd = open(path, O_WRONLY);
  if (f->buffered_fd < 0) {
    snprintf(err, err_bytes, "cannot open checkpoint file '%s' for writing: %s", path, strerror(errno));
    return EXIT_IO_ERROR;
  }
  f->direct = direct_writer_open(path);
  return 0;
}

/* Whether at least half of the file's pages are in the page cache (then
 * reading through it is the fast way; mincore on a mapping of the file
 * asks without reading anything). */
static bool mostly_cached(int fd, off_t n_bytes) {
  const long page = sysconf(_SC_PAGESIZE);
  if (n_bytes <= 0 || page <= 0) return false;
  void *map = mmap(NULL, (size_t)n_bytes, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return false;
  const size_t n_pages = ((size_t)n_bytes + (size_t)page - 1) / (size_t)page;
  unsigned char *resident = malloc(n_pages);
  size_t n_resident = 0;
  if (resident && mincore(map, (size_t)n_bytes, resident) == 0)
    for (size_t i = 0; i < n_pages; i++) n_resident += resident[i] & 1;
  free(resident);
  munmap(map, (size_t)n_bytes);
  return 2 * n_resident >= n_pages;
}

int ckpt_file_open(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  f->buffered_fd = -1;
  f->read_fd = -1;
  snprintf(f->path, sizeof f->path, "%s", path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  struct stat st;
  if (stat(path, &st) != 0) {
    snprintf(err, err_bytes, "checkpoint '%s' does not exist", path);
    return EXIT_USER_ERROR;
  }
  hid_t fapl = access_plist(comm, f);
  f->file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f->file < 0 && offload_file_is_one(path)) { /* a user's likely slip: say what it is */
    snprintf(err, err_bytes, "'%s' is a training run's offloaded optimizer state (--offload-optimizer nvme), a working "
             "file, not a checkpoint: checkpoints are the step_*.h5 files of --save-dir", path);
    return EXIT_USER_ERROR;
  }
  if (f->file < 0) {
    snprintf(err, err_bytes, "checkpoint '%s' is not a readable HDF5 file (truncated or damaged)",
             path);
    return EXIT_IO_ERROR;
  }
  /* tensor bytes are read with pread at the datasets' offsets; HDF5 reads
   * the metadata (and any dataset without a fixed offset) */
  f->read_fd = open(path, O_RDONLY);
  if (f->read_fd < 0) {
    snprintf(err, err_bytes, "cannot open checkpoint '%s' for reading: %s", path, strerror(errno));
    H5Fclose(f->file);
    f->file = 0;
    return EXIT_IO_ERROR;
  }
  return 0;
}

static void pwrite_all(ckpt_file *f, int fd, const char *data, size_t bytes, off_t offset);

void ckpt_file_keep_write_errors(ckpt_file *f) { f->keep_write_errors = true; }

/* A failed write (errno err) of the file's bytes: fatal, or kept. */
static void bytes_failed(ckpt_file *f, int err) {
  if (!f->keep_write_errors) fail_local(EXIT_IO_ERROR, "writing checkpoint '%s' failed: %s", f->path, strerror(err));
  write_failed(f, "writing '%s' failed: %s", f->path, strerror(err));
}

/* The direct writer's queued writes done; its first failure kept. */
static void finish_direct_writes(ckpt_file *f) {
  if (!f->direct) return;
  const int error = direct_writer_close(f->direct);
  f->direct = NULL;
  if (error) bytes_failed(f, error);
}

void ckpt_file_drop(ckpt_file *f) {
  finish_direct_writes(f);
  f->dropped = true;
  f->n_deferred = 0;
  if (f->buffered_fd >= 0 && ftruncate(f->buffered_fd, 0) != 0 && !f->write_status)
    write_failed(f, "truncating '%s' failed: %s", f->path, strerror(errno));
}

int ckpt_file_finish_bytes(ckpt_file *f) {
  finish_direct_writes(f);
  for (size_t i = 0; i < f->n_deferred; i++) /* the O_DIRECT writes are done: no more waits */
    pwrite_all(f, f->buffered_fd, f->deferred_data + f->deferred[i].at, f->deferred[i].bytes, f->deferred[i].offset);
  free(f->deferred);
  free(f->deferred_data);
  f->deferred = NULL, f->deferred_data = NULL;
  f->n_deferred = f->deferred_capacity = f->deferred_used = f->deferred_bytes = 0;
  hsize_t size = 0;
  if (f->file > 0 && f->buffered_fd >= 0 && !f->write_status && !f->dropped && H5Fget_filesize(f->file, &size) >= 0 &&
      size > 0) {
    /* fallocate, not posix_fallocate: glibc emulates the latter by writing
     * bytes, racing with the other writers of a collective file */
    if (fallocate(f->buffered_fd, 0, 0, (off_t)size) != 0 && errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
      bytes_failed(f, errno); /* a file system without fallocate: as before */
  }
  return f->write_status;
}

int ckpt_file_close(ckpt_file *f) {
  ckpt_file_finish_bytes(f);
  if (f->write_status && !f->dropped) ckpt_file_drop(f);
  if (f->file > 0 && !f->dropped) H5_CHECK(H5Fflush(f->file, H5F_SCOPE_GLOBAL));
  if (f->buffered_fd >= 0 && close(f->buffered_fd) != 0) bytes_failed(f, errno);
  f->buffered_fd = -1;
  if (f->read_fd >= 0) close(f->read_fd); /* read-only: nothing to lose */
  f->read_fd = -1;
  if (f->reader) direct_reader_close(f->reader);
  f->reader = NULL;
  free(f->scratch);
  f->scratch = NULL;
  f->scratch_elements = 0;
  if (f->file > 0) {
    H5_CHECK(H5Fclose(f->file)); /* a read-only file, or after a drop: nothing left to flush */
  }
  f->file = 0;
  return f->write_status;
}

static void pwrite_all(ckpt_file *f, int fd, const char *data, size_t bytes, off_t offset) {
  while (bytes > 0 && !f->write_status && !f->dropped) { /* after a kept failure: nothing more to write */
    ssize_t done = pwrite(fd, data, bytes, offset);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) {
      bytes_failed(f, done < 0 ? errno : EIO);
      return;
    }
    data += done, bytes -= (size_t)done, offset += done;
  }
}

/* A write through the page cache. While the O_DIRECT thread runs it is
 * kept (copied) and done at close instead: a direct write into blocks the
 * file system has yet to allocate holds the inode's lock, and a buffered
 * write meanwhile waits for it (on ext4, the 124M save lost 0.16 s to ~70
 * such waits of ~5 ms). Small tensors and the heads and tails of runs are
 * a few MB in all. */
static void write_buffered(ckpt_file *f, const char *data, size_t bytes, off_t offset) {
  if (bytes == 0) return;
  if (!f->direct) {
    pwrite_all(f, f->buffered_fd, data, bytes, offset);
    return;
  }
  if (f->n_deferred == f->deferred_capacity) {
    f->deferred_capacity = f->deferred_capacity ? 2 * f->deferred_capacity : 256;
    f->deferred = realloc(f->deferred, f->deferred_capacity * sizeof *f->deferred);
    ENSURE(f->deferred, "out of memory for the checkpoint's deferred writes");
  }
  if (f->deferred_used + bytes > f->deferred_bytes) {
    while (f->deferred_used + bytes > f->deferred_bytes) f->deferred_bytes = f->deferred_bytes ? 2 * f->deferred_bytes : (size_t)1 << 20;
    f->deferred_data = realloc(f->deferred_data, f->deferred_bytes);
    ENSURE(f->deferred_data, "out of memory for the checkpoint's deferred writes");
  }
  memcpy(f->deferred_data + f->deferred_used, data, bytes);
  f->deferred[f->n_deferred++] = (ckpt_deferred_write){offset, f->deferred_used, bytes};
  f->deferred_used += bytes;
}

/* bytes at file offset: the unaligned head and tail buffered, the 4 KiB
 * middle with O_DIRECT (all buffered where O_DIRECT cannot be had) */
static void write_run(ckpt_file *f, const char *data, size_t bytes, off_t offset) {
  size_t head = (size_t)((DIRECT_ALIGN - offset % DIRECT_ALIGN) % DIRECT_ALIGN);
  if (head > bytes || !f->direct) head = bytes;
  write_buffered(f, data, head, offset);
  data += head, bytes -= head, offset += (off_t)head;
  const size_t middle = bytes / DIRECT_ALIGN * DIRECT_ALIGN;
  if (middle && !f->write_status && !f->dropped) direct_writer_write(f->direct, data, middle, offset);
  write_buffered(f, data + middle, bytes - middle, offset + (off_t)middle);
}

/* Attribute `name` of object `obj`: a scalar (n 0) or a vector of n values. */
static void write_attr_on(ckpt_file *f, hid_t obj, const char *name, hid_t type, hsize_t n,
                          const void *value) {
  hid_t space = n ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR);
  H5_CHECK(space);
  if (H5Aexists(obj, name) > 0) H5_CHECK(H5Adelete(obj, name));
  hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5_CHECK(attr);
  H5_CHECK(H5Awrite(attr, type, value));
  H5_CHECK(H5Aclose(attr));
  H5_CHECK(H5Sclose(space));
}

static void write_attr(ckpt_file *f, const char *name, hid_t type, const void *value) {
  write_attr_on(f, f->file, name, type, 0, value);
}

void ckpt_attr_write_i64(ckpt_file *f, const char *name, int64_t value) {
  write_attr(f, name, H5T_NATIVE_INT64, &value);
}
void ckpt_attr_write_f64(ckpt_file *f, const char *name, double value) {
  write_attr(f, name, H5T_NATIVE_DOUBLE, &value);
}
void ckpt_attr_write_str(ckpt_file *f, const char *name, const char *value) {
  hid_t type = H5Tcopy(H5T_C_S1);
  H5_CHECK(H5Tset_size(type, strlen(value) + 1));
  write_attr(f, name, type, value);
  H5_CHECK(H5Tclose(type));
}

static int read_attr(ckpt_file *f, const char *name, hid_t class_wanted, hid_t mem_type, void *value) {
  if (H5Aexists(f->file, name) <= 0) return -1;
  hid_t attr = H5Aopen(f->file, name, H5P_DEFAULT);
  if (attr < 0) return -1;
  hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
  /* one value: a vector attribute would overflow `value` */
  int ok = H5Tget_class(type) == class_wanted && H5Sget_simple_extent_npoints(space) == 1 &&
           H5Aread(attr, mem_type, value) >= 0;
  H5Sclose(space);
  H5Tclose(type);
  H5Aclose(attr);
  return ok ? 0 : -1;
}

int ckpt_attr_read_i64(ckpt_file *f, const char *name, int64_t *value) {
  return read_attr(f, name, H5T_INTEGER, H5T_NATIVE_INT64, value);
}
int ckpt_attr_read_f64(ckpt_file *f, const char *name, double *value) {
  return read_attr(f, name, H5T_FLOAT, H5T_NATIVE_DOUBLE, value);
}
int ckpt_attr_read_str(ckpt_file *f, const char *name, char *value, size_t value_bytes) {
  if (H5Aexists(f->file, name) <= 0) return -1;
  hid_t attr = H5Aopen(f->file, name, H5P_DEFAULT);
  hid_t type = H5Aget_type(attr);
  size_t size = H5Tget_size(type);
  int status = -1;
  if (H5Tget_class(type) == H5T_STRING && size < value_bytes) {
    hid_t mem = H5Tcopy(H5T_C_S1);
    H5Tset_size(mem, size);
    status = H5Aread(attr, mem, value) >= 0 ? 0 : -1;
    value[size] = '\0';
    H5Tclose(mem);
  }
  H5Tclose(type);
  H5Aclose(attr);
  return status;
}

/* ------------------------------------------------------------ tiling */

#define TILE_TARGET_ELEMENTS ((int64_t)1 << 20)
/* The largest shard extent a stored tiling may claim (sums and products of
 * it with extents of a model stay far from int64 overflow). */
#define MAX_SHARD_EXTENT ((int64_t)1 << 32)

typedef struct box {
  int64_t lo[4], hi[4]; /* half-open, per dimension */
} box;

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

ckpt_tiling ckpt_tiling_for(int n_dims, const int64_t *shape, int split_dim, int64_t shard_extent) {
  ckpt_tiling t = {split_dim, split_dim >= 0 ? shard_extent : 0, 1};
  int64_t inner = 1;
  for (int d = 1; d < n_dims; d++)
    inner *= d == split_dim && shard_extent < shape[d] ? shard_extent : shape[d];
  t.rows = inner >= TILE_TARGET_ELEMENTS ? 1 : TILE_TARGET_ELEMENTS / inner;
  if (split_dim == 0 && t.rows > shard_extent) t.rows = shard_extent;
  return t;
}

static int64_t shard_count(const ckpt_tiling *t, const int64_t *shape) {
  return t->split_dim < 0 ? 1 : ceil_div(shape[t->split_dim], t->shard_extent);
}

static int64_t blocks_per_shard(const ckpt_tiling *t, const int64_t *shape) {
  int64_t rows = t->split_dim == 0 && t->shard_extent < shape[0] ? t->shard_extent : shape[0];
  return ceil_div(rows, t->rows);
}

int64_t ckpt_tiling_slots(const ckpt_tiling *t, int n_dims, const int64_t *shape) {
  (void)n_dims;
  return shard_count(t, shape) * blocks_per_shard(t, shape);
}

/* The box of tile `slot`; false when the slot lies past the tensor's end. */
static bool tile_box(const ckpt_tiling *t, int n_dims, const int64_t *shape, int64_t slot, box *b) {
  const int64_t per_shard = blocks_per_shard(t, shape), shard = slot / per_shard, block = slot % per_shard;
  for (int d = 0; d < n_dims; d++) b->lo[d] = 0, b->hi[d] = shape[d];
  const int sd = t->split_dim;
  if (sd >= 0) {
    b->lo[sd] = shard * t->shard_extent;
    b->hi[sd] = b->lo[sd] + t->shard_extent < shape[sd] ? b->lo[sd] + t->shard_extent : shape[sd];
  }
  const int64_t first = b->lo[0], end = b->hi[0];
  b->lo[0] = first + block * t->rows;
  b->hi[0] = b->lo[0] + t->rows < end ? b->lo[0] + t->rows : end;
  return b->lo[0] < b->hi[0] && (sd < 0 || b->lo[sd] < b->hi[sd]);
}

static int64_t box_elements(const box *b, int n_dims) {
  int64_t n = 1;
  for (int d = 0; d < n_dims; d++) n *= b->hi[d] - b->lo[d];
  return n;
}

/* The intersection of a and b; false when empty. */
static bool box_overlap(const box *a, const box *b, int n_dims, box *out) {
  for (int d = 0; d < n_dims; d++) {
    out->lo[d] = a->lo[d] > b->lo[d] ? a->lo[d] : b->lo[d];
    out->hi[d] = a->hi[d] < b->hi[d] ? a->hi[d] : b->hi[d];
    if (out->lo[d] >= out->hi[d]) return false;
  }
  return true;
}

/* Row-major index, within box `outer`, of the element at `at`. */
static int64_t flat_index(const box *outer, const int64_t *at, int n_dims) {
  int64_t index = 0;
  for (int d = 0; d < n_dims; d++) index = index * (outer->hi[d] - outer->lo[d]) + at[d] - outer->lo[d];
  return index;
}

/* Box b (inside `outer`) as runs that are contiguous in outer's row-major
 * order: returns the elements per run; the runs start at b->lo with the
 * first *walk_dims indices stepping through b (0: b is one run). */
static int64_t run_elements(const box *b, const box *outer, int n_dims, int *walk_dims) {
  int64_t run = 1;
  int d = n_dims - 1;
  for (; d >= 0; d--) {
    run *= b->hi[d] - b->lo[d];
    if (b->hi[d] - b->lo[d] != outer->hi[d] - outer->lo[d]) break;
  }
  *walk_dims = d > 0 ? d : 0;
  return run;
}

/* Steps idx (the first walk_dims indices) to the next run of b; false
 * after the last. */
static bool next_run(int64_t *idx, const box *b, int walk_dims) {
  int d = walk_dims - 1;
  while (d >= 0 && ++idx[d] == b->hi[d]) idx[d] = b->lo[d], d--;
  return d >= 0;
}

/* Copies region `part` from src (row-major over src_box) to dst, which holds
 * the elements [first, first + n) of dst_box in row-major order: what lies
 * outside that range is skipped. */
static void copy_part(const float *src, const box *src_box, float *dst, const box *dst_box, int64_t first,
                      int64_t n, const box *part, int n_dims) {
  int walk_src, walk_dst;
  const int64_t run_src = run_elements(part, src_box, n_dims, &walk_src);
  const int64_t run_dst = run_elements(part, dst_box, n_dims, &walk_dst);
  const int walk = walk_src > walk_dst ? walk_src : walk_dst;
  const int64_t run = run_src < run_dst ? run_src : run_dst;
  int64_t idx[4];
  for (int d = 0; d < n_dims; d++) idx[d] = part->lo[d];
  do {
    int64_t from = flat_index(src_box, idx, n_dims), to = flat_index(dst_box, idx, n_dims), len = run;
    if (to < first) from += first - to, len -= first - to, to = first;
    if (to + len > first + n) len = first + n - to;
    if (len > 0) memcpy(dst + (to - first), src + from, (size_t)len * sizeof *dst);
  } while (next_run(idx, part, walk));
}

/* ------------------------------------------------------------ tensors */

int64_t ckpt_tensor_create(ckpt_file *f, const char *path, int n_dims, const int64_t *shape) {
  hsize_t dims[4];
  for (int d = 0; d < n_dims; d++) dims[d] = (hsize_t)shape[d];
  hid_t space = H5Screate_simple(n_dims, dims, NULL);
  H5_CHECK(space);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5_CHECK(dcpl);
  H5_CHECK(H5Pset_layout(dcpl, H5D_CONTIGUOUS));
  H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)); /* every element gets written */
  H5_CHECK(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY)); /* a file offset now, for the direct path */
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5_CHECK(lcpl);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  hid_t dset = H5Dcreate2(f->file, path, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
  H5_CHECK(dset);
  const haddr_t offset = H5Dget_offset(dset);
  H5_CHECK(H5Dclose(dset));
  H5_CHECK(H5Pclose(lcpl));
  H5_CHECK(H5Pclose(dcpl));
  H5_CHECK(H5Sclose(space));
  return offset == HADDR_UNDEF ? -1 : (int64_t)offset;
}

static hid_t transfer_plist(ckpt_file *f) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5_CHECK(dxpl);
#ifdef TESSERA_HDF5_PARALLEL
  if (f->collective) H5_CHECK(H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE));
#endif
  return dxpl;
}

/* Whether a writer's hyperslab (one range along split_dim, the other
 * dimensions whole) is one contiguous run of the row-major tensor: when it
 * is the whole tensor, or every dimension before the split has extent 1.
 * Depends on the shape and the tiling only, so every rank of a collective
 * file decides the same. */
static bool slab_is_run(const int64_t *shape, const ckpt_tiling *tiling) {
  const int sd = tiling->split_dim;
  if (sd < 0 || tiling->shard_extent >= shape[sd]) return true; /* the whole tensor */
  for (int d = 0; d < sd; d++)
    if (shape[d] != 1) return false;
  return true; /* a range of the split dimension, full ones after it */
}

bool ckpt_tensor_write_is_direct(const ckpt_file *f, const int64_t *shape, const ckpt_tiling *tiling,
                                 int64_t file_offset) {
  return f->buffered_fd >= 0 && file_offset >= 0 && slab_is_run(shape, tiling);
}

void ckpt_tensor_write(ckpt_file *f, const char *path, int64_t file_offset, int n_dims, const int64_t *shape,
                       const ckpt_tiling *tiling, const int64_t *start, const int64_t *count,
                       const float *data, bool has_data, uint32_t *crcs) {
  hsize_t off[4], cnt[4], n = 1;
  int64_t n_logical = 1;
  for (int d = 0; d < n_dims; d++) off[d] = (hsize_t)start[d], cnt[d] = (hsize_t)count[d], n *= cnt[d];
  for (int d = 0; d < n_dims; d++) n_logical *= shape[d];
  if (ckpt_tensor_write_is_direct(f, shape, tiling, file_offset)) {
    if (has_data && n > 0) {
      int64_t first = 0; /* row-major index of the slab's first element */
      for (int d = 0; d < n_dims; d++) first = first * shape[d] + start[d];
      const off_t at = (off_t)(file_offset + first * (int64_t)sizeof(float));
      const size_t bytes = (size_t)n * sizeof(float);
      /* small tensors through the page cache: O_DIRECT pays a disk round
       * trip per request, and they are a sliver of the bytes */
      if ((size_t)n_logical * sizeof(float) >= DIRECT_MIN_BYTES) write_run(f, (const char *)data, bytes, at);
      else write_buffered(f, (const char *)data, bytes, at);
    }
  } else {
    hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
    H5_CHECK(dset);
    hid_t file_space = H5Dget_space(dset);
    H5_CHECK(file_space);
    hid_t mem_space;
    if (has_data && n > 0) {
      /* memory shaped like the hyperslab: HDF5's fast same-shape copy path */
      H5_CHECK(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, off, NULL, cnt, NULL));
      mem_space = H5Screate_simple(n_dims, cnt, NULL);
      H5_CHECK(mem_space);
    } else {
      H5_CHECK(H5Sselect_none(file_space));
      hsize_t one = 1;
      mem_space = H5Screate_simple(1, &one, NULL);
      H5_CHECK(mem_space);
      H5_CHECK(H5Sselect_none(mem_space));
    }
    hid_t dxpl = transfer_plist(f);
    H5_CHECK(H5Dwrite(dset, H5T_NATIVE_FLOAT, mem_space, file_space, dxpl, data));
    H5_CHECK(H5Pclose(dxpl));
    H5_CHECK(H5Sclose(mem_space));
    H5_CHECK(H5Sclose(file_space));
    H5_CHECK(H5Dclose(dset));
  }
  if (!has_data || n == 0) return;

  /* the CRC of each tile of this shard: a contiguous run of the slab */
  box slab;
  for (int d = 0; d < n_dims; d++) slab.lo[d] = start[d], slab.hi[d] = start[d] + count[d];
  const int64_t row_elements = (int64_t)n / count[0];
  const int64_t n_slots = ckpt_tiling_slots(tiling, n_dims, shape);
  int64_t covered = 0;
  for (int64_t slot = 0; slot < n_slots; slot++) {
    box tile, part;
    if (!tile_box(tiling, n_dims, shape, slot, &tile) || !box_overlap(&tile, &slab, n_dims, &part)) continue;
    const int64_t elements = box_elements(&tile, n_dims);
    ENSURE(box_elements(&part, n_dims) == elements, "%s: slab is not a whole shard of its tiling", path);
    crcs[slot] = crc32c(data + (tile.lo[0] - start[0]) * row_elements, (size_t)elements * sizeof *data);
    covered += elements;
  }
  ENSURE(covered == (int64_t)n, "%s: slab is not a whole shard of its tiling", path);
}

void ckpt_tensor_write_checksums(ckpt_file *f, const char *path, const ckpt_tiling *tiling,
                                 const uint32_t *crcs, int64_t n_slots) {
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  H5_CHECK(dset);
  const int64_t geometry[3] = {tiling->split_dim, tiling->shard_extent, tiling->rows};
  write_attr_on(f, dset, "checksum_tiling", H5T_STD_I64LE, 3, geometry);
  write_attr_on(f, dset, "crc32c", H5T_STD_U32LE, (hsize_t)n_slots, crcs);
  H5_CHECK(H5Dclose(dset));
}

int ckpt_tensor_shape(ckpt_file *f, const char *path, int *n_dims, int64_t shape[4]) {
  if (H5Lexists(f->file, "params", H5P_DEFAULT) <= 0) return -1;
  htri_t exists = H5Lexists(f->file, path, H5P_DEFAULT);
  if (exists <= 0) return -1;
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  if (dset < 0) return -1;
  hid_t space = H5Dget_space(dset);
  hsize_t dims[4];
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 1 || rank > 4) {
    H5Sclose(space);
    H5Dclose(dset);
    return -1;
  }
  H5Sget_simple_extent_dims(space, dims, NULL);
  *n_dims = rank;
  for (int d = 0; d < rank; d++) shape[d] = (int64_t)dims[d];
  H5Sclose(space);
  H5Dclose(dset);
  return 0;
}

/* Reads a vector attribute of exactly n elements; 0 or -1. */
static int read_vector_attr(hid_t obj, const char *name, hid_t mem_type, hssize_t n, void *value) {
  if (H5Aexists(obj, name) <= 0) return -1;
  hid_t attr = H5Aopen(obj, name, H5P_DEFAULT);
  if (attr < 0) return -1;
  hid_t space = H5Aget_space(attr);
  int ok = H5Sget_simple_extent_npoints(space) == n && H5Aread(attr, mem_type, value) >= 0;
  H5Sclose(space);
  H5Aclose(attr);
  return ok ? 0 : -1;
}

/* The dataset's checksum tiling, each field bounded before any arithmetic
 * uses it (a crafted one would overflow the divisions of the tile
 * geometry): split_dim in [-1, n_dims), shard_extent in [1, 2^32] (a
 * padded vocabulary shard may exceed the logical extent; any value when
 * split_dim is -1: unused), rows in [1, TILE_TARGET_ELEMENTS] — the ranges
 * ckpt_tiling_for gives — and at most 2^24 tiles. 0 or -1. */
static int stored_tiling(hid_t dset, int n_dims, const int64_t *shape, ckpt_tiling *t, int64_t *n_slots) {
  int64_t geometry[3];
  if (read_vector_attr(dset, "checksum_tiling", H5T_NATIVE_INT64, 3, geometry) != 0) return -1;
  const int64_t split_dim = geometry[0], shard_extent = geometry[1], rows = geometry[2];
  if (split_dim < -1 || split_dim >= n_dims || rows < 1 || rows > TILE_TARGET_ELEMENTS) return -1;
  if (split_dim >= 0 && (shard_extent < 1 || shard_extent > MAX_SHARD_EXTENT)) return -1;
  *t = (ckpt_tiling){(int)split_dim, split_dim >= 0 ? shard_extent : 0, rows};
  *n_slots = ckpt_tiling_slots(t, n_dims, shape);
  return *n_slots > 0 && *n_slots < ((int64_t)1 << 24) ? 0 : -1;
}

static void format_shape(char *out, size_t out_bytes, int n_dims, const int64_t *shape) {
  size_t used = (size_t)snprintf(out, out_bytes, "[");
  for (int d = 0; d < n_dims && used < out_bytes; d++)
    used += (size_t)snprintf(out + used, out_bytes - used, "%s%lld", d ? ", " : "", (long long)shape[d]);
  if (used < out_bytes) snprintf(out + used, out_bytes - used, "]");
}

/* Whether the dataset's stored type is IEEE fp32 (either byte order: HDF5
 * converts; tessera writes little-endian). */
static bool stored_as_fp32(hid_t dset) {
  hid_t type = H5Dget_type(dset);
  if (type < 0) return false;
  const bool fp32 = H5Tget_class(type) == H5T_FLOAT && H5Tget_size(type) == sizeof(float);
  H5Tclose(type);
  return fp32;
}

int ckpt_tensor_check(ckpt_file *f, const char *path, int n_dims, const int64_t *shape, char *err,
                      size_t err_bytes) {
  char want[96], got[96];
  format_shape(want, sizeof want, n_dims, shape);
  int file_dims = 0;
  int64_t stored[4];
  if (ckpt_tensor_shape(f, path, &file_dims, stored) != 0) {
    snprintf(err, err_bytes, "checkpoint '%s' has no tensor %s (the model's is %s)", f->path, path, want);
    return EXIT_IO_ERROR;
  }
  bool same = file_dims == n_dims;
  for (int d = 0; same && d < n_dims; d++) same = stored[d] == shape[d];
  if (!same) {
    format_shape(got, sizeof got, file_dims, stored);
    snprintf(err, err_bytes, "checkpoint '%s': tensor %s has the shape %s, the model's is %s", f->path, path, got,
             want);
    return EXIT_IO_ERROR;
  }
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  if (dset < 0) {
    snprintf(err, err_bytes, "checkpoint '%s': tensor %s cannot be opened", f->path, path);
    return EXIT_IO_ERROR;
  }
  ckpt_tiling tiling;
  int64_t n_slots = 0;
  int status = 0;
  if (!stored_as_fp32(dset)) {
    snprintf(err, err_bytes, "checkpoint '%s': tensor %s is not stored as fp32", f->path, path);
    status = EXIT_IO_ERROR;
  } else if (stored_tiling(dset, n_dims, shape, &tiling, &n_slots) != 0 || H5Aexists(dset, "crc32c") <= 0) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: tensor %s lacks its checksums or its checksum tiling "
             "is out of range", f->path, path);
    status = EXIT_IO_ERROR;
  } else {
    hid_t attr = H5Aopen(dset, "crc32c", H5P_DEFAULT);
    hid_t space = attr >= 0 ? H5Aget_space(attr) : -1;
    if (space < 0 || H5Sget_simple_extent_npoints(space) != n_slots) {
      snprintf(err, err_bytes, "checkpoint '%s' is damaged: tensor %s has not one checksum per tile (%lld tiles)",
               f->path, path, (long long)n_slots);
      status = EXIT_IO_ERROR;
    }
    if (space >= 0) H5Sclose(space);
    if (attr >= 0) H5Aclose(attr);
  }
  H5Dclose(dset);
  return status;
}

/* The file offset of a dataset's bytes when they can be read with pread:
 * contiguous storage at a fixed offset, holding exactly n_elements
 * little-endian fp32 values (what tessera writes) on a little-endian host;
 * -1 otherwise (e.g. a file repacked with chunks: HDF5 reads it). */
static int64_t readable_offset(hid_t dset, int64_t n_elements) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const haddr_t offset = H5Dget_offset(dset);
  if (offset == HADDR_UNDEF || H5Dget_storage_size(dset) != (hsize_t)n_elements * sizeof(float)) return -1;
  hid_t type = H5Dget_type(dset);
  if (type < 0) return -1;
  const bool fp32le = H5Tequal(type, H5T_IEEE_F32LE) > 0;
  H5Tclose(type);
  return fp32le ? (int64_t)offset : -1;
#else
  (void)dset, (void)n_elements;
  return -1;
#endif
}

/* The O_DIRECT reader, opened at the first read that could use it (an open
 * that only reads attributes needs none); NULL when the file is mostly in
 * the page cache already or the file system refuses O_DIRECT. */
static direct_reader *reader_of(ckpt_file *f) {
  if (!f->reader_decided) {
    f->reader_decided = true;
    struct stat st;
    if (fstat(f->read_fd, &st) == 0 && !mostly_cached(f->read_fd, st.st_size)) f->reader = direct_reader_open(f->path);
  }
  return f->reader;
}

/* Reads box b of the dataset into contiguous memory (row-major over b):
 * with pread run by run where the dataset has a file offset (base >= 0),
 * else through HDF5. A box of a large tensor (`large`: written by O_DIRECT)
 * that is one run of the file goes by O_DIRECT where the file is read so.
 * The rest goes through the page cache: small tensors, which HDF5 places in
 * whatever gap of the file fits them (they are not aligned), so one of
 * them is no reason to read a whole block elsewhere; and boxes of many
 * short runs (a shard of a later dimension), whose neighbouring shards'
 * runs the readahead then holds for the next tiles. 0 or -1. */
static int read_box(ckpt_file *f, hid_t dset, int64_t base, bool large, const box *whole, const box *b,
                    int n_dims, float *out) {
  if (base >= 0) {
    int walk;
    const int64_t run = run_elements(b, whole, n_dims, &walk);
    int64_t idx[4];
    for (int d = 0; d < n_dims; d++) idx[d] = b->lo[d];
    if (large && run == box_elements(b, n_dims) && reader_of(f)) {
      const off_t at = (off_t)(base + flat_index(whole, idx, n_dims) * (int64_t)sizeof(float));
      const int status = direct_reader_read(f->reader, out, (size_t)run * sizeof *out, at);
      if (status <= 0) return status;
      direct_reader_close(f->reader); /* O_DIRECT refused: the page cache from now on */
      f->reader = NULL;
    }
    do {
      const off_t at = (off_t)(base + flat_index(whole, idx, n_dims) * (int64_t)sizeof(float));
      if (file_read_exact(f->read_fd, out, (size_t)run * sizeof *out, (uint64_t)at) != 0) return -1;
      out += run;
    } while (next_run(idx, b, walk));
    return 0;
  }
  hsize_t off[4], cnt[4];
  for (int d = 0; d < n_dims; d++) off[d] = (hsize_t)b->lo[d], cnt[d] = (hsize_t)(b->hi[d] - b->lo[d]);
  hid_t file_space = H5Dget_space(dset);
  hid_t mem_space = H5Screate_simple(n_dims, cnt, NULL);
  int status = file_space >= 0 && mem_space >= 0 &&
                       H5Sselect_hyperslab(file_space, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0 &&
                       H5Dread(dset, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, out) >= 0
                   ? 0
                   : -1;
  H5Sclose(mem_space);
  H5Sclose(file_space);
  return status;
}

/* The file's scratch tile buffer, grown to at least n elements; kept until
 * close, so a load does not pay fresh pages for every tensor. */
static float *scratch_of(ckpt_file *f, size_t n) {
  if (n > f->scratch_elements) {
    free(f->scratch);
    f->scratch = xmalloc(n * sizeof *f->scratch, "checkpoint tile");
    f->scratch_elements = n;
  }
  return f->scratch;
}

int ckpt_tensor_read(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                     const int64_t *count, float *data, char *err, size_t err_bytes) {
  int64_t n = 1;
  for (int d = 0; d < n_dims; d++) n *= count[d];
  return ckpt_tensor_read_part(f, path, n_dims, start, count, 0, n, data, err, err_bytes);
}

int ckpt_tensor_read_part(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                          const int64_t *count, int64_t first, int64_t n, float *data, char *err,
                          size_t err_bytes) {
  int file_dims = 0;
  int64_t shape[4];
  if (ckpt_tensor_shape(f, path, &file_dims, shape) != 0 || file_dims != n_dims) {
    snprintf(err, err_bytes, "checkpoint '%s' has no tensor %s of %d dimensions", f->path, path,
             n_dims);
    return EXIT_IO_ERROR;
  }
  if (n <= 0) return 0;
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  ckpt_tiling tiling = {0, 0, 0};
  int64_t n_slots = -1;
  uint32_t *crcs = NULL;
  int status = EXIT_IO_ERROR;
  if (stored_tiling(dset, n_dims, shape, &tiling, &n_slots) == 0) {
    crcs = xmalloc((size_t)n_slots * sizeof *crcs, "checksum table");
    if (read_vector_attr(dset, "crc32c", H5T_NATIVE_UINT32, n_slots, crcs) == 0) status = 0;
  }
  if (status) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: tensor %s lacks its checksums", f->path, path);
  } else {
    /* Every tile holding wanted elements is read once, whole, and checked
     * before any of it is kept. A tile that lies inside the wanted part and
     * is one run both in the file and in `data` is read straight into place
     * (the common case: a layout reading the tiles it saved); others go
     * through the scratch buffer and only their wanted part is copied. */
    box want, whole, tile, part;
    for (int d = 0; d < n_dims; d++) {
      want.lo[d] = start[d], want.hi[d] = start[d] + count[d];
      whole.lo[d] = 0, whole.hi[d] = shape[d];
    }
    int64_t n_elements = 1;
    for (int d = 0; d < n_dims; d++) n_elements *= shape[d];
    const int64_t base = readable_offset(dset, n_elements);
    const bool large = (size_t)n_elements * sizeof(float) >= DIRECT_MIN_BYTES;
    for (int64_t slot = 0; slot < n_slots && status == 0; slot++) {
      if (!tile_box(&tiling, n_dims, shape, slot, &tile) || !box_overlap(&tile, &want, n_dims, &part)) continue;
      int64_t last[4];
      for (int d = 0; d < n_dims; d++) last[d] = part.hi[d] - 1;
      const int64_t lo = flat_index(&want, part.lo, n_dims), hi = flat_index(&want, last, n_dims) + 1;
      if (hi <= first || lo >= first + n) continue; /* none of the tile is wanted */
      const size_t elements = (size_t)box_elements(&tile, n_dims);
      int walk_file, walk_data;
      const bool in_place = box_elements(&part, n_dims) == (int64_t)elements && lo >= first &&
                            hi <= first + n && run_elements(&tile, &whole, n_dims, &walk_file) == (int64_t)elements &&
                            run_elements(&tile, &want, n_dims, &walk_data) == (int64_t)elements;
      float *into = in_place ? data + (lo - first) : scratch_of(f, elements);
      if (read_box(f, dset, base, large, &whole, &tile, n_dims, into) != 0 ||
          crc32c(into, elements * sizeof *into) != crcs[slot]) {
        snprintf(err, err_bytes, "checkpoint '%s' is damaged: tensor %s fails its checksum (tile %lld) or cannot be read",
                 f->path, path, (long long)slot);
        status = EXIT_IO_ERROR;
      } else if (!in_place) {
        copy_part(into, &tile, data, &want, first, n, &part, n_dims);
      }
    }
  }
  free(crcs);
  H5Dclose(dset);
  return status;
}

/* ------------------------------------------------------------ byte strings */

void ckpt_bytes_write(ckpt_file *f, const char *path, const void *data, size_t n_bytes) {
  hsize_t dims = (hsize_t)n_bytes;
  hid_t space = H5Screate_simple(1, &dims, NULL);
  H5_CHECK(space);
  hid_t dset = H5Dcreate2(f->file, path, H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5_CHECK(dset);
  hid_t dxpl = transfer_plist(f);
  /* an empty string has nothing to write (HDF5 refuses a NULL buffer) */
  if (n_bytes) H5_CHECK(H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, dxpl, data));
  const uint32_t crc = crc32c(data, n_bytes);
  write_attr_on(f, dset, "crc32c", H5T_NATIVE_UINT32, 0, &crc);
  H5_CHECK(H5Pclose(dxpl));
  H5_CHECK(H5Dclose(dset));
  H5_CHECK(H5Sclose(space));
}

/* Reads the whole 1-D uint8 dataset into a malloc'd buffer; 0 or -1. */
static int read_byte_dataset(hid_t dset, char **data, size_t *n_bytes) {
  hid_t space = H5Dget_space(dset), type = H5Dget_type(dset);
  int ok = space >= 0 && type >= 0 && H5Sget_simple_extent_ndims(space) == 1 &&
           H5Tget_class(type) == H5T_INTEGER && H5Tget_size(type) == 1;
  hsize_t dims = 0;
  if (ok) ok = H5Sget_simple_extent_dims(space, &dims, NULL) == 1;
  if (ok) {
    *data = xmalloc((size_t)dims + 1, "a byte dataset");
    ok = dims == 0 || H5Dread(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) >= 0;
    (*data)[dims] = '\0';
    *n_bytes = (size_t)dims;
    if (!ok) free(*data), *data = NULL;
  }
  if (type >= 0) H5Tclose(type);
  if (space >= 0) H5Sclose(space);
  return ok ? 0 : -1;
}

int ckpt_bytes_read(ckpt_file *f, const char *path, char **data, size_t *n_bytes, char *err,
                    size_t err_bytes) {
  *data = NULL, *n_bytes = 0;
  if (H5Lexists(f->file, path, H5P_DEFAULT) <= 0) return -1;
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  uint32_t stored = 0;
  int status = 0;
  if (dset < 0 || read_byte_dataset(dset, data, n_bytes) != 0) {
    snprintf(err, err_bytes, "%s: dataset %s is not a readable byte string", f->path, path);
    status = EXIT_IO_ERROR;
  } else if (read_vector_attr(dset, "crc32c", H5T_NATIVE_UINT32, 1, &stored) != 0 ||
             stored != crc32c(*data, *n_bytes)) {
    snprintf(err, err_bytes, "%s: dataset %s fails its checksum (damaged file)", f->path, path);
    status = EXIT_IO_ERROR;
  }
  if (dset >= 0) H5Dclose(dset);
  if (status) free(*data), *data = NULL, *n_bytes = 0;
  return status;
}

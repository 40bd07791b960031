/* checkpoint_file — see checkpoint_file.h. */
#include "checkpoint_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build_config.h"
#include "crc32c.h"
#include "direct_writer.h"
#include "fail.h"

/* The HDF5 checking macro: the call, HDF5's innermost message, abort. */
static herr_t keep_first(unsigned n, const H5E_error2_t *e, void *out) {
  if (n == 0) snprintf((char *)out, 256, "%s (%s)", e->desc ? e->desc : "?", e->func_name);
  return 0;
}
#define H5_CHECK(call)                                                                    \
  do {                                                                                    \
    if ((call) < 0) {                                                                     \
      char h5_msg[256] = "no message";                                                    \
      H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, keep_first, h5_msg);                       \
      fail_local(EXIT_IO_ERROR, "HDF5: %s failed on '%s': %s", #call, f->path, h5_msg);   \
    }                                                                                     \
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
#define DIRECT_MIN_BYTES ((size_t)1 << 20) /* smaller tensors go through HDF5 */

int ckpt_file_create(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  f->buffered_fd = -1;
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

int ckpt_file_open(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  f->buffered_fd = -1;
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
  if (f->file < 0) {
    snprintf(err, err_bytes, "checkpoint '%s' is not a readable HDF5 file (truncated or damaged)",
             path);
    return EXIT_IO_ERROR;
  }
  return 0;
}

void ckpt_file_close(ckpt_file *f) {
  if (f->direct) {
    const int error = direct_writer_close(f->direct);
    f->direct = NULL;
    if (error) fail_local(EXIT_IO_ERROR, "writing checkpoint '%s' failed: %s", f->path, strerror(error));
  }
  if (f->buffered_fd >= 0 && close(f->buffered_fd) != 0)
    fail_local(EXIT_IO_ERROR, "writing checkpoint '%s' failed: %s", f->path, strerror(errno));
  f->buffered_fd = -1;
  if (f->file > 0) {
    H5_CHECK(H5Fflush(f->file, H5F_SCOPE_GLOBAL));
    H5_CHECK(H5Fclose(f->file));
  }
  f->file = 0;
}

static void pwrite_all(ckpt_file *f, int fd, const char *data, size_t bytes, off_t offset) {
  while (bytes > 0) {
    ssize_t done = pwrite(fd, data, bytes, offset);
    if (done < 0 && errno == EINTR) continue;
    if (done <= 0) fail_local(EXIT_IO_ERROR, "writing checkpoint '%s' failed: %s", f->path, strerror(errno));
    data += done, bytes -= (size_t)done, offset += done;
  }
}

/* bytes at file offset: the unaligned head and tail buffered, the 4 KiB
 * middle with O_DIRECT (all buffered where O_DIRECT cannot be had) */
static void write_run(ckpt_file *f, const char *data, size_t bytes, off_t offset) {
  size_t head = (size_t)((DIRECT_ALIGN - offset % DIRECT_ALIGN) % DIRECT_ALIGN);
  if (head > bytes || !f->direct) head = bytes;
  pwrite_all(f, f->buffered_fd, data, head, offset);
  data += head, bytes -= head, offset += (off_t)head;
  const size_t middle = bytes / DIRECT_ALIGN * DIRECT_ALIGN;
  if (middle) direct_writer_write(f->direct, data, middle, offset);
  pwrite_all(f, f->buffered_fd, data + middle, bytes - middle, offset + (off_t)middle);
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
  hid_t type = H5Aget_type(attr);
  int ok = H5Tget_class(type) == class_wanted && H5Aread(attr, mem_type, value) >= 0;
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

/* Copies region `part` from src (row-major over src_box) to dst (row-major
 * over dst_box): contiguous runs along the last dimension. */
static void copy_part(const float *src, const box *src_box, float *dst, const box *dst_box,
                      const box *part, int n_dims) {
  const int last = n_dims - 1;
  const int64_t run = part->hi[last] - part->lo[last];
  int64_t idx[4];
  for (int d = 0; d < n_dims; d++) idx[d] = part->lo[d];
  for (;;) {
    int64_t so = 0, dof = 0;
    for (int d = 0; d < n_dims; d++) {
      so = so * (src_box->hi[d] - src_box->lo[d]) + idx[d] - src_box->lo[d];
      dof = dof * (dst_box->hi[d] - dst_box->lo[d]) + idx[d] - dst_box->lo[d];
    }
    memcpy(dst + dof, src + so, (size_t)run * sizeof *dst);
    int d = last - 1;
    while (d >= 0 && ++idx[d] == part->hi[d]) idx[d] = part->lo[d], d--;
    if (d < 0) return;
  }
}

/* ------------------------------------------------------------ tensors */

void ckpt_tensor_create(ckpt_file *f, const char *path, int n_dims, const int64_t *shape) {
  hsize_t dims[4];
  for (int d = 0; d < n_dims; d++) dims[d] = (hsize_t)shape[d];
  hid_t space = H5Screate_simple(n_dims, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5_CHECK(H5Pset_layout(dcpl, H5D_CONTIGUOUS));
  H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER)); /* every element gets written */
  H5_CHECK(H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY)); /* a file offset now, for the direct path */
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  H5_CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  hid_t dset = H5Dcreate2(f->file, path, H5T_IEEE_F32LE, space, lcpl, dcpl, H5P_DEFAULT);
  H5_CHECK(dset);
  H5_CHECK(H5Dclose(dset));
  H5Pclose(lcpl);
  H5Pclose(dcpl);
  H5Sclose(space);
}

static hid_t transfer_plist(ckpt_file *f) {
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
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

void ckpt_tensor_write(ckpt_file *f, const char *path, int n_dims, const int64_t *shape,
                       const ckpt_tiling *tiling, const int64_t *start, const int64_t *count,
                       const float *data, bool has_data, uint32_t *crcs) {
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  H5_CHECK(dset);
  hsize_t off[4], cnt[4], n = 1;
  int64_t n_logical = 1;
  for (int d = 0; d < n_dims; d++) off[d] = (hsize_t)start[d], cnt[d] = (hsize_t)count[d], n *= cnt[d];
  for (int d = 0; d < n_dims; d++) n_logical *= shape[d];
  const bool direct = f->buffered_fd >= 0 && (size_t)n_logical * sizeof(float) >= DIRECT_MIN_BYTES &&
                      slab_is_run(shape, tiling);
  if (direct) {
    if (has_data && n > 0) {
      const haddr_t base = H5Dget_offset(dset);
      ENSURE(base != HADDR_UNDEF, "%s: dataset has no file offset", path);
      int64_t first = 0; /* row-major index of the slab's first element */
      for (int d = 0; d < n_dims; d++) first = first * shape[d] + start[d];
      write_run(f, (const char *)data, (size_t)n * sizeof(float), (off_t)(base + (haddr_t)first * sizeof(float)));
    }
  } else {
    hid_t file_space = H5Dget_space(dset);
    hid_t mem_space;
    if (has_data && n > 0) {
      /* memory shaped like the hyperslab: HDF5's fast same-shape copy path */
      H5_CHECK(H5Sselect_hyperslab(file_space, H5S_SELECT_SET, off, NULL, cnt, NULL));
      mem_space = H5Screate_simple(n_dims, cnt, NULL);
    } else {
      H5_CHECK(H5Sselect_none(file_space));
      hsize_t one = 1;
      mem_space = H5Screate_simple(1, &one, NULL);
      H5_CHECK(H5Sselect_none(mem_space));
    }
    hid_t dxpl = transfer_plist(f);
    H5_CHECK(H5Dwrite(dset, H5T_NATIVE_FLOAT, mem_space, file_space, dxpl, data));
    H5Pclose(dxpl);
    H5Sclose(mem_space);
    H5Sclose(file_space);
  }
  H5_CHECK(H5Dclose(dset));
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

/* Reads box b of the dataset into contiguous memory; 0 or -1. */
static int read_box(hid_t dset, const box *b, int n_dims, float *out) {
  hsize_t off[4], cnt[4];
  for (int d = 0; d < n_dims; d++) off[d] = (hsize_t)b->lo[d], cnt[d] = (hsize_t)(b->hi[d] - b->lo[d]);
  hid_t file_space = H5Dget_space(dset);
  hid_t mem_space = H5Screate_simple(n_dims, cnt, NULL);
  int status = H5Sselect_hyperslab(file_space, H5S_SELECT_SET, off, NULL, cnt, NULL) >= 0 &&
                       H5Dread(dset, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, out) >= 0
                   ? 0
                   : -1;
  H5Sclose(mem_space);
  H5Sclose(file_space);
  return status;
}

int ckpt_tensor_read(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                     const int64_t *count, float *data, char *err, size_t err_bytes) {
  int file_dims = 0;
  int64_t shape[4];
  if (ckpt_tensor_shape(f, path, &file_dims, shape) != 0 || file_dims != n_dims) {
    snprintf(err, err_bytes, "checkpoint '%s' has no tensor %s of %d dimensions", f->path, path,
             n_dims);
    return EXIT_IO_ERROR;
  }
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  int64_t geometry[3];
  ckpt_tiling tiling = {0, 0, 0};
  int64_t n_slots = -1;
  uint32_t *crcs = NULL;
  int status = EXIT_IO_ERROR;
  if (read_vector_attr(dset, "checksum_tiling", H5T_NATIVE_INT64, 3, geometry) == 0) {
    tiling = (ckpt_tiling){(int)geometry[0], geometry[1], geometry[2]};
    bool sane = tiling.split_dim >= -1 && tiling.split_dim < n_dims && tiling.rows > 0 &&
                (tiling.split_dim < 0 || tiling.shard_extent > 0);
    if (sane) n_slots = ckpt_tiling_slots(&tiling, n_dims, shape);
  }
  if (n_slots > 0 && n_slots < ((int64_t)1 << 24)) {
    crcs = xmalloc((size_t)n_slots * sizeof *crcs, "checksum table");
    if (read_vector_attr(dset, "crc32c", H5T_NATIVE_UINT32, n_slots, crcs) == 0) status = 0;
  }
  if (status) {
    snprintf(err, err_bytes, "checkpoint '%s' is damaged: tensor %s lacks its checksums", f->path, path);
  } else {
    /* every tile the request touches is read whole, checked, and the part
     * inside the request kept */
    box want, tile, part;
    for (int d = 0; d < n_dims; d++) want.lo[d] = start[d], want.hi[d] = start[d] + count[d];
    float *buffer = NULL;
    size_t buffer_elements = 0;
    for (int64_t slot = 0; slot < n_slots && status == 0; slot++) {
      if (!tile_box(&tiling, n_dims, shape, slot, &tile) || !box_overlap(&tile, &want, n_dims, &part)) continue;
      const size_t elements = (size_t)box_elements(&tile, n_dims);
      /* the tile is exactly the request: read straight into place */
      const bool whole = box_elements(&part, n_dims) == (int64_t)elements &&
                         box_elements(&want, n_dims) == (int64_t)elements;
      if (!whole && elements > buffer_elements) {
        free(buffer);
        buffer = xmalloc(elements * sizeof *buffer, "checkpoint tile");
        buffer_elements = elements;
      }
      float *into = whole ? data : buffer;
      if (read_box(dset, &tile, n_dims, into) != 0 || crc32c(into, elements * sizeof *into) != crcs[slot]) {
        snprintf(err, err_bytes, "checkpoint '%s' is damaged: tensor %s fails its checksum (tile %lld) or cannot be read",
                 f->path, path, (long long)slot);
        status = EXIT_IO_ERROR;
      } else if (!whole) {
        copy_part(buffer, &tile, data, &want, &part, n_dims);
      }
    }
    free(buffer);
  }
  free(crcs);
  H5Dclose(dset);
  return status;
}

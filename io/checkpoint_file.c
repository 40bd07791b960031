/* checkpoint_file — see checkpoint_file.h. */
#include "checkpoint_file.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "build_config.h"
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

int ckpt_file_create(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", path);
  H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors are ours to report */
  hid_t fapl = access_plist(comm, f);
  f->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  H5Pclose(fapl);
  if (f->file < 0) {
    snprintf(err, err_bytes, "cannot create checkpoint file '%s'", path);
    return EXIT_IO_ERROR;
  }
  return 0;
}

int ckpt_file_open(ckpt_file *f, const char *path, MPI_Comm comm, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
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
  if (f->file > 0) {
    H5_CHECK(H5Fflush(f->file, H5F_SCOPE_GLOBAL));
    H5_CHECK(H5Fclose(f->file));
  }
  f->file = 0;
}

static void write_attr(ckpt_file *f, const char *name, hid_t type, const void *value) {
  hid_t space = H5Screate(H5S_SCALAR);
  if (H5Aexists(f->file, name) > 0) H5_CHECK(H5Adelete(f->file, name));
  hid_t attr = H5Acreate2(f->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5_CHECK(attr);
  H5_CHECK(H5Awrite(attr, type, value));
  H5_CHECK(H5Aclose(attr));
  H5_CHECK(H5Sclose(space));
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

void ckpt_tensor_create(ckpt_file *f, const char *path, int n_dims, const int64_t *shape) {
  hsize_t dims[4], chunk[4];
  /* chunks of about a million elements, cut along the first dimension */
  hsize_t inner = 1;
  for (int d = 0; d < n_dims; d++) dims[d] = chunk[d] = (hsize_t)shape[d];
  for (int d = 1; d < n_dims; d++) inner *= dims[d];
  hsize_t rows = inner >= (1u << 20) ? 1 : (1u << 20) / inner;
  if (rows < chunk[0]) chunk[0] = rows;
  hid_t space = H5Screate_simple(n_dims, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5_CHECK(H5Pset_chunk(dcpl, n_dims, chunk));
  H5_CHECK(H5Pset_fletcher32(dcpl));
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

void ckpt_tensor_write(ckpt_file *f, const char *path, int n_dims, const int64_t *start,
                       const int64_t *count, const float *data, bool has_data) {
  hid_t dset = H5Dopen2(f->file, path, H5P_DEFAULT);
  H5_CHECK(dset);
  hid_t file_space = H5Dget_space(dset);
  hsize_t off[4], cnt[4], n = 1;
  for (int d = 0; d < n_dims; d++) off[d] = (hsize_t)start[d], cnt[d] = (hsize_t)count[d], n *= cnt[d];
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
  hid_t file_space = H5Dget_space(dset);
  hsize_t off[4], cnt[4], n = 1;
  for (int d = 0; d < n_dims; d++) off[d] = (hsize_t)start[d], cnt[d] = (hsize_t)count[d], n *= cnt[d];
  int status = 0;
  if (n > 0) {
    hid_t mem_space = H5Screate_simple(n_dims, cnt, NULL);
    H5Sselect_hyperslab(file_space, H5S_SELECT_SET, off, NULL, cnt, NULL);
    if (H5Dread(dset, H5T_NATIVE_FLOAT, mem_space, file_space, H5P_DEFAULT, data) < 0) {
      snprintf(err, err_bytes,
               "checkpoint '%s' is damaged: tensor %s fails its checksum or cannot be read", f->path,
               path);
      status = EXIT_IO_ERROR;
    }
    H5Sclose(mem_space);
  }
  H5Sclose(file_space);
  H5Dclose(dset);
  return status;
}

/* rewrite_checkpoint — crafts the damaged checkpoints the validation tests
 * need, with the HDF5 API (no Python in the tests):
 *   rewrite_checkpoint FILE reshape DATASET D0 [D1 ...]  the dataset replaced
 *       by one of that shape (zeros), its checksum attributes copied
 *   rewrite_checkpoint FILE f64 DATASET                  the same shape, fp64
 *   rewrite_checkpoint FILE tiling DATASET SPLIT EXTENT ROWS
 *   rewrite_checkpoint FILE i64 NAME VALUE               a root attribute, replaced
 *   rewrite_checkpoint FILE str NAME VALUE
 * Exit 0, or 2 when it cannot. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what) {
  fprintf(stderr, "rewrite_checkpoint: cannot %s\n", what);
  return 2;
}

/* Replaces attribute `name` of obj by a value of `type`, n elements. */
static int put_attr(hid_t obj, const char *name, hid_t type, hsize_t n, const void *value) {
  if (H5Aexists(obj, name) > 0 && H5Adelete(obj, name) < 0) return -1;
  hid_t space = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
  hid_t attr = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  int ok = attr >= 0 && H5Awrite(attr, type, value) >= 0;
  H5Aclose(attr);
  H5Sclose(space);
  return ok ? 0 : -1;
}

/* Copies the checksum attributes of `from` onto `to`. */
static int copy_checksums(hid_t from, hid_t to) {
  const char *names[2] = {"checksum_tiling", "crc32c"};
  for (int i = 0; i < 2; i++) {
    hid_t attr = H5Aopen(from, names[i], H5P_DEFAULT);
    if (attr < 0) return -1;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    hssize_t n = H5Sget_simple_extent_npoints(space);
    void *buf = calloc((size_t)n, H5Tget_size(type));
    int ok = buf && H5Aread(attr, type, buf) >= 0 && put_attr(to, names[i], type, (hsize_t)n, buf) == 0;
    free(buf);
    H5Sclose(space);
    H5Tclose(type);
    H5Aclose(attr);
    if (!ok) return -1;
  }
  return 0;
}

/* Replaces dataset `path` by zeros of type `type` and the given shape. */
static int replace_dataset(hid_t file, const char *path, hid_t type, int n_dims, const hsize_t *dims) {
  hid_t old = H5Dopen2(file, path, H5P_DEFAULT);
  if (old < 0) return -1;
  hsize_t n = 1;
  for (int d = 0; d < n_dims; d++) n *= dims[d];
  hid_t space = H5Screate_simple(n_dims, dims, NULL);
  hid_t made = H5Dcreate2(file, "rewrite_tmp", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  double *zeros = calloc(n ? n : 1, sizeof *zeros);
  int ok = made >= 0 && zeros && H5Dwrite(made, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, zeros) >= 0 &&
           copy_checksums(old, made) == 0;
  free(zeros);
  H5Sclose(space);
  H5Dclose(old);
  H5Dclose(made);
  return ok && H5Ldelete(file, path, H5P_DEFAULT) >= 0 &&
                 H5Lmove(file, "rewrite_tmp", file, path, H5P_DEFAULT, H5P_DEFAULT) >= 0
             ? 0
             : -1;
}

static int stored_dims(hid_t file, const char *path, hsize_t dims[4]) {
  hid_t dset = H5Dopen2(file, path, H5P_DEFAULT);
  if (dset < 0) return -1;
  hid_t space = H5Dget_space(dset);
  int n = H5Sget_simple_extent_ndims(space);
  if (n > 4 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) n = -1;
  H5Sclose(space);
  H5Dclose(dset);
  return n;
}

static int run(hid_t file, const char *op, int argc, char **argv) {
  if (strcmp(op, "reshape") == 0 && argc >= 2 && argc <= 5) {
    hsize_t dims[4];
    for (int d = 1; d < argc; d++) dims[d - 1] = strtoull(argv[d], NULL, 10);
    return replace_dataset(file, argv[0], H5T_IEEE_F32LE, argc - 1, dims);
  }
  if (strcmp(op, "f64") == 0 && argc == 1) {
    hsize_t dims[4];
    const int n = stored_dims(file, argv[0], dims);
    return n < 1 ? -1 : replace_dataset(file, argv[0], H5T_IEEE_F64LE, n, dims);
  }
  if (strcmp(op, "tiling") == 0 && argc == 4) {
    long long geometry[3] = {strtoll(argv[1], NULL, 10), strtoll(argv[2], NULL, 10), strtoll(argv[3], NULL, 10)};
    hid_t dset = H5Dopen2(file, argv[0], H5P_DEFAULT);
    int status = dset < 0 ? -1 : put_attr(dset, "checksum_tiling", H5T_NATIVE_LLONG, 3, geometry);
    H5Dclose(dset);
    return status;
  }
  if (strcmp(op, "i64") == 0 && argc == 2) {
    long long value = strtoll(argv[1], NULL, 10);
    return put_attr(file, argv[0], H5T_NATIVE_LLONG, 0, &value);
  }
  if (strcmp(op, "str") == 0 && argc == 2) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(argv[1]) + 1);
    int status = put_attr(file, argv[0], type, 0, argv[1]);
    H5Tclose(type);
    return status;
  }
  return -1;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: rewrite_checkpoint FILE reshape|f64|tiling|i64|str ARGS...\n");
    return 2;
  }
  hid_t file = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) return fail("open the file");
  const int status = run(file, argv[2], argc - 3, argv + 3);
  if (H5Fclose(file) < 0 || status != 0) return fail(argv[2]);
  return 0;
}

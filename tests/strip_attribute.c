/* strip_attribute — deletes one attribute of a checkpoint's root group, to
 * make the damaged files the fault tests need (a file without `complete`).
 * usage: strip_attribute FILE NAME; exit 0, or 2 when it cannot. */
#include <hdf5.h>
#include <stdio.h>

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: strip_attribute FILE NAME\n");
    return 2;
  }
  hid_t file = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0 || H5Adelete(file, argv[2]) < 0 || H5Fclose(file) < 0) {
    fprintf(stderr, "strip_attribute: cannot delete %s from %s\n", argv[2], argv[1]);
    return 2;
  }
  return 0;
}

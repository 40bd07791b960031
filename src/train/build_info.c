/* build_info — see build_info.h. */
#include "build_info.h"

#include "build_config.h"
#include "backend.h"

#include <hdf5.h>
#include <mpi.h>
#include <string.h>
#ifdef TESSERA_HAVE_OPENBLAS
#include <cblas.h>
#endif

const char *build_info_version(void) { return PACKAGE_VERSION; }

void build_info_print(FILE *out) {
  char mpi_library[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  MPI_Get_library_version(mpi_library, &length);
  char *newline = strchr(mpi_library, '\n');
  if (newline) *newline = '\0';
  char *comma = strstr(mpi_library, ", package");
  if (comma) *comma = '\0';
  unsigned h5_major = 0, h5_minor = 0, h5_release = 0;
  H5get_libversion(&h5_major, &h5_minor, &h5_release);
  fprintf(out, "tessera %s\n", PACKAGE_VERSION);
  fprintf(out, "  MPI:  %s\n", mpi_library);
#ifdef OPENBLAS_VERSION
  fprintf(out, "  BLAS: %s, %s\n", TESSERA_BLAS, openblas_get_config());
#else
  fprintf(out, "  BLAS: %s\n", TESSERA_BLAS);
#endif
  fprintf(out, "  HDF5: %u.%u.%u (%s)\n", h5_major, h5_minor, h5_release, TESSERA_HDF5_KIND);
#ifdef TESSERA_CUDA_FOUND
  fprintf(out, "  CUDA: backend built with %s (bf16 kernels, cuBLAS; NCCL for --comm nccl)\n", TESSERA_CUDA_HOME);
#else
  fprintf(out, "  CUDA: not found (CPU backend only)\n");
#endif
  if (backend_cuda_built()) { /* what the backend makes of this machine's GPUs */
    device_probe probe;
    backend_cuda_probe(&probe);
    char line[256];
    device_probe_describe(&probe, line, sizeof line);
    fprintf(out, "  %s\n", line);
  }
}

/* build_info — what this binary was built with, for `tessera --version` and
 * the start of every run's log: MPI library, BLAS, HDF5 (parallel or
 * serial), CUDA. */
#ifndef TESSERA_BUILD_INFO_H
#define TESSERA_BUILD_INFO_H

#include <stdio.h>

/* Works before MPI_Init (--version needs no MPI job). */
void build_info_print(FILE *out);
const char *build_info_version(void);

#endif

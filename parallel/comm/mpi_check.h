/* mpi_check — the checking macro for every MPI call (one error path, see
 * kernels/fail.h): a failed call prints rank, file, line, the call and MPI's
 * own message, then aborts the whole job. Communicators are set to return
 * errors (runtime_init) so that this macro, not MPI, decides what happens. */
#ifndef TESSERA_MPI_CHECK_H
#define TESSERA_MPI_CHECK_H

#include <mpi.h>

#include "fail.h"

#define MPI_CHECK(call)                                                          \
  do {                                                                           \
    int mpi_check_rc = (call);                                                   \
    if (mpi_check_rc != MPI_SUCCESS) {                                           \
      char mpi_check_msg[MPI_MAX_ERROR_STRING];                                  \
      int mpi_check_len = 0;                                                     \
      MPI_Error_string(mpi_check_rc, mpi_check_msg, &mpi_check_len);             \
      fail_local(EXIT_INTERNAL_ERROR, "%s failed: %s", #call, mpi_check_msg);    \
    }                                                                            \
  } while (0)

#endif

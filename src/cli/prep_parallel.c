/* prep_parallel — see prep_parallel.h. */
#include "prep_parallel.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fail.h"
#include "mpi_check.h"

static int world_rank(void) {
  int rank = 0;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  return rank;
}

int prep_agree(int status, char *err, size_t err_bytes) {
  int size = 1;
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  int first = status ? world_rank() : size;
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  if (first == size) return 0;
  char message[MESSAGE_BYTES];
  snprintf(message, sizeof message, "%s", status ? err : "");
  MPI_CHECK(MPI_Bcast(message, (int)sizeof message, MPI_CHAR, first, MPI_COMM_WORLD));
  MPI_CHECK(MPI_Bcast(&status, 1, MPI_INT, first, MPI_COMM_WORLD));
  snprintf(err, err_bytes, "%s", message);
  return status;
}

static void say_mpi_io(int rc, const char *what, const char *path, char *err, size_t err_bytes) {
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  snprintf(err, err_bytes, "prep: %s '%s' failed: %s", what, path, msg);
}

/* MPI counts are int: the bytes go in rounds of at most 1 GiB, every rank
 * taking part in every round (the writes are collective). */
#define ROUND_BYTES ((uint64_t)1 << 30)

static int write_rounds(MPI_File fh, const char *path, const char *data, uint64_t n_bytes, uint64_t offset,
                        char *err, size_t err_bytes) {
  uint64_t rounds = (n_bytes + ROUND_BYTES - 1) / ROUND_BYTES;
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD));
  int status = 0;
  for (uint64_t r = 0, done = 0; r < rounds; r++) {
    const uint64_t piece = status || done >= n_bytes ? 0 : (n_bytes - done < ROUND_BYTES ? n_bytes - done : ROUND_BYTES);
    MPI_Status st;
    const int rc = MPI_File_write_at_all(fh, (MPI_Offset)(offset + done), data + done, (int)piece, MPI_BYTE, &st);
    if (rc != MPI_SUCCESS && !status) {
      say_mpi_io(rc, "writing", path, err, err_bytes);
      status = EXIT_IO_ERROR;
    }
    done += piece;
  }
  return status;
}

int prep_write_in_rank_order(const char *path, const void *data, uint64_t n_bytes, uint64_t *total, char *err,
                             size_t err_bytes) {
  uint64_t offset = 0;
  MPI_CHECK(MPI_Exscan(&n_bytes, &offset, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
  if (world_rank() == 0) offset = 0; /* MPI_Exscan leaves rank 0's result undefined */
  *total = prep_sum(n_bytes);
  MPI_File fh;
  int rc = MPI_File_open(MPI_COMM_WORLD, path, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh);
  int status = 0;
  if (rc != MPI_SUCCESS) {
    say_mpi_io(rc, "creating", path, err, err_bytes);
    return EXIT_IO_ERROR; /* the open is collective: every rank fails together */
  }
  rc = MPI_File_set_size(fh, (MPI_Offset)*total); /* a stale longer file would keep its tail */
  if (rc != MPI_SUCCESS) say_mpi_io(rc, "sizing", path, err, err_bytes), status = EXIT_IO_ERROR;
  const int written = write_rounds(fh, path, data, n_bytes, offset, err, err_bytes);
  if (written && !status) status = written;
  rc = MPI_File_sync(fh);
  if (rc != MPI_SUCCESS && !status) say_mpi_io(rc, "flushing", path, err, err_bytes), status = EXIT_IO_ERROR;
  rc = MPI_File_close(&fh);
  if (rc != MPI_SUCCESS && !status) say_mpi_io(rc, "closing", path, err, err_bytes), status = EXIT_IO_ERROR;
  return status;
}

int32_t *prep_gather_lengths(const int32_t *lengths, uint64_t n, uint64_t *n_total) {
  int size = 1;
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size));
  const int rank = world_rank();
  *n_total = prep_sum(n);
  if (*n_total > INT32_MAX)
    fail_collective(EXIT_USER_ERROR, "prep: %llu documents exceed the %d that one index is gathered with",
                    (unsigned long long)*n_total, INT32_MAX);
  int mine = (int)n, *counts = NULL, *displs = NULL;
  int32_t *all = NULL;
  if (rank == 0) {
    counts = xcalloc((size_t)size, sizeof *counts, "document counts");
    displs = xcalloc((size_t)size, sizeof *displs, "document counts");
    all = xmalloc((*n_total ? *n_total : 1) * sizeof *all, "document lengths");
  }
  MPI_CHECK(MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, MPI_COMM_WORLD));
  for (int r = 1; rank == 0 && r < size; r++) displs[r] = displs[r - 1] + counts[r - 1];
  MPI_CHECK(MPI_Gatherv(lengths, mine, MPI_INT32_T, all, counts, displs, MPI_INT32_T, 0, MPI_COMM_WORLD));
  free(counts);
  free(displs);
  return all;
}

void prep_quiet_barrier(void) {
  MPI_Request req;
  MPI_CHECK(MPI_Ibarrier(MPI_COMM_WORLD, &req));
  const struct timespec pause = {0, 500 * 1000};
  for (int done = 0;;) {
    MPI_CHECK(MPI_Test(&req, &done, MPI_STATUS_IGNORE));
    if (done) return;
    nanosleep(&pause, NULL);
  }
}

long prep_shared_tag(void) {
  long tag = (long)getpid();
  MPI_CHECK(MPI_Bcast(&tag, 1, MPI_LONG, 0, MPI_COMM_WORLD));
  return tag;
}

uint64_t prep_sum(uint64_t value) {
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &value, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD));
  return value;
}

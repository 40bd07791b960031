/* runtime — see runtime.h. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi_check.h"

static int mpi_is_up(void) {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

static int hook_rank(void) {
  int rank = -1;
  if (mpi_is_up()) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

static void hook_abort(int exit_status) {
  if (mpi_is_up()) MPI_Abort(MPI_COMM_WORLD, exit_status);
  exit(exit_status);
}

static void hook_exit_collectively(int exit_status) {
  if (mpi_is_up()) MPI_Finalize();
  exit(exit_status);
}

void runtime_init(int *argc, char ***argv, runtime *rt) {
  memset(rt, 0, sizeof *rt);
  int provided = 0;
  /* FUNNELED: only the main thread calls MPI (OpenMP threads compute). */
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "tessera: error: MPI_Init_thread failed\n");
    exit(3);
  }
  fail_install_hooks(&(fail_hooks){.rank = hook_rank,
                                   .abort_job = hook_abort,
                                   .exit_collectively = hook_exit_collectively});
  MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rt->world_rank));
  MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &rt->world_size));
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rt->world_rank,
                                MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_rank(node, &rt->local_rank));
  MPI_CHECK(MPI_Comm_size(node, &rt->local_size));
  MPI_CHECK(MPI_Comm_free(&node));
  int name_len = 0;
  MPI_CHECK(MPI_Get_processor_name(rt->processor_name, &name_len));
}

void runtime_finalize(void) {
  if (mpi_is_up()) MPI_CHECK(MPI_Finalize());
}

bool runtime_devices_distinct(const char *device_id) {
  enum { ID_BYTES = 64 };
  char mine[ID_BYTES] = {0};
  snprintf(mine, sizeof mine, "%s", device_id);
  int world_rank = 0, local_size = 0;
  MPI_Comm node;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
  MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world_rank, MPI_INFO_NULL, &node));
  MPI_CHECK(MPI_Comm_size(node, &local_size));
  char *all = calloc((size_t)local_size, ID_BYTES);
  if (!all) fail_local(EXIT_INTERNAL_ERROR, "out of memory gathering device ids");
  MPI_CHECK(MPI_Allgather(mine, ID_BYTES, MPI_CHAR, all, ID_BYTES, MPI_CHAR, node));
  MPI_CHECK(MPI_Comm_free(&node));
  int distinct = 1;
  for (int a = 0; a < local_size; a++)
    for (int b = a + 1; b < local_size; b++)
      if (strncmp(all + (size_t)a * ID_BYTES, all + (size_t)b * ID_BYTES, ID_BYTES) == 0) distinct = 0;
  free(all);
  MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, &distinct, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
  return distinct != 0;
}

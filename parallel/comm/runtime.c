/* runtime — see runtime.h. */
#include "runtime.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fail.h"
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

/* Appends "a-b" or "a" (a run of consecutive ranks) to out, comma first
 * unless it is the first. */
static void append_run(char *out, size_t out_bytes, size_t *used, int first, int last, bool lead) {
  if (*used + 24 >= out_bytes) return;
  *used += (size_t)snprintf(out + *used, out_bytes - *used, first == last ? "%s%d" : "%s%d-%d",
                            lead ? "" : ",", first, last);
}

/* One host's ranks, as runs: "0-1,4". */
static void describe_ranks(const char *names, int n, int host, char *out, size_t out_bytes, size_t *used) {
  const char *mine = names + (size_t)host * MPI_MAX_PROCESSOR_NAME;
  int first = -1, prev = -1;
  for (int r = host; r < n; r++) {
    if (strcmp(names + (size_t)r * MPI_MAX_PROCESSOR_NAME, mine) != 0) continue;
    if (first >= 0 && r != prev + 1) {
      append_run(out, out_bytes, used, first, prev, first == host);
      first = -1;
    }
    if (first < 0) first = r;
    prev = r;
  }
  append_run(out, out_bytes, used, first, prev, first == host);
}

int runtime_describe_hosts(const runtime *rt, char *out, size_t out_bytes) {
  const int n = rt->world_size;
  char *names = rt->world_rank == 0 ? calloc((size_t)n, MPI_MAX_PROCESSOR_NAME) : NULL;
  if (rt->world_rank == 0 && !names) fail_local(EXIT_INTERNAL_ERROR, "out of memory gathering host names");
  MPI_CHECK(MPI_Gather(rt->processor_name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME,
                       MPI_CHAR, 0, MPI_COMM_WORLD));
  int hosts = 0;
  if (rt->world_rank == 0) {
    size_t used = 0;
    out[0] = '\0';
    for (int r = 0; r < n; r++) {
      const char *name = names + (size_t)r * MPI_MAX_PROCESSOR_NAME;
      bool seen = false;
      for (int q = 0; q < r && !seen; q++) seen = strcmp(name, names + (size_t)q * MPI_MAX_PROCESSOR_NAME) == 0;
      if (seen) continue;
      if (hosts++ == 8) { /* a large job: the count says enough */
        if (used + 8 < out_bytes) used += (size_t)snprintf(out + used, out_bytes - used, ", ...");
        continue;
      }
      if (hosts > 8 || used + strlen(name) + 16 >= out_bytes) continue;
      used += (size_t)snprintf(out + used, out_bytes - used, "%s%s (ranks ", hosts > 1 ? ", " : "", name);
      describe_ranks(names, n, r, out, out_bytes, &used);
      if (used + 2 < out_bytes) used += (size_t)snprintf(out + used, out_bytes - used, ")");
    }
  }
  free(names);
  MPI_CHECK(MPI_Bcast(&hosts, 1, MPI_INT, 0, MPI_COMM_WORLD));
  return hosts;
}

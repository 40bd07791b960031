/* runtime — starting and ending the MPI job.
 *
 * runtime_init() initialises MPI, makes communicator errors return codes (so
 * MPI_CHECK reports them), and installs the fail.h hooks: a user error seen by
 * every rank ends with MPI_Finalize and the same exit status everywhere; an
 * error seen by one rank calls MPI_Abort, which takes every rank down instead
 * of leaving the others waiting in a collective forever.
 */
#ifndef TESSERA_RUNTIME_H
#define TESSERA_RUNTIME_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct runtime {
  int world_rank, world_size;
  int local_rank, local_size; /* among the ranks on this node (GPU selection) */
  char processor_name[MPI_MAX_PROCESSOR_NAME];
} runtime;

void runtime_init(int *argc, char ***argv, runtime *rt);
void runtime_finalize(void);

/* Whether, on every node, the ranks' device ids (backend.h: device_id, at
 * most 63 characters) all differ — every rank has a GPU of its own.
 * Collective over the world; every rank gets the same answer. */
bool runtime_devices_distinct(const char *device_id);

/* The hosts the job runs on (processor names), for rank 0 to print:
 * "node1 (ranks 0-1), node2 (ranks 2-3)" in out on rank 0 (the first 8
 * hosts, then "..."); returns the number of hosts on every rank.
 * Collective over the world. */
int runtime_describe_hosts(const runtime *rt, char *out, size_t out_bytes);

#endif

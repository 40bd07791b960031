/* comm — see comm.h. */
#include "comm.h"

#include <stdio.h>
#include <string.h>

#include "mpi_check.h"

static const char *kind_names[COMM_N_KINDS] = {"allreduce", "broadcast", "allgather",
                                               "reduce_scatter", "sendrecv", "barrier"};

const char *comm_kind_name(comm_kind kind) { return kind_names[kind]; }

void comm_create(comm *c, MPI_Comm parent, const char *name) {
  memset(c, 0, sizeof *c);
  MPI_CHECK(MPI_Comm_dup(parent, &c->mpi));
  MPI_CHECK(MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(c->mpi, &c->rank));
  MPI_CHECK(MPI_Comm_size(c->mpi, &c->size));
  snprintf(c->name, sizeof c->name, "%s", name);
}

void comm_split(comm *c, const comm *parent, int color, int key, const char *name) {
  memset(c, 0, sizeof *c);
  MPI_CHECK(MPI_Comm_split(parent->mpi, color, key, &c->mpi));
  MPI_CHECK(MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(c->mpi, &c->rank));
  MPI_CHECK(MPI_Comm_size(c->mpi, &c->size));
  snprintf(c->name, sizeof c->name, "%s", name);
}

void comm_free(comm *c) {
  if (c->mpi != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&c->mpi));
}

static void count(comm *c, comm_kind kind, size_t n_bytes, double seconds) {
  c->counters.calls[kind]++;
  c->counters.bytes[kind] += n_bytes;
  c->counters.seconds[kind] += seconds;
}

/* MPI counts are int: a larger buffer is reduced in pieces. */
#define MAX_PIECE ((size_t)1 << 30)

static void allreduce(comm *c, void *buffer, size_t n_elems, size_t elem_bytes,
                      MPI_Datatype type, MPI_Op op) {
  double start = MPI_Wtime();
  for (size_t done = 0; done < n_elems; done += MAX_PIECE) {
    size_t piece = n_elems - done < MAX_PIECE ? n_elems - done : MAX_PIECE;
    MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, (char *)buffer + done * elem_bytes, (int)piece, type, op,
                            c->mpi));
  }
  count(c, COMM_ALLREDUCE, n_elems * elem_bytes, MPI_Wtime() - start);
}

void comm_allreduce_sum_f32(comm *c, float *buffer, size_t n_elems) {
  allreduce(c, buffer, n_elems, sizeof(float), MPI_FLOAT, MPI_SUM);
}
void comm_allreduce_sum_f64(comm *c, double *buffer, size_t n_elems) {
  allreduce(c, buffer, n_elems, sizeof(double), MPI_DOUBLE, MPI_SUM);
}
void comm_allreduce_max_i64(comm *c, int64_t *buffer, size_t n_elems) {
  allreduce(c, buffer, n_elems, sizeof(int64_t), MPI_INT64_T, MPI_MAX);
}

void comm_allreduce_max_f32(comm *c, float *buffer, size_t n_elems) {
  allreduce(c, buffer, n_elems, sizeof(float), MPI_FLOAT, MPI_MAX);
}

void comm_allgather_f32(comm *c, const float *in, float *out, size_t n_per_rank) {
  ENSURE(n_per_rank <= MAX_PIECE, "all-gather of %zu elements per rank is too large", n_per_rank);
  double start = MPI_Wtime();
  MPI_CHECK(MPI_Allgather(in, (int)n_per_rank, MPI_FLOAT, out, (int)n_per_rank, MPI_FLOAT, c->mpi));
  count(c, COMM_ALLGATHER, n_per_rank * (size_t)c->size * sizeof(float), MPI_Wtime() - start);
}

void comm_allgatherv_inplace_f32(comm *c, float *buffer, const int *counts, const int *displs) {
  double start = MPI_Wtime();
  MPI_CHECK(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displs, MPI_FLOAT,
                           c->mpi));
  size_t total = 0;
  for (int r = 0; r < c->size; r++) total += (size_t)counts[r];
  count(c, COMM_ALLGATHER, total * sizeof(float), MPI_Wtime() - start);
}

void comm_reduce_scatter_sum_f32(comm *c, const float *in, float *out, size_t n_per_rank) {
  ENSURE(n_per_rank <= MAX_PIECE, "reduce-scatter of %zu elements per rank is too large", n_per_rank);
  double start = MPI_Wtime();
  MPI_CHECK(MPI_Reduce_scatter_block(in, out, (int)n_per_rank, MPI_FLOAT, MPI_SUM, c->mpi));
  count(c, COMM_REDUCE_SCATTER, n_per_rank * (size_t)c->size * sizeof(float), MPI_Wtime() - start);
}

void comm_allreduce_sum_f32_start(comm *c, float *buffer, size_t n_elems, comm_request *req) {
  ENSURE(n_elems <= MAX_PIECE, "non-blocking all-reduce of %zu elements: split into buckets",
         n_elems);
  req->owner = c;
  req->kind = COMM_ALLREDUCE;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)n_elems, MPI_FLOAT, MPI_SUM, c->mpi, &req->mpi));
  count(c, COMM_ALLREDUCE, n_elems * sizeof(float), 0.0);
}

void comm_wait(comm_request *req) {
  double start = MPI_Wtime();
  MPI_CHECK(MPI_Wait(&req->mpi, MPI_STATUS_IGNORE));
  req->owner->counters.seconds[req->kind] += MPI_Wtime() - start;
}

void comm_poke(comm_request *reqs, int n_reqs) {
  for (int i = 0; i < n_reqs; i++) {
    int done = 0;
    if (reqs[i].mpi != MPI_REQUEST_NULL) MPI_CHECK(MPI_Test(&reqs[i].mpi, &done, MPI_STATUS_IGNORE));
  }
}

void comm_broadcast(comm *c, void *buffer, size_t n_bytes, int root) {
  double start = MPI_Wtime();
  for (size_t done = 0; done < n_bytes; done += MAX_PIECE) {
    size_t piece = n_bytes - done < MAX_PIECE ? n_bytes - done : MAX_PIECE;
    MPI_CHECK(MPI_Bcast((char *)buffer + done, (int)piece, MPI_BYTE, root, c->mpi));
  }
  count(c, COMM_BROADCAST, n_bytes, MPI_Wtime() - start);
}

void comm_barrier(comm *c) {
  double start = MPI_Wtime();
  MPI_CHECK(MPI_Barrier(c->mpi));
  count(c, COMM_BARRIER, 0, MPI_Wtime() - start);
}

uint64_t comm_total_bytes(const comm *c) {
  uint64_t total = 0;
  for (int k = 0; k < COMM_N_KINDS; k++) total += c->counters.bytes[k];
  return total;
}

double comm_total_seconds(const comm *c) {
  double total = 0;
  for (int k = 0; k < COMM_N_KINDS; k++) total += c->counters.seconds[k];
  return total;
}

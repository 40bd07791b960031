/* nccl_comm — see nccl_comm.h. Compiled in CUDA builds only (Makefile.am:
 * HAVE_CUDA); nccl_comm_absent.c stands in elsewhere. Every NCCL call goes
 * through NCCL_CHECK and every CUDA call through CUDA_CHECK: rank, file,
 * line, the call and the library's message, then the job is aborted. */
#include "nccl_comm.h"

#include <nccl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_check.h"
#include "fail.h"
#include "mpi_check.h"

#define NCCL_CHECK(call)                                                                          \
  do {                                                                                            \
    ncclResult_t nccl_status_ = (call);                                                           \
    if (nccl_status_ != ncclSuccess)                                                              \
      fail_local(EXIT_INTERNAL_ERROR, "NCCL: %s failed: %s", #call, ncclGetErrorString(nccl_status_)); \
  } while (0)

struct nccl_group {
  ncclComm_t nccl;
  cudaStream_t stream;         /* the group's own stream */
  cudaStream_t compute_stream; /* the backend's */
  cudaEvent_t ready;           /* recorded on the compute stream before each call */
};

bool nccl_comm_built(void) { return true; }

void nccl_group_create(comm *c, void *compute_stream) {
  struct nccl_group *g = xcalloc(1, sizeof *g, "NCCL group");
  ncclUniqueId id;
  if (c->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
  /* the id travels over the group's own MPI communicator, uncounted: set-up, not training */
  MPI_CHECK(MPI_Bcast(&id, (int)sizeof id, MPI_BYTE, 0, c->mpi));
  NCCL_CHECK(ncclCommInitRank(&g->nccl, c->size, id, c->rank));
  CUDA_CHECK(cudaStreamCreateWithFlags(&g->stream, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreateWithFlags(&g->ready, cudaEventDisableTiming));
  g->compute_stream = (cudaStream_t)compute_stream;
  c->nccl = g;
}

void nccl_group_free(comm *c) {
  struct nccl_group *g = c->nccl;
  if (!g) return;
  CUDA_CHECK(cudaStreamSynchronize(g->stream));
  NCCL_CHECK(ncclCommDestroy(g->nccl));
  CUDA_CHECK(cudaEventDestroy(g->ready));
  CUDA_CHECK(cudaStreamDestroy(g->stream));
  free(g);
  c->nccl = NULL;
}

static ncclDataType_t type_of(nccl_elem elem) { return elem == NCCL_ELEM_BF16 ? ncclBfloat16 : ncclFloat32; }
static size_t bytes_of(nccl_elem elem) { return elem == NCCL_ELEM_BF16 ? 2 : 4; }

/* The group's stream waits for the data's producer (everything queued on
 * the backend's stream so far). */
static struct nccl_group *begin(comm *c, comm_kind kind, nccl_pending *done) {
  struct nccl_group *g = c->nccl;
  ENSURE(g, "group %s has no NCCL communicator", c->name);
  done->kind = kind;
  done->seq = comm_take_seq(c);
  CUDA_CHECK(cudaEventRecord(g->ready, g->compute_stream));
  CUDA_CHECK(cudaStreamWaitEvent(g->stream, g->ready, 0));
  return g;
}

/* The event after the call(s) on the group's stream. */
static void end(struct nccl_group *g, nccl_pending *done) {
  cudaEvent_t event;
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  CUDA_CHECK(cudaEventRecord(event, g->stream));
  done->event = event;
}

void nccl_group_allreduce(comm *c, void *buffer, size_t n_elems, nccl_elem elem, bool max_op,
                          nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_ALLREDUCE, done);
  NCCL_CHECK(ncclAllReduce(buffer, buffer, n_elems, type_of(elem), max_op ? ncclMax : ncclSum, g->nccl, g->stream));
  end(g, done);
  comm_count(c, COMM_ALLREDUCE, n_elems * bytes_of(elem));
}

void nccl_group_allgather(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                          nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_ALLGATHER, done);
  NCCL_CHECK(ncclAllGather(in, out, n_per_rank, type_of(elem), g->nccl, g->stream));
  end(g, done);
  comm_count(c, COMM_ALLGATHER, n_per_rank * (size_t)c->size * bytes_of(elem));
}

void nccl_group_reduce_scatter(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                               nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_REDUCE_SCATTER, done);
  NCCL_CHECK(ncclReduceScatter(in, out, n_per_rank, type_of(elem), ncclSum, g->nccl, g->stream));
  end(g, done);
  comm_count(c, COMM_REDUCE_SCATTER, n_per_rank * (size_t)c->size * bytes_of(elem));
}

void nccl_group_alltoall(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                         nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_ALLTOALL, done);
  const size_t block = n_per_rank * bytes_of(elem);
  NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < c->size; r++) {
    NCCL_CHECK(ncclSend((const char *)in + (size_t)r * block, n_per_rank, type_of(elem), r, g->nccl, g->stream));
    NCCL_CHECK(ncclRecv((char *)out + (size_t)r * block, n_per_rank, type_of(elem), r, g->nccl, g->stream));
  }
  NCCL_CHECK(ncclGroupEnd());
  end(g, done);
  comm_count(c, COMM_ALLTOALL, block * (size_t)c->size);
}

void nccl_group_allgatherv(comm *c, const void *send, void *out, const int *counts, const int *displs,
                           nccl_elem elem, nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_ALLGATHER, done);
  const size_t w = bytes_of(elem);
  size_t total = 0;
  NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < c->size; r++) { /* every rank skips the same empty blocks */
    total += (size_t)counts[r];
    if (counts[r] == 0) continue;
    const void *from = r == c->rank ? send : (char *)out + (size_t)displs[r] * w; /* ignored off the root */
    NCCL_CHECK(ncclBroadcast(from, (char *)out + (size_t)displs[r] * w, (size_t)counts[r], type_of(elem), r,
                             g->nccl, g->stream));
  }
  NCCL_CHECK(ncclGroupEnd());
  end(g, done);
  comm_count(c, COMM_ALLGATHER, total * w);
}

void nccl_group_reduce_scatterv(comm *c, const void *in, void *out, const int *counts, nccl_elem elem,
                                nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_REDUCE_SCATTER, done);
  const size_t w = bytes_of(elem);
  size_t offset = 0;
  NCCL_CHECK(ncclGroupStart());
  for (int r = 0; r < c->size; r++) {
    if (counts[r] > 0)
      NCCL_CHECK(ncclReduce((const char *)in + offset * w, out, (size_t)counts[r], type_of(elem), ncclSum, r, g->nccl,
                            g->stream));
    offset += (size_t)counts[r];
  }
  NCCL_CHECK(ncclGroupEnd());
  end(g, done);
  comm_count(c, COMM_REDUCE_SCATTER, offset * w);
}

void nccl_group_sendrecv(comm *c, const void *send, size_t n_send, int to, void *recv, size_t n_recv, int from,
                         nccl_elem elem, nccl_pending *done) {
  struct nccl_group *g = begin(c, COMM_SENDRECV, done);
  NCCL_CHECK(ncclGroupStart());
  if (recv && n_recv) NCCL_CHECK(ncclRecv(recv, n_recv, type_of(elem), from, g->nccl, g->stream));
  if (send && n_send) NCCL_CHECK(ncclSend(send, n_send, type_of(elem), to, g->nccl, g->stream));
  NCCL_CHECK(ncclGroupEnd());
  end(g, done);
  /* as MPI's path counts them: the message on the sending side, a call for the receive */
  if (recv && n_recv) comm_count(c, COMM_SENDRECV, 0);
  if (send && n_send) comm_count(c, COMM_SENDRECV, n_send * bytes_of(elem));
}

void nccl_group_wait(comm *c, nccl_pending *done) {
  struct nccl_group *g = c->nccl;
  cudaEvent_t event = (cudaEvent_t)done->event;
  if (!event) return;
  double start = MPI_Wtime();
  if (c->watchdog_s > 0) { /* poll: a stuck collective is reported, not waited on forever */
    for (;;) {
      cudaError_t status = cudaEventQuery(event);
      if (status == cudaSuccess) break;
      if (status != cudaErrorNotReady) CUDA_CHECK(status);
      ncclResult_t async_error = ncclSuccess;
      NCCL_CHECK(ncclCommGetAsyncError(g->nccl, &async_error));
      NCCL_CHECK(async_error);
      if (MPI_Wtime() - start > c->watchdog_s) {
        char members[200];
        comm_describe_members(c, members, sizeof members);
        fail_local(EXIT_INTERNAL_ERROR,
                   "watchdog: no progress for %.0f s in NCCL %s #%llu of group %s (%d ranks: world ranks %s); "
                   "a peer is missing from this collective or has died — the job is aborted",
                   c->watchdog_s, comm_kind_name(done->kind), (unsigned long long)done->seq, c->name, c->size,
                   members);
      }
      sched_yield();
    }
  }
  /* the backend's stream, not the host, waits: the next op sees the result */
  CUDA_CHECK(cudaStreamWaitEvent(g->compute_stream, event, 0));
  CUDA_CHECK(cudaEventDestroy(event)); /* released once it has completed */
  done->event = NULL;
  comm_charge_seconds(c, done->kind, MPI_Wtime() - start);
}

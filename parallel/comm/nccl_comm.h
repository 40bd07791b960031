/* nccl_comm — a group's NCCL communicator and the calls parallel/comm/device_comm
 * makes on it (`--comm nccl`). CUDA builds compile nccl_comm.c; others
 * compile nccl_comm_absent.c, where nccl_comm_built() is false and nothing
 * else may be called. This header names no CUDA or NCCL type, so parallel/
 * stays free of CUDA headers in a CPU build.
 *
 * One nccl_group per grid group (created by grid_enable_nccl, collectively
 * over the group: its rank 0 makes the unique id and broadcasts it over the
 * group's MPI communicator). Each group has its own CUDA stream, so a
 * gradient reduction overlaps the backward that runs on the backend's
 * stream. Every call: the group's stream first waits for what the backend's
 * stream has queued so far (the producer of the data), the NCCL call(s) are
 * enqueued, and an event recorded after them goes into `done`;
 * nccl_group_wait makes the backend's stream wait for that event, so the
 * host never blocks and whatever the backend computes next sees the result.
 * With a watchdog (comm.h) the wait polls the event and NCCL's asynchronous
 * error instead, and reports a stuck collective as MPI's path does.
 *
 * NCCL has no all-gather or reduce-scatter of uneven blocks: they are one
 * ncclBroadcast or ncclReduce per rank inside ncclGroupStart/End (the NCCL
 * documentation's recipe), skipping ranks whose block is empty. Point to
 * point messages pair in call order per peer (NCCL has no tags), and a send
 * blocks its stream until the peer's receive is enqueued: a send and a
 * receive that must progress together go in one group (nccl_group_sendrecv).
 *
 * Elements: bf16 (act_t on CUDA) or fp32 (f32_t). Counted bytes are what
 * NCCL moves for the caller: 2 per bf16 element, 4 per fp32 one, by the
 * rules of comm.h (all-reduce the buffer, all-gather the gathered result,
 * reduce-scatter the input, a message on its sending side).
 */
#ifndef TESSERA_NCCL_COMM_H
#define TESSERA_NCCL_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "comm.h"

typedef enum nccl_elem { NCCL_ELEM_BF16, NCCL_ELEM_F32 } nccl_elem;

/* A call in flight: the event after it on the group's stream. */
typedef struct nccl_pending {
  void *event; /* cudaEvent_t, NULL: nothing in flight */
  comm_kind kind;
  uint64_t seq;
} nccl_pending;

/* Whether this build has NCCL (a CUDA build). */
bool nccl_comm_built(void);

/* Creates c's NCCL communicator on this rank's current GPU, collectively
 * over c; compute_stream is the backend's stream (backend.h: stream). */
void nccl_group_create(comm *c, void *compute_stream);
void nccl_group_free(comm *c);

/* In place; max_op false: SUM. */
void nccl_group_allreduce(comm *c, void *buffer, size_t n_elems, nccl_elem elem, bool max_op,
                          nccl_pending *done);
/* out[r·n_per_rank ...] = rank r's in */
void nccl_group_allgather(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                          nccl_pending *done);
/* rank r's out = Σ over ranks of in[r·n_per_rank ...] */
void nccl_group_reduce_scatter(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                               nccl_pending *done);
/* rank r's out[q·n_per_rank ...] = rank q's in[r·n_per_rank ...]: one NCCL
 * group of a send and a receive per peer (NCCL has no all-to-all call) */
void nccl_group_alltoall(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                         nccl_pending *done);
/* Rank r's counts[r] elements at send land at out + displs[r] on every rank
 * (send may be out + displs[me]: in place). */
void nccl_group_allgatherv(comm *c, const void *send, void *out, const int *counts, const int *displs,
                           nccl_elem elem, nccl_pending *done);
/* Rank r receives into out the sum of in[Σ_{q<r} counts[q] ...] (counts[r]). */
void nccl_group_reduce_scatterv(comm *c, const void *in, void *out, const int *counts, nccl_elem elem,
                                nccl_pending *done);
/* A send to `to` and a receive from `from`, as one NCCL group; either may be
 * absent (send NULL or n_send 0; recv NULL or n_recv 0). */
void nccl_group_sendrecv(comm *c, const void *send, size_t n_send, int to, void *recv, size_t n_recv,
                         int from, nccl_elem elem, nccl_pending *done);
/* The backend's stream waits for the call (see above); time charged: what
 * the host waited, nothing unless a watchdog polls. */
void nccl_group_wait(comm *c, nccl_pending *done);

#endif

/* device_comm — communication of a backend's buffers (act_t, f32_t): what
 * every caller that moves model tensors between ranks goes through
 * (DESIGN.md principle 4). The caller hands the group, the backend and the
 * handles; this layer picks the path, per call, from the two:
 *
 *   host view  the backend's memory is host memory (CPU; backend.h:
 *              host_pointer): the comm.h call runs on the buffers themselves.
 *              No copy, and calls, bytes and sequence numbers are exactly
 *              those of comm.h (4 bytes per element).
 *   NCCL       the group has an NCCL communicator (grid_enable_nccl, `--comm
 *              nccl`): NCCL on the device buffers, act_t as bf16, on the
 *              group's own stream ordered after the backend's
 *              (parallel/comm/nccl_comm.h). Counted: 2 bytes per act_t element,
 *              4 per f32_t.
 *   staged     otherwise (`--comm mpi` on a GPU, e.g. several ranks sharing
 *              one): the buffer is copied to host memory (act_to_host: bf16
 *              widens to fp32, exactly), the comm.h call runs on the copy,
 *              and the result is copied back (act_from_host: rounded to bf16
 *              once, after the fp32 reduction). Counted: what MPI moves, 4
 *              bytes per element.
 * Byte rules are comm.h's whatever the path: all-reduce the buffer,
 * all-gather the gathered result, reduce-scatter the input, a message on
 * its sending side.
 *
 * Non-blocking calls fill a dcomm_request that dcomm_wait completes (the
 * time is charged there). A staged request owns its host copies until the
 * wait, which copies the result into the caller's buffer; a NCCL request
 * makes the backend's stream wait at dcomm_wait. Either way the caller must
 * neither read the result nor overwrite the input before dcomm_wait — MPI's
 * own rule — and counts/displs arrays must stay valid until then.
 * Point-to-point tags matter to MPI only: NCCL pairs messages in call order
 * per peer, which is why only groups whose messages pair in order get an
 * NCCL communicator (grid.h), and why a ring step's send and receive are
 * one call (dcomm_exchange_act_start).
 */
#ifndef TESSERA_DEVICE_COMM_H
#define TESSERA_DEVICE_COMM_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "nccl_comm.h"

typedef struct dcomm_request {
  comm *group;
  comm_request mpi[2]; /* MPI's requests: one, or two for an exchange */
  int n_mpi;
  nccl_pending nccl;   /* NCCL's, when the group has a communicator */
  /* staged: host copies owned until the wait, and where the result goes */
  const backend *be;
  float *staging[2];   /* [0] receives the result (or is sent), [1] an input */
  void *result;        /* the caller's buffer, filled from staging[0] at the wait */
  bool result_is_act;  /* act_t (else f32_t) */
  size_t result_elems; /* one range from element 0 ... */
  const int *result_counts, *result_displs; /* ... or the group's blocks */
} dcomm_request;

/* ---- blocking ---- */
void dcomm_allreduce_sum_act(comm *c, const backend *be, act_t *buffer, size_t n_elems);
void dcomm_allreduce_sum_f32(comm *c, const backend *be, f32_t *buffer, size_t n_elems);
void dcomm_allreduce_max_f32(comm *c, const backend *be, f32_t *buffer, size_t n_elems);
/* out[r·n_per_rank ...] = rank r's in */
void dcomm_allgather_act(comm *c, const backend *be, const act_t *in, act_t *out, size_t n_per_rank);
void dcomm_allgather_f32(comm *c, const backend *be, const f32_t *in, f32_t *out, size_t n_per_rank);
/* rank r's out = Σ over ranks of in[r·n_per_rank ...] */
void dcomm_reduce_scatter_sum_act(comm *c, const backend *be, const act_t *in, act_t *out, size_t n_per_rank);
/* rank r's out[q·n_per_rank ...] = rank q's in[r·n_per_rank ...] (NCCL: a
 * group of sends and receives, one pair per peer) */
void dcomm_alltoall_act(comm *c, const backend *be, const act_t *in, act_t *out, size_t n_per_rank);
/* In place: rank r's buffer[displs[r] ... + counts[r]) to every rank. */
void dcomm_allgatherv_inplace_act(comm *c, const backend *be, act_t *buffer, const int *counts,
                                  const int *displs);
void dcomm_send_act(comm *c, const backend *be, const act_t *buffer, size_t n_elems, int peer, int tag);
void dcomm_recv_act(comm *c, const backend *be, act_t *buffer, size_t n_elems, int peer, int tag);
void dcomm_send_f32(comm *c, const backend *be, const f32_t *buffer, size_t n_elems, int peer, int tag);
void dcomm_recv_f32(comm *c, const backend *be, f32_t *buffer, size_t n_elems, int peer, int tag);

/* ---- non-blocking: completed by dcomm_wait ---- */
void dcomm_allreduce_sum_act_start(comm *c, const backend *be, act_t *buffer, size_t n_elems,
                                   dcomm_request *req);
/* Rank r receives into out the sum over ranks of in[Σ_{q<r} counts[q] ...]. */
void dcomm_reduce_scatter_sum_act_start(comm *c, const backend *be, const act_t *in, act_t *out,
                                        const int *counts, dcomm_request *req);
/* Rank r's send_count elements land at out + displs[r] on every rank. */
void dcomm_allgatherv_act_start(comm *c, const backend *be, const act_t *send, int send_count, act_t *out,
                                const int *counts, const int *displs, dcomm_request *req);
void dcomm_send_act_start(comm *c, const backend *be, const act_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req);
void dcomm_recv_act_start(comm *c, const backend *be, act_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req);
void dcomm_send_f32_start(comm *c, const backend *be, const f32_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req);
void dcomm_recv_f32_start(comm *c, const backend *be, f32_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req);
/* One step of a ring: receive n_elems from `from` into recv while sending
 * n_elems of send to `to` (MPI: a receive posted, then a send). */
void dcomm_exchange_act_start(comm *c, const backend *be, const act_t *send, int to, act_t *recv, int from,
                              size_t n_elems, int tag, dcomm_request *req);
/* The same with a count each way (TokenRing: a rank returns as many result
 * pieces as its keys could see, which differs from what it receives). */
void dcomm_sendrecv_act_start(comm *c, const backend *be, const act_t *send, size_t n_send, int to, act_t *recv,
                              size_t n_recv, int from, int tag, dcomm_request *req);
void dcomm_sendrecv_f32_start(comm *c, const backend *be, const f32_t *send, size_t n_send, int to, f32_t *recv,
                              size_t n_recv, int from, int tag, dcomm_request *req);
void dcomm_wait(dcomm_request *req);
/* Lets MPI progress outstanding requests (call between compute phases). */
void dcomm_poke(dcomm_request *reqs, int n_reqs);

#endif

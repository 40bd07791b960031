/* device_comm — see device_comm.h. Each call: NCCL when the group has a
 * communicator, else the buffers' host view when the backend has one, else
 * host copies around the comm.h call. */
#include "device_comm.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

typedef enum elem_kind { ELEM_ACT, ELEM_F32 } elem_kind;

/* Host copies move in pieces of this many elements: the CUDA backend widens
 * and narrows through a device scratch buffer of the piece's fp32 size, which
 * this bounds (16 MiB) whatever the message. */
#define STAGE_PIECE ((size_t)1 << 22)

static size_t elem_bytes(const backend *be, elem_kind k) { return k == ELEM_ACT ? be->act_elem_bytes : sizeof(float); }

static void *elem_at(const backend *be, elem_kind k, const void *base, size_t n_elems) {
  return (char *)base + n_elems * elem_bytes(be, k);
}

static nccl_elem nccl_elem_of(const backend *be, elem_kind k) {
  ENSURE(k == ELEM_F32 || be->act_elem_bytes == 2, "NCCL with %zu-byte activations", be->act_elem_bytes);
  return k == ELEM_ACT ? NCCL_ELEM_BF16 : NCCL_ELEM_F32;
}

/* The buffer's host view, or NULL: it lives on a device. */
static float *view(const backend *be, const void *buffer) { return be->host_pointer((void *)buffer); }

static void to_host(const backend *be, elem_kind k, float *dst, const void *src, size_t n_elems) {
  for (size_t done = 0; done < n_elems; done += STAGE_PIECE) {
    const size_t n = n_elems - done < STAGE_PIECE ? n_elems - done : STAGE_PIECE;
    if (k == ELEM_ACT) be->act_to_host(dst + done, elem_at(be, k, src, done), n);
    else be->f32_to_host(dst + done, elem_at(be, k, src, done), n);
  }
}

static void from_host(const backend *be, elem_kind k, void *dst, const float *src, size_t n_elems) {
  for (size_t done = 0; done < n_elems; done += STAGE_PIECE) {
    const size_t n = n_elems - done < STAGE_PIECE ? n_elems - done : STAGE_PIECE;
    if (k == ELEM_ACT) be->act_from_host(elem_at(be, k, dst, done), src + done, n);
    else be->f32_from_host(elem_at(be, k, dst, done), src + done, n);
  }
}

static float *staging(size_t n_elems) { return xmalloc(n_elems * sizeof(float), "communication staging"); }

/* A host copy of a device buffer. */
static float *staged_copy(const backend *be, elem_kind k, const void *src, size_t n_elems) {
  float *host = staging(n_elems);
  to_host(be, k, host, src, n_elems);
  return host;
}

static size_t sum_of(const int *counts, int n) {
  size_t total = 0;
  for (int r = 0; r < n; r++) total += (size_t)counts[r];
  return total;
}

static void request_init(dcomm_request *req, comm *c, const backend *be) {
  memset(req, 0, sizeof *req);
  req->group = c;
  req->be = be;
}

/* ---------------------------------------------------------------- wait */

void dcomm_wait(dcomm_request *req) {
  if (req->nccl.event) nccl_group_wait(req->group, &req->nccl);
  for (int i = 0; i < req->n_mpi; i++) comm_wait(&req->mpi[i]);
  req->n_mpi = 0;
  if (req->result) { /* staged: the result into the caller's buffer */
    const elem_kind k = req->result_is_act ? ELEM_ACT : ELEM_F32;
    if (req->result_counts) {
      for (int r = 0; r < req->group->size; r++)
        if (req->result_counts[r] > 0)
          from_host(req->be, k, elem_at(req->be, k, req->result, (size_t)req->result_displs[r]),
                    req->staging[0] + req->result_displs[r], (size_t)req->result_counts[r]);
    } else {
      from_host(req->be, k, req->result, req->staging[0], req->result_elems);
    }
    req->result = NULL;
  }
  for (int i = 0; i < 2; i++) {
    free(req->staging[i]);
    req->staging[i] = NULL;
  }
}

void dcomm_poke(dcomm_request *reqs, int n_reqs) {
  for (int i = 0; i < n_reqs; i++)
    if (reqs[i].n_mpi) comm_poke(reqs[i].mpi, reqs[i].n_mpi);
}

/* ---------------------------------------------------------------- all-reduce */

static void allreduce(comm *c, const backend *be, elem_kind k, void *buffer, size_t n_elems, bool max_op) {
  if (c->nccl) {
    nccl_pending done = {0};
    nccl_group_allreduce(c, buffer, n_elems, nccl_elem_of(be, k), max_op, &done);
    nccl_group_wait(c, &done);
    return;
  }
  float *host = view(be, buffer), *copy = NULL;
  if (!host) host = copy = staged_copy(be, k, buffer, n_elems);
  if (max_op) comm_allreduce_max_f32(c, host, n_elems);
  else comm_allreduce_sum_f32(c, host, n_elems);
  if (copy) {
    from_host(be, k, buffer, copy, n_elems);
    free(copy);
  }
}

void dcomm_allreduce_sum_act(comm *c, const backend *be, act_t *buffer, size_t n_elems) {
  allreduce(c, be, ELEM_ACT, buffer, n_elems, false);
}
void dcomm_allreduce_sum_f32(comm *c, const backend *be, f32_t *buffer, size_t n_elems) {
  allreduce(c, be, ELEM_F32, buffer, n_elems, false);
}
void dcomm_allreduce_max_f32(comm *c, const backend *be, f32_t *buffer, size_t n_elems) {
  allreduce(c, be, ELEM_F32, buffer, n_elems, true);
}

void dcomm_allreduce_sum_act_start(comm *c, const backend *be, act_t *buffer, size_t n_elems,
                                   dcomm_request *req) {
  request_init(req, c, be);
  if (c->nccl) {
    nccl_group_allreduce(c, buffer, n_elems, nccl_elem_of(be, ELEM_ACT), false, &req->nccl);
    return;
  }
  float *host = view(be, buffer);
  if (!host) {
    host = req->staging[0] = staged_copy(be, ELEM_ACT, buffer, n_elems);
    req->result = buffer, req->result_is_act = true, req->result_elems = n_elems;
  }
  comm_allreduce_sum_f32_start(c, host, n_elems, &req->mpi[0]);
  req->n_mpi = 1;
}

/* ---------------------------------------------------------------- all-gather */

static void allgather(comm *c, const backend *be, elem_kind k, const void *in, void *out, size_t n_per_rank) {
  if (c->nccl) {
    nccl_pending done = {0};
    nccl_group_allgather(c, in, out, n_per_rank, nccl_elem_of(be, k), &done);
    nccl_group_wait(c, &done);
    return;
  }
  float *host_in = view(be, in), *host_out = view(be, out);
  if (host_in && host_out) {
    comm_allgather_f32(c, host_in, host_out, n_per_rank);
    return;
  }
  const size_t n_out = n_per_rank * (size_t)c->size;
  float *copy_in = staged_copy(be, k, in, n_per_rank), *copy_out = staging(n_out);
  comm_allgather_f32(c, copy_in, copy_out, n_per_rank);
  from_host(be, k, out, copy_out, n_out);
  free(copy_in);
  free(copy_out);
}

void dcomm_allgather_act(comm *c, const backend *be, const act_t *in, act_t *out, size_t n_per_rank) {
  allgather(c, be, ELEM_ACT, in, out, n_per_rank);
}
void dcomm_allgather_f32(comm *c, const backend *be, const f32_t *in, f32_t *out, size_t n_per_rank) {
  allgather(c, be, ELEM_F32, in, out, n_per_rank);
}

void dcomm_alltoall_act(comm *c, const backend *be, const act_t *in, act_t *out, size_t n_per_rank) {
  if (c->nccl) {
    nccl_pending done = {0};
    nccl_group_alltoall(c, in, out, n_per_rank, nccl_elem_of(be, ELEM_ACT), &done);
    nccl_group_wait(c, &done);
    return;
  }
  float *host_in = view(be, in), *host_out = view(be, out);
  if (host_in && host_out) {
    comm_alltoall_f32(c, host_in, host_out, n_per_rank);
    return;
  }
  const size_t n = n_per_rank * (size_t)c->size;
  float *copy_in = staged_copy(be, ELEM_ACT, in, n), *copy_out = staging(n);
  comm_alltoall_f32(c, copy_in, copy_out, n_per_rank);
  from_host(be, ELEM_ACT, out, copy_out, n);
  free(copy_in);
  free(copy_out);
}

void dcomm_allgatherv_inplace_act(comm *c, const backend *be, act_t *buffer, const int *counts,
                                  const int *displs) {
  const int me = c->rank;
  if (c->nccl) {
    nccl_pending done = {0};
    nccl_group_allgatherv(c, act_at(be, buffer, (size_t)displs[me]), buffer, counts, displs,
                          nccl_elem_of(be, ELEM_ACT), &done);
    nccl_group_wait(c, &done);
    return;
  }
  float *host = view(be, buffer);
  if (host) {
    comm_allgatherv_inplace_f32(c, host, counts, displs);
    return;
  }
  /* only this rank's block goes to the host; every other block comes back */
  size_t extent = 0;
  for (int r = 0; r < c->size; r++)
    if ((size_t)displs[r] + (size_t)counts[r] > extent) extent = (size_t)displs[r] + (size_t)counts[r];
  float *copy = staging(extent);
  to_host(be, ELEM_ACT, copy + displs[me], act_at(be, buffer, (size_t)displs[me]), (size_t)counts[me]);
  comm_allgatherv_inplace_f32(c, copy, counts, displs);
  for (int r = 0; r < c->size; r++)
    if (r != me && counts[r] > 0)
      from_host(be, ELEM_ACT, act_at(be, buffer, (size_t)displs[r]), copy + displs[r], (size_t)counts[r]);
  free(copy);
}

void dcomm_allgatherv_act_start(comm *c, const backend *be, const act_t *send, int send_count, act_t *out,
                                const int *counts, const int *displs, dcomm_request *req) {
  request_init(req, c, be);
  if (c->nccl) {
    nccl_group_allgatherv(c, send, out, counts, displs, nccl_elem_of(be, ELEM_ACT), &req->nccl);
    return;
  }
  float *host_send = view(be, send), *host_out = view(be, out);
  if (!host_send || !host_out) {
    size_t extent = 0;
    for (int r = 0; r < c->size; r++)
      if ((size_t)displs[r] + (size_t)counts[r] > extent) extent = (size_t)displs[r] + (size_t)counts[r];
    host_send = req->staging[1] = staged_copy(be, ELEM_ACT, send, (size_t)send_count);
    host_out = req->staging[0] = staging(extent);
    req->result = out, req->result_is_act = true;
    req->result_counts = counts, req->result_displs = displs;
  }
  comm_allgatherv_f32_start(c, host_send, send_count, host_out, counts, displs, &req->mpi[0]);
  req->n_mpi = 1;
}

/* ---------------------------------------------------------------- reduce-scatter */

void dcomm_reduce_scatter_sum_act(comm *c, const backend *be, const act_t *in, act_t *out, size_t n_per_rank) {
  if (c->nccl) {
    nccl_pending done = {0};
    nccl_group_reduce_scatter(c, in, out, n_per_rank, nccl_elem_of(be, ELEM_ACT), &done);
    nccl_group_wait(c, &done);
    return;
  }
  float *host_in = view(be, in), *host_out = view(be, out);
  if (host_in && host_out) {
    comm_reduce_scatter_sum_f32(c, host_in, host_out, n_per_rank);
    return;
  }
  float *copy_in = staged_copy(be, ELEM_ACT, in, n_per_rank * (size_t)c->size), *copy_out = staging(n_per_rank);
  comm_reduce_scatter_sum_f32(c, copy_in, copy_out, n_per_rank);
  from_host(be, ELEM_ACT, out, copy_out, n_per_rank);
  free(copy_in);
  free(copy_out);
}

void dcomm_reduce_scatter_sum_act_start(comm *c, const backend *be, const act_t *in, act_t *out,
                                        const int *counts, dcomm_request *req) {
  request_init(req, c, be);
  if (c->nccl) {
    nccl_group_reduce_scatterv(c, in, out, counts, nccl_elem_of(be, ELEM_ACT), &req->nccl);
    return;
  }
  float *host_in = view(be, in), *host_out = view(be, out);
  if (!host_in || !host_out) {
    const size_t n_out = (size_t)counts[c->rank];
    host_in = req->staging[1] = staged_copy(be, ELEM_ACT, in, sum_of(counts, c->size));
    host_out = req->staging[0] = staging(n_out);
    req->result = out, req->result_is_act = true, req->result_elems = n_out;
  }
  comm_reduce_scatter_sum_f32_start(c, host_in, host_out, counts, &req->mpi[0]);
  req->n_mpi = 1;
}

/* ---------------------------------------------------------------- point to point */

/* Starts a receive (recv, n_recv) and/or a send (send, n_send) as one request. */
static void p2p_start(comm *c, const backend *be, elem_kind k, const void *send, size_t n_send, int to, void *recv,
                      size_t n_recv, int from, int tag, dcomm_request *req) {
  request_init(req, c, be);
  if (c->nccl) {
    nccl_group_sendrecv(c, send, n_send, to, recv, n_recv, from, nccl_elem_of(be, k), &req->nccl);
    return;
  }
  if (recv) {
    float *host = view(be, recv);
    if (!host) {
      host = req->staging[0] = staging(n_recv);
      req->result = recv, req->result_is_act = k == ELEM_ACT, req->result_elems = n_recv;
    }
    comm_recv_f32_start(c, host, n_recv, from, tag, &req->mpi[req->n_mpi++]);
  }
  if (send) {
    float *host = view(be, send);
    if (!host) host = req->staging[1] = staged_copy(be, k, send, n_send);
    comm_send_f32_start(c, host, n_send, to, tag, &req->mpi[req->n_mpi++]);
  }
}

void dcomm_send_act_start(comm *c, const backend *be, const act_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req) {
  p2p_start(c, be, ELEM_ACT, buffer, n_elems, peer, NULL, 0, -1, tag, req);
}
void dcomm_recv_act_start(comm *c, const backend *be, act_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req) {
  p2p_start(c, be, ELEM_ACT, NULL, 0, -1, buffer, n_elems, peer, tag, req);
}
void dcomm_send_f32_start(comm *c, const backend *be, const f32_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req) {
  p2p_start(c, be, ELEM_F32, buffer, n_elems, peer, NULL, 0, -1, tag, req);
}
void dcomm_recv_f32_start(comm *c, const backend *be, f32_t *buffer, size_t n_elems, int peer, int tag,
                          dcomm_request *req) {
  p2p_start(c, be, ELEM_F32, NULL, 0, -1, buffer, n_elems, peer, tag, req);
}
void dcomm_exchange_act_start(comm *c, const backend *be, const act_t *send, int to, act_t *recv, int from,
                              size_t n_elems, int tag, dcomm_request *req) {
  p2p_start(c, be, ELEM_ACT, send, n_elems, to, recv, n_elems, from, tag, req);
}
void dcomm_sendrecv_act_start(comm *c, const backend *be, const act_t *send, size_t n_send, int to, act_t *recv,
                              size_t n_recv, int from, int tag, dcomm_request *req) {
  p2p_start(c, be, ELEM_ACT, send, n_send, to, recv, n_recv, from, tag, req);
}
void dcomm_sendrecv_f32_start(comm *c, const backend *be, const f32_t *send, size_t n_send, int to, f32_t *recv,
                              size_t n_recv, int from, int tag, dcomm_request *req) {
  p2p_start(c, be, ELEM_F32, send, n_send, to, recv, n_recv, from, tag, req);
}

void dcomm_send_act(comm *c, const backend *be, const act_t *buffer, size_t n_elems, int peer, int tag) {
  dcomm_request req;
  dcomm_send_act_start(c, be, buffer, n_elems, peer, tag, &req);
  dcomm_wait(&req);
}
void dcomm_recv_act(comm *c, const backend *be, act_t *buffer, size_t n_elems, int peer, int tag) {
  dcomm_request req;
  dcomm_recv_act_start(c, be, buffer, n_elems, peer, tag, &req);
  dcomm_wait(&req);
}
void dcomm_send_f32(comm *c, const backend *be, const f32_t *buffer, size_t n_elems, int peer, int tag) {
  dcomm_request req;
  dcomm_send_f32_start(c, be, buffer, n_elems, peer, tag, &req);
  dcomm_wait(&req);
}
void dcomm_recv_f32(comm *c, const backend *be, f32_t *buffer, size_t n_elems, int peer, int tag) {
  dcomm_request req;
  dcomm_recv_f32_start(c, be, buffer, n_elems, peer, tag, &req);
  dcomm_wait(&req);
}

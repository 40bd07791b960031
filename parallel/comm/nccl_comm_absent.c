/* nccl_comm_absent — compiled when the build has no CUDA (and so no NCCL),
 * and in the emulated CUDA build (tests/cuda_emu), which emulates the
 * kernels but not NCCL: nccl_comm_built() says so, `--comm nccl` is a user
 * error, and nothing else here is ever reached. */
#include "nccl_comm.h"

#include "fail.h"

bool nccl_comm_built(void) { return false; }

static _Noreturn void absent(void) { fail_local(EXIT_INTERNAL_ERROR, "NCCL call in a build without NCCL"); }

void nccl_group_create(comm *c, void *compute_stream) { absent(); }
void nccl_group_free(comm *c) {
  if (c->nccl) absent();
}
void nccl_group_allreduce(comm *c, void *buffer, size_t n_elems, nccl_elem elem, bool max_op, nccl_pending *done) {
  absent();
}
void nccl_group_allgather(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem, nccl_pending *done) {
  absent();
}
void nccl_group_reduce_scatter(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem,
                               nccl_pending *done) {
  absent();
}
void nccl_group_alltoall(comm *c, const void *in, void *out, size_t n_per_rank, nccl_elem elem, nccl_pending *done) {
  absent();
}
void nccl_group_allgatherv(comm *c, const void *send, void *out, const int *counts, const int *displs, nccl_elem elem,
                           nccl_pending *done) {
  absent();
}
void nccl_group_reduce_scatterv(comm *c, const void *in, void *out, const int *counts, nccl_elem elem,
                                nccl_pending *done) {
  absent();
}
void nccl_group_sendrecv(comm *c, const void *send, size_t n_send, int to, void *recv, size_t n_recv, int from,
                         nccl_elem elem, nccl_pending *done) {
  absent();
}
void nccl_group_wait(comm *c, nccl_pending *done) {
  if (done->event) absent();
}

/* test_device_comm — every call of parallel/comm/device_comm on a real MPI job
 * (run by tests/device_comm_ops.sh on 1, 3 and 4 ranks), through two
 * backends: the CPU backend (the host-view path: comm.h on the buffers
 * themselves) and a "device" made of the CPU backend whose host_pointer is
 * NULL, which forces the staged path (host copies around comm.h) that
 * `--comm mpi` takes on a GPU. Its act_t is fp32, so staging is exact:
 * both paths must give the same results, bit for bit, and the same
 * counters (calls and bytes: the staged path counts what MPI moves, 4
 * bytes per element). Also: a staged request leaves the caller's buffer
 * alone until dcomm_wait, uneven blocks land where displs say and gaps
 * between them stay untouched, a ring exchange delivers the neighbour's
 * block, and an exchange with a count each way delivers the sender's. (NCCL's path needs GPUs: tests/cuda_training.sh.) */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "comm.h"
#include "device_comm.h"
#include "fail.h"
#include "runtime.h"
#include "testing.h"

static void *no_host_view(void *buffer) {
  (void)buffer;
  return NULL;
}

static float value(int rank, size_t i) { return (float)(rank + 1) * 0.5f + (float)i; }

/* A buffer of n values f(rank, i) (through the backend's upload). */
static act_t *filled(const backend *be, int rank, size_t n) {
  float *host = malloc((n ? n : 1) * sizeof *host);
  for (size_t i = 0; i < n; i++) host[i] = value(rank, i);
  act_t *x = be->alloc_act(n ? n : 1, "test");
  be->act_from_host(x, host, n);
  free(host);
  return x;
}

static float *read_back(const backend *be, const act_t *x, size_t n) {
  float *host = malloc((n ? n : 1) * sizeof *host);
  be->act_to_host(host, x, n);
  return host;
}

/* One run of the calls on group c: the results' host copies are appended
 * to out (*n_out floats) so the two backends' runs can be compared. */
typedef struct run_of_calls {
  comm *c;
  const backend *be;
  bool staged;
  int P, r;
  float *out;
  size_t *n_out;
} run_of_calls;

/* Floats of results one run keeps: room for every call's output at up to 16 ranks. */
#define KEPT_FLOATS 4096

static void keep(run_of_calls *x, const act_t *buffer, size_t count) {
  ENSURE(*x->n_out + count <= KEPT_FLOATS, "more results than KEPT_FLOATS");
  float *kept = read_back(x->be, buffer, count);
  memcpy(x->out + *x->n_out, kept, count * sizeof(float));
  *x->n_out += count;
  free(kept);
}

/* Whether got[i] == value(rank, first + i) for i < n. */
static int wrong_values(const float *got, size_t n, int rank, size_t first) {
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad += got[i] != value(rank, first + i);
  return bad;
}

/* All-reduce, blocking and non-blocking, act and f32. */
static void exercise_allreduce(run_of_calls *x) {
  comm *c = x->c;
  const backend *be = x->be;
  const int P = x->P, r = x->r;
  const size_t n = 7;
  act_t *a = filled(be, r, n);
  dcomm_allreduce_sum_act(c, be, a, n);
  float *got = read_back(be, a, n);
  int bad = 0;
  for (size_t i = 0; i < n; i++) bad += got[i] != (float)(P * (P + 1)) / 4.0f + (float)P * (float)i;
  CHECK(bad == 0, "%s: allreduce sum", be->name);
  free(got);
  keep(x, a, n);
  act_t *b = filled(be, r, n);
  dcomm_request req;
  dcomm_allreduce_sum_act_start(c, be, b, n, &req);
  if (x->staged) { /* the request owns the data until the wait: the buffer is untouched */
    got = read_back(be, b, n);
    CHECK(wrong_values(got, n, r, 0) == 0 || P == 1, "staged all-reduce wrote the caller's buffer before the wait");
    free(got);
  }
  dcomm_wait(&req);
  keep(x, b, n);
  /* f32 all-reduces (cross-entropy's max and sums) */
  f32_t *m = be->alloc_f32(2, "test");
  float mx[2] = {(float)r, -(float)r};
  be->f32_from_host(m, mx, 2);
  dcomm_allreduce_max_f32(c, be, m, 2);
  be->f32_to_host(mx, m, 2);
  CHECK(mx[0] == (float)(P - 1) && mx[1] == 0.0f, "%s: allreduce max f32", be->name);
  dcomm_allreduce_sum_f32(c, be, m, 2);
  be->f32_to_host(mx, m, 2);
  CHECK(mx[0] == (float)(P * (P - 1)), "%s: allreduce sum f32", be->name);
  be->free_buffer(a), be->free_buffer(b), be->free_buffer(m);
}

/* All-gather of equal blocks, act and f32; reduce-scatter and all-to-all of equal blocks. */
static void exercise_equal_blocks(run_of_calls *x) {
  comm *c = x->c;
  const backend *be = x->be;
  const int P = x->P, r = x->r;
  act_t *in = filled(be, r, 3), *all = be->alloc_act(3 * (size_t)P, "test");
  dcomm_allgather_act(c, be, in, all, 3);
  float *got = read_back(be, all, 3 * (size_t)P);
  int bad = 0;
  for (int q = 0; q < P; q++) bad += wrong_values(got + q * 3, 3, q, 0);
  CHECK(bad == 0, "%s: allgather act", be->name);
  free(got);
  keep(x, all, 3 * (size_t)P);
  f32_t *fin = be->alloc_f32(2, "test"), *fall = be->alloc_f32(2 * (size_t)P, "test");
  float two[2] = {value(r, 0), value(r, 1)}, *fgot = malloc(2 * (size_t)P * sizeof *fgot);
  be->f32_from_host(fin, two, 2);
  dcomm_allgather_f32(c, be, fin, fall, 2);
  be->f32_to_host(fgot, fall, 2 * (size_t)P);
  bad = 0;
  for (int q = 0; q < P; q++) bad += wrong_values(fgot + 2 * q, 2, q, 0);
  CHECK(bad == 0, "%s: allgather f32", be->name);
  free(fgot);
  /* reduce-scatter: rank r gets Σ_q value(q, r·2 + i) */
  act_t *rs_in = filled(be, r, 2 * (size_t)P), *rs_out = be->alloc_act(2, "test");
  dcomm_reduce_scatter_sum_act(c, be, rs_in, rs_out, 2);
  got = read_back(be, rs_out, 2);
  for (size_t i = 0; i < 2; i++) {
    float want = 0;
    for (int q = 0; q < P; q++) want += value(q, (size_t)r * 2 + i);
    CHECK(got[i] == want, "%s: reduce-scatter element %zu: %g, want %g", be->name, i, got[i], want);
  }
  free(got);
  keep(x, rs_out, 2);
  /* all-to-all: rank r's block q is rank q's in[r·2 ...] = value(q, r·2 + i) */
  act_t *a2a_out = be->alloc_act(2 * (size_t)P, "test");
  dcomm_alltoall_act(c, be, rs_in, a2a_out, 2);
  got = read_back(be, a2a_out, 2 * (size_t)P);
  bad = 0;
  for (int q = 0; q < P; q++) bad += wrong_values(got + 2 * q, 2, q, (size_t)r * 2);
  CHECK(bad == 0, "%s: alltoall act", be->name);
  free(got);
  keep(x, a2a_out, 2 * (size_t)P);
  void *buffers[] = {in, all, fin, fall, rs_in, rs_out, a2a_out};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) be->free_buffer(buffers[i]);
}

/* got holds every rank's block at displs[q] with a -1 after each. */
static int wrong_blocks(const float *got, int P, const int *counts, const int *displs) {
  int bad = 0;
  for (int q = 0; q < P; q++) bad += wrong_values(got + displs[q], (size_t)counts[q], q, 0) + (got[displs[q] + counts[q]] != -1.0f);
  return bad;
}

/* Uneven blocks: rank q holds q + 1 elements at displs[q] = Σ_{p<q} (p + 2),
 * leaving a one-element gap after each block, which must stay as it was;
 * all-gathers in place and not, and an uneven reduce-scatter. */
static void exercise_uneven_blocks(run_of_calls *x) {
  comm *c = x->c;
  const backend *be = x->be;
  const int P = x->P, r = x->r;
  int counts[16], displs[16], extent = 0, total = 0;
  for (int q = 0; q < P; q++) counts[q] = q + 1, displs[q] = extent, extent += q + 2, total += q + 1;
  act_t *v = be->alloc_act((size_t)extent, "test"), *gv = be->alloc_act((size_t)extent, "test");
  float *sentinel = malloc((size_t)extent * sizeof *sentinel);
  for (int i = 0; i < extent; i++) sentinel[i] = -1.0f;
  be->act_from_host(gv, sentinel, (size_t)extent);
  for (int i = 0; i < counts[r]; i++) sentinel[displs[r] + i] = value(r, (size_t)i);
  be->act_from_host(v, sentinel, (size_t)extent);
  dcomm_allgatherv_inplace_act(c, be, v, counts, displs);
  float *got = read_back(be, v, (size_t)extent);
  CHECK(wrong_blocks(got, P, counts, displs) == 0, "%s: in-place all-gather of uneven blocks", be->name);
  free(got);
  keep(x, v, (size_t)extent);
  act_t *send = filled(be, r, (size_t)counts[r]);
  dcomm_request req;
  dcomm_allgatherv_act_start(c, be, send, counts[r], gv, counts, displs, &req);
  dcomm_wait(&req);
  got = read_back(be, gv, (size_t)extent);
  CHECK(wrong_blocks(got, P, counts, displs) == 0, "%s: non-blocking all-gather of uneven blocks (gaps untouched)",
        be->name);
  free(got);
  free(sentinel);
  keep(x, gv, (size_t)extent);
  /* rank q gets counts[q] sums of the input's q-th block */
  act_t *rv_in = filled(be, r, (size_t)total), *rv_out = be->alloc_act((size_t)counts[r], "test");
  dcomm_reduce_scatter_sum_act_start(c, be, rv_in, rv_out, counts, &req);
  dcomm_wait(&req);
  got = read_back(be, rv_out, (size_t)counts[r]);
  int offset = 0;
  for (int q = 0; q < r; q++) offset += counts[q];
  int bad = 0;
  for (int i = 0; i < counts[r]; i++) {
    float want = 0;
    for (int q = 0; q < P; q++) want += value(q, (size_t)(offset + i));
    bad += got[i] != want;
  }
  CHECK(bad == 0, "%s: uneven reduce-scatter", be->name);
  free(got);
  keep(x, rv_out, (size_t)counts[r]);
  void *buffers[] = {v, send, gv, rv_in, rv_out};
  for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) be->free_buffer(buffers[i]);
}

/* A ring step (send to r+1, receive from r−1), then blocking and
 * non-blocking send/recv, act and f32. */
static void exercise_point_to_point(run_of_calls *x) {
  comm *c = x->c;
  const backend *be = x->be;
  const int P = x->P, r = x->r;
  const size_t n = 7;
  act_t *mine = filled(be, r, n), *theirs = be->alloc_act(n, "test");
  dcomm_request req;
  dcomm_exchange_act_start(c, be, mine, (r + 1) % P, theirs, (r - 1 + P) % P, n, 5, &req);
  dcomm_wait(&req);
  float *got = read_back(be, theirs, n);
  CHECK(wrong_values(got, n, (r - 1 + P) % P, 0) == 0, "%s: ring exchange", be->name);
  free(got);
  keep(x, theirs, n);
  if (P > 1) {
    f32_t *f = be->alloc_f32(2, "test");
    float two[2] = {(float)(P * (P - 1)), 0};
    be->f32_from_host(f, two, 2);
    if (r == 0) {
      dcomm_send_act(c, be, mine, n, 1, 6);
      dcomm_send_f32(c, be, f, 2, 1, 7);
    } else if (r == 1) {
      be->zero_f32(f, 2);
      dcomm_recv_act(c, be, theirs, n, 0, 6);
      dcomm_recv_f32(c, be, f, 2, 0, 7);
      got = read_back(be, theirs, n);
      be->f32_to_host(two, f, 2);
      CHECK(wrong_values(got, n, 0, 0) == 0 && two[0] == (float)(P * (P - 1)), "%s: blocking send/recv", be->name);
      free(got);
    }
    be->free_buffer(f);
    dcomm_request sent, received;
    if (r == 0) dcomm_send_act_start(c, be, mine, n, P - 1, 8, &sent);
    if (r == P - 1) dcomm_recv_act_start(c, be, theirs, n, 0, 8, &received);
    if (r == 0) dcomm_wait(&sent);
    if (r == P - 1) {
      dcomm_wait(&received);
      got = read_back(be, theirs, n);
      CHECK(wrong_values(got, n, 0, 0) == 0, "%s: non-blocking send/recv", be->name);
      free(got);
    }
    /* f32, non-blocking: two messages in flight to the last rank at once,
     * received in the opposite order of their sends (tags pair them) */
    f32_t *fa = be->alloc_f32(n, "test"), *fb = be->alloc_f32(n, "test");
    float host[7];
    for (size_t i = 0; i < n; i++) host[i] = value(r, i);
    be->f32_from_host(fa, host, n);
    be->f32_from_host(fb, host, n);
    dcomm_request two_sent[2], two_received[2];
    if (r == 0) {
      dcomm_send_f32_start(c, be, fa, n, P - 1, 9, &two_sent[0]);
      dcomm_send_f32_start(c, be, fb, n, P - 1, 10, &two_sent[1]);
    }
    if (r == P - 1) {
      be->zero_f32(fa, n), be->zero_f32(fb, n);
      dcomm_recv_f32_start(c, be, fb, n, 0, 10, &two_received[1]);
      dcomm_recv_f32_start(c, be, fa, n, 0, 9, &two_received[0]);
      dcomm_wait(&two_received[0]);
      dcomm_wait(&two_received[1]);
      for (int k = 0; k < 2; k++) {
        be->f32_to_host(host, k ? fb : fa, n);
        CHECK(wrong_values(host, n, 0, 0) == 0, "%s: non-blocking f32 send/recv, message %d", be->name, k);
      }
    }
    if (r == 0) dcomm_wait(&two_sent[0]), dcomm_wait(&two_sent[1]);
    be->free_buffer(fa), be->free_buffer(fb);
  }
  be->free_buffer(mine), be->free_buffer(theirs);
}

/* Exchanges with a count each way (TokenRing's results): rank r sends r+1
 * act values up to r+1 and r+2 f32 values down to r−1; what arrives has
 * the sender's count and values (both directions at once on one request
 * each, the receive sized by the sender's rank). */
static void exercise_sendrecv(run_of_calls *x) {
  comm *c = x->c;
  const backend *be = x->be;
  const int P = x->P, r = x->r, up = (r + 1) % P, down = (r - 1 + P) % P;
  const size_t n_up = (size_t)down + 1, n_down = (size_t)up + 2; /* what arrives from below and above */
  act_t *mine = filled(be, r, (size_t)r + 1), *theirs = be->alloc_act((size_t)P + 2, "test");
  f32_t *fm = be->alloc_f32((size_t)r + 2, "test"), *ft = be->alloc_f32((size_t)P + 2, "test");
  float host[18];
  ENSURE(P <= 16, "the test's host buffer holds 18 values");
  for (int i = 0; i < r + 2; i++) host[i] = value(r, (size_t)i);
  be->f32_from_host(fm, host, (size_t)r + 2);
  dcomm_request act_req, f32_req;
  dcomm_sendrecv_act_start(c, be, mine, (size_t)r + 1, up, theirs, n_up, down, 11, &act_req);
  dcomm_sendrecv_f32_start(c, be, fm, (size_t)r + 2, down, ft, n_down, up, 12, &f32_req);
  dcomm_wait(&act_req);
  dcomm_wait(&f32_req);
  float *got = read_back(be, theirs, n_up);
  CHECK(wrong_values(got, n_up, down, 0) == 0, "%s: act exchange of %zu values up, uneven counts", be->name, n_up);
  free(got);
  keep(x, theirs, n_up);
  be->f32_to_host(host, ft, n_down);
  CHECK(wrong_values(host, n_down, up, 0) == 0, "%s: f32 exchange of %zu values down, uneven counts", be->name,
        n_down);
  be->free_buffer(mine), be->free_buffer(theirs), be->free_buffer(fm), be->free_buffer(ft);
}

/* Every call once on group c. */
static void exercise(comm *c, const backend *be, float *out, size_t *n_out, bool staged) {
  run_of_calls x = {.c = c, .be = be, .staged = staged, .P = c->size, .r = c->rank, .out = out, .n_out = n_out};
  exercise_allreduce(&x);
  exercise_equal_blocks(&x);
  exercise_uneven_blocks(&x);
  exercise_point_to_point(&x);
  exercise_sendrecv(&x);
}

int main(int argc, char **argv) {
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  backend staged_device = *backend_cpu();
  staged_device.name = "staged";
  staged_device.host_pointer = no_host_view;
  comm host_group, staged_group;
  comm_create(&host_group, MPI_COMM_WORLD, "host");
  comm_create(&staged_group, MPI_COMM_WORLD, "staged");
  CHECK(host_group.size <= 16, "at most 16 ranks");
  float *host_out = calloc(KEPT_FLOATS, sizeof(float)), *staged_out = calloc(KEPT_FLOATS, sizeof(float));
  size_t n_host = 0, n_staged = 0;
  exercise(&host_group, backend_cpu(), host_out, &n_host, false);
  exercise(&staged_group, &staged_device, staged_out, &n_staged, true);
  CHECK(n_host == n_staged && memcmp(host_out, staged_out, n_host * sizeof(float)) == 0,
        "the staged path's results differ from the host view's");
  for (int k = 0; k < COMM_N_KINDS; k++)
    CHECK(host_group.counters.calls[k] == staged_group.counters.calls[k] &&
              host_group.counters.bytes[k] == staged_group.counters.bytes[k],
          "%s: host view %llu calls, %llu bytes; staged %llu calls, %llu bytes", comm_kind_name((comm_kind)k),
          (unsigned long long)host_group.counters.calls[k], (unsigned long long)host_group.counters.bytes[k],
          (unsigned long long)staged_group.counters.calls[k], (unsigned long long)staged_group.counters.bytes[k]);
  free(host_out);
  free(staged_out);
  const int P = host_group.size, r = host_group.rank;
  comm_free(&host_group);
  comm_free(&staged_group);
  /* one summary line, from rank 0, naming the world size it ran on (tests/comm_ops.sh checks it) */
  int worst = testing_n_failures ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  runtime_finalize();
  if (r == 0) {
    printf("test_device_comm on %d ranks: ", P);
    return test_summary("test_device_comm") | worst;
  }
  return worst;
}

/* test_comm — every call of the communication layer on a real MPI job
 * (run by tests/comm_ops.sh on 1, 3 and 4 ranks): results against values
 * each rank can compute alone, and the counters against the documented
 * byte rules (all-reduce: the buffer; all-gather: the gathered result;
 * reduce-scatter: the input; all-to-all: the input; broadcast: the buffer;
 * send: the message). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "grid.h"
#include "runtime.h"
#include "testing.h"

static float value(int rank, size_t i) { return (float)(rank + 1) * 0.5f + (float)i; }

/* Uneven blocks: rank q has q + 1 elements, in rank order. Returns the total. */
static int uneven_blocks(int P, int *counts, int *displs) {
  int total = 0;
  for (int q = 0; q < P; q++) counts[q] = q + 1, displs[q] = total, total += q + 1;
  return total;
}

/* All-reduce, blocking and non-blocking, sum and max, and its counters. */
static void test_allreduce(comm *c) {
  const int P = c->size, r = c->rank;
  const size_t n = 7;
  float buf[64];
  /* all-reduce, blocking and non-blocking: Σ_r value(r, i) */
  for (size_t i = 0; i < n; i++) buf[i] = value(r, i);
  comm_allreduce_sum_f32(c, buf, n);
  int bad = 0;
  for (size_t i = 0; i < n; i++) {
    float want = 0;
    for (int q = 0; q < P; q++) want += value(q, i);
    bad += buf[i] != want;
  }
  CHECK(bad == 0, "allreduce sum");
  for (size_t i = 0; i < n; i++) buf[i] = value(r, i);
  comm_request req;
  comm_allreduce_sum_f32_start(c, buf, n, &req);
  comm_wait(&req);
  bad = 0;
  for (size_t i = 0; i < n; i++) /* Σ_q ((q+1)/2 + i) = P(P+1)/4 + P·i, exact in float */
    bad += buf[i] != (float)(P * (P + 1)) / 4.0f + (float)P * (float)i;
  CHECK(bad == 0, "non-blocking allreduce");
  float mx = (float)r;
  comm_allreduce_max_f32(c, &mx, 1);
  CHECK(mx == (float)(P - 1), "allreduce max");
  CHECK(c->counters.calls[COMM_ALLREDUCE] == 3 &&
            c->counters.bytes[COMM_ALLREDUCE] == (2 * n + 1) * sizeof(float),
        "allreduce counters: %llu calls, %llu bytes", (unsigned long long)c->counters.calls[COMM_ALLREDUCE],
        (unsigned long long)c->counters.bytes[COMM_ALLREDUCE]);
}

/* All-to-all: block q of rank r's input is value(r·16 + q, i); rank r's
 * output block q must be rank q's block r. Counted: the input, twice. */
static void test_alltoall(comm *c) {
  const int P = c->size, r = c->rank;
  float in[64], out[64];
  for (int q = 0; q < P; q++)
    for (size_t i = 0; i < 3; i++) in[q * 3 + i] = value(r * 16 + q, i);
  comm_alltoall_f32(c, in, out, 3);
  comm_alltoall_f32(c, in, out, 3);
  int bad = 0;
  for (int q = 0; q < P; q++)
    for (size_t i = 0; i < 3; i++) bad += out[q * 3 + i] != value(q * 16 + r, i);
  CHECK(bad == 0, "alltoall");
  CHECK(c->counters.calls[COMM_ALLTOALL] == 2 && c->counters.bytes[COMM_ALLTOALL] == 2 * 3 * (size_t)P * sizeof(float),
        "alltoall counters: %llu calls, %llu bytes", (unsigned long long)c->counters.calls[COMM_ALLTOALL],
        (unsigned long long)c->counters.bytes[COMM_ALLTOALL]);
}

/* All-gather of equal blocks, and in place of uneven blocks. */
static void test_allgather(comm *c) {
  const int P = c->size, r = c->rank;
  float buf[64], out[256];
  int bad;
  /* all-gather of equal blocks, and in place of uneven blocks */
  for (size_t i = 0; i < 3; i++) buf[i] = value(r, i);
  comm_allgather_f32(c, buf, out, 3);
  bad = 0;
  for (int q = 0; q < P; q++)
    for (size_t i = 0; i < 3; i++) bad += out[q * 3 + i] != value(q, i);
  CHECK(bad == 0, "allgather");
  int counts[16], displs[16];
  const int total = uneven_blocks(P, counts, displs);
  for (int i = 0; i < counts[r]; i++) out[displs[r] + i] = value(r, (size_t)i);
  comm_allgatherv_inplace_f32(c, out, counts, displs);
  bad = 0;
  for (int q = 0; q < P; q++)
    for (int i = 0; i < counts[q]; i++) bad += out[displs[q] + i] != value(q, (size_t)i);
  CHECK(bad == 0, "allgatherv in place");
  CHECK(c->counters.bytes[COMM_ALLGATHER] == (3 * (size_t)P + (size_t)total) * sizeof(float),
        "allgather counters");
}

/* Reduce-scatter, equal blocks and uneven non-blocking ones. */
static void test_reduce_scatter(comm *c) {
  const int P = c->size, r = c->rank;
  float buf[64], out[256];
  int bad;
  /* reduce-scatter: rank r gets Σ_q value(q, r·2 + i) */
  for (int i = 0; i < 2 * P; i++) buf[i] = value(r, (size_t)i);
  float mine[2];
  comm_reduce_scatter_sum_f32(c, buf, mine, 2);
  bad = 0;
  for (int i = 0; i < 2; i++) {
    float want = 0;
    for (int q = 0; q < P; q++) want += value(q, (size_t)(r * 2 + i));
    bad += mine[i] != want;
  }
  CHECK(bad == 0, "reduce_scatter");
  /* uneven, non-blocking: rank q receives counts[q] = q + 1 elements */
  int counts[16], displs[16];
  const int total = uneven_blocks(P, counts, displs);
  for (int i = 0; i < total; i++) buf[i] = value(r, (size_t)i);
  comm_request req;
  comm_reduce_scatter_sum_f32_start(c, buf, out, counts, &req);
  comm_wait(&req);
  bad = 0;
  for (int i = 0; i < counts[r]; i++) {
    float want = 0;
    for (int q = 0; q < P; q++) want += value(q, (size_t)(displs[r] + i));
    bad += out[i] != want;
  }
  CHECK(bad == 0, "uneven reduce_scatter");
  CHECK(c->counters.bytes[COMM_REDUCE_SCATTER] == (2 * (size_t)P + (size_t)total) * sizeof(float),
        "reduce_scatter counters");
}

/* Broadcast from the last rank, and non-blocking from the first. */
static void test_broadcast(comm *c) {
  const int P = c->size, r = c->rank;
  /* broadcast, blocking and not */
  int64_t word = r == P - 1 ? 4242 : -1;
  comm_broadcast(c, &word, sizeof word, P - 1);
  CHECK(word == 4242, "broadcast");
  word = r == 0 ? 77 : -1;
  comm_request req;
  comm_broadcast_start(c, &word, sizeof word, 0, &req);
  comm_wait(&req);
  CHECK(word == 77, "non-blocking broadcast");
}

/* A ring of sends and a blocking pair; the sender counts the bytes. */
static void test_send_recv(comm *c) {
  const int P = c->size, r = c->rank;
  int bad;
  /* a ring of sends: every rank sends to r+1 and receives from r−1 */
  if (P > 1) {
    float msg[5], got[5];
    for (int i = 0; i < 5; i++) msg[i] = value(r, (size_t)i);
    comm_request send_req;
    comm_request req;
    comm_recv_f32_start(c, got, 5, (r + P - 1) % P, 9, &req);
    comm_send_f32_start(c, msg, 5, (r + 1) % P, 9, &send_req);
    comm_wait(&req);
    comm_wait(&send_req);
    bad = 0;
    for (int i = 0; i < 5; i++) bad += got[i] != value((r + P - 1) % P, (size_t)i);
    CHECK(bad == 0, "ring send/recv");
    if (r == 0) comm_send_f32(c, msg, 5, 1, 3);
    if (r == 1) {
      comm_recv_f32(c, got, 5, 0, 3);
      CHECK(got[4] == value(0, 4), "blocking send/recv");
    }
    CHECK(c->counters.bytes[COMM_SENDRECV] == (5 + (r == 0 ? 5 : 0)) * sizeof(float),
          "send counters count the sender's messages");
  }
}

/* Every call takes the next sequence number. */
static void test_sequence_numbers(comm *c) {
  const uint64_t calls_before = c->next_seq;
  comm_barrier(c);
  CHECK(c->next_seq == calls_before + 1, "sequence numbers advance per call");
}

/* The grid: coordinates round-trip and groups have the right sizes. */
static void test_grid(comm *c) {
  const int P = c->size, r = c->rank;
  /* the grid: coordinates round-trip and groups have the right sizes */
  if (P == 4) {
    grid_shape shape;
    char err[256];
    CHECK(grid_check_shape(4, 2, 1, 1, &shape, err, sizeof err) == 0 && shape.dp == 2, "4 = tp2 x dp2");
    CHECK(grid_check_shape(4, 3, 1, 1, &shape, err, sizeof err) == 1 && strstr(err, "3 or 6"),
          "4 ranks do not split by tp 3: %s", err);
    grid_check_shape(4, 2, 1, 1, &shape, err, sizeof err);
    grid g;
    grid_create(&g, shape);
    CHECK(g.tp.size == 2 && g.dp.size == 2 && g.dp_sp.size == 2 && g.pp.size == 1, "group sizes");
    CHECK(g.tp_rank == r % 2 && g.dp_rank == r / 2, "tp is the innermost coordinate");
    int tp_rank, sp_rank, dp_rank, pp_rank;
    grid_coordinates(&shape, r, &tp_rank, &sp_rank, &dp_rank, &pp_rank);
    CHECK(grid_world_rank(&shape, tp_rank, sp_rank, dp_rank, pp_rank) == r, "coordinates round-trip");
    grid_free(&g);
  }
}

int main(int argc, char **argv) {
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  comm c;
  comm_create(&c, MPI_COMM_WORLD, "test");
  test_allreduce(&c);
  test_allgather(&c);
  test_reduce_scatter(&c);
  test_alltoall(&c);
  test_broadcast(&c);
  test_send_recv(&c);
  test_sequence_numbers(&c);
  test_grid(&c);
  const int P = c.size, r = c.rank;
  comm_free(&c);
  int failures = testing_n_failures;
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  runtime_finalize();
  if (r == 0) printf("test_comm on %d ranks: ", P);
  return r == 0 ? test_summary("test_comm") : (failures ? 1 : 0);
}

/* test_comm_delay — the test-only link latency of parallel/comm
 * (TESSERA_TEST_COMM_DELAY_US, comm.h), on 2 ranks; run by
 * tests/comm_delay.sh with the delay set and unset.
 *
 * The delay the layer must have read: argv[1] in microseconds, else the
 * variable's own value, else none.
 * With a delay D each check is repeated REPEATS times:
 *   - a blocking exchange (send + receive, both waited) takes >= D: its own
 *     send completes no earlier than D after it started;
 *   - a ping-pong takes >= 2·D on the rank that starts it: the reply cannot
 *     leave before the ping arrived, a chain pays one latency per hop;
 *   - a blocking all-reduce takes >= D;
 *   - an exchange started, then D of work (a sleep: ranks may share one
 *     core), then waited: the wait adds less than D/4 (median) — the delay
 *     was counted from the start and the work hid it.
 * Without a delay the blocking exchange's median must stay below D_REF/2,
 * so the times above are the delay's doing, not this machine's.
 * The ">= D" checks are exact (the layer sleeps to an absolute deadline on
 * the clock measured here); only the hidden wait and the undelayed
 * exchange have tolerances, for a loaded 2-core machine. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "comm.h"
#include "runtime.h"
#include "testing.h"

#define REPEATS 5
#define D_REF_US 100000 /* the reference delay of the undelayed run's check */
#define N 256          /* floats per message: eager, one packet's worth */

static void sleep_seconds(double s) {
  struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, by_value);
  return v[n / 2];
}

static double minimum(const double *v, int n) {
  double m = v[0];
  for (int i = 1; i < n; i++) m = v[i] < m ? v[i] : m;
  return m;
}

/* Starts this rank's send to and receive from the other rank. */
static void exchange_start(comm *c, float *out, float *in, comm_request req[2]) {
  const int peer = 1 - c->rank;
  comm_recv_f32_start(c, in, N, peer, 7, &req[0]);
  comm_send_f32_start(c, out, N, peer, 7, &req[1]);
}

int main(int argc, char **argv) {
  runtime rt;
  runtime_init(&argc, &argv, &rt);
  comm c;
  comm_create(&c, MPI_COMM_WORLD, "test");
  const char *set = argc > 1 ? argv[1] : getenv("TESSERA_TEST_COMM_DELAY_US");
  const long want_us = set ? atol(set) : 0;
  CHECK(comm_test_delay_us() == want_us, "the layer read %ld us, the test set %ld", comm_test_delay_us(), want_us);
  CHECK(c.size == 2, "run on 2 ranks (got %d)", c.size);
  const double D = 1e-6 * (double)want_us;
  static float out[N], in[N];
  for (int i = 0; i < N; i++) out[i] = (float)(c.rank * N + i);
  double exchange[REPEATS] = {0}, ping[REPEATS] = {0}, reduce[REPEATS] = {0}, hidden[REPEATS] = {0};
  for (int k = 0; k < REPEATS && c.size == 2; k++) {
    comm_request req[2];
    comm_barrier(&c);
    double t = now_seconds();
    exchange_start(&c, out, in, req);
    comm_wait(&req[0]);
    comm_wait(&req[1]);
    exchange[k] = now_seconds() - t;
    CHECK(in[N - 1] == (float)((1 - c.rank) * N + N - 1), "exchanged data");

    comm_barrier(&c);
    t = now_seconds();
    if (c.rank == 0) comm_send_f32(&c, out, N, 1, 8), comm_recv_f32(&c, in, N, 1, 8);
    else comm_recv_f32(&c, in, N, 0, 8), comm_send_f32(&c, out, N, 0, 8);
    ping[k] = now_seconds() - t;

    comm_barrier(&c);
    float x = 1;
    t = now_seconds();
    comm_allreduce_sum_f32(&c, &x, 1);
    reduce[k] = now_seconds() - t;
    CHECK(x == 2, "all-reduce sum");

    comm_barrier(&c);
    exchange_start(&c, out, in, req);
    sleep_seconds(D); /* the work a real step does while its message travels */
    t = now_seconds();
    comm_wait(&req[0]);
    comm_wait(&req[1]);
    hidden[k] = now_seconds() - t;
  }
  if (c.size == 2 && D > 0) {
    CHECK(minimum(exchange, REPEATS) >= D, "blocking exchange: %.6f s < the delay %.6f s", minimum(exchange, REPEATS), D);
    if (c.rank == 0)
      CHECK(minimum(ping, REPEATS) >= 2 * D, "ping-pong: %.6f s < two delays %.6f s", minimum(ping, REPEATS), 2 * D);
    CHECK(minimum(reduce, REPEATS) >= D, "all-reduce: %.6f s < the delay %.6f s", minimum(reduce, REPEATS), D);
    CHECK(median(hidden, REPEATS) < D / 4, "the wait after D of work took %.6f s (median), want < D/4 = %.6f s",
          median(hidden, REPEATS), D / 4);
  } else if (c.size == 2) {
    CHECK(median(exchange, REPEATS) < 0.5e-6 * D_REF_US, "undelayed exchange took %.6f s (median)",
          median(exchange, REPEATS));
  }
  const int P = c.size, r = c.rank;
  comm_free(&c);
  int failures = testing_n_failures;
  MPI_Allreduce(MPI_IN_PLACE, &failures, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  runtime_finalize();
  if (r == 0)
    printf("test_comm_delay on %d ranks: delay %ld us; ms, min/median of %d: blocking exchange %.2f/%.2f, "
           "ping-pong %.2f/%.2f, all-reduce %.2f/%.2f, wait after the delay's worth of work %.2f/%.2f; ",
           P, want_us, REPEATS, 1e3 * minimum(exchange, REPEATS), 1e3 * median(exchange, REPEATS),
           1e3 * minimum(ping, REPEATS), 1e3 * median(ping, REPEATS), 1e3 * minimum(reduce, REPEATS),
           1e3 * median(reduce, REPEATS), 1e3 * minimum(hidden, REPEATS), 1e3 * median(hidden, REPEATS));
  return r == 0 ? test_summary("test_comm_delay") : (failures ? 1 : 0);
}

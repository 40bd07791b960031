/* comm — see comm.h. */
#include "comm.h"

#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

#include "mpi_check.h"
#include "roll_call.h"

static const char *kind_names[COMM_N_KINDS] = {"allreduce", "broadcast", "allgather",
                                               "reduce_scatter", "sendrecv", "barrier",
                                               "alltoall"};

const char *comm_kind_name(comm_kind kind) { return kind_names[kind]; }

/* ---------------------------------------------------------------- test-only delay */

#define DELAY_VARIABLE "TESSERA_TEST_COMM_DELAY_US"
#define DELAY_MAX_US 10000000L /* 10 s: more is a typo, not a network */

static long test_delay_us = -1; /* -1: not read yet */

long comm_test_delay_us(void) { return test_delay_us > 0 ? test_delay_us : 0; }

/* Reads the delay once, and checks over `parent` that every rank has the
 * same: ranks that disagree would not pair their shadow calls. */
static void read_test_delay(MPI_Comm parent) {
  if (test_delay_us >= 0) return;
  const char *text = getenv(DELAY_VARIABLE);
  long us = 0;
  bool valid = true;
  if (text && *text) {
    char *end = NULL;
    errno = 0;
    us = strtol(text, &end, 10);
    valid = errno == 0 && *end == '\0' && us >= 0 && us <= DELAY_MAX_US;
  }
  long mine[2] = {valid ? us : -1, valid ? -us : -1}, all[2];
  MPI_CHECK(MPI_Allreduce(mine, all, 2, MPI_LONG, MPI_MAX, parent));
  if (!valid || all[1] == -1)
    fail_collective(EXIT_USER_ERROR, "%s='%s': a whole number of microseconds from 0 to %ld (test-only link latency)",
                    DELAY_VARIABLE, text ? text : "", DELAY_MAX_US);
  if (all[0] != -all[1])
    fail_collective(EXIT_USER_ERROR, "%s differs between ranks (%ld and %ld): export it to every rank (mpirun -x %s)",
                    DELAY_VARIABLE, -all[1], all[0], DELAY_VARIABLE);
  test_delay_us = us;
}

/* The call's start time goes beside it on the group's shadow communicator:
 * a collective agrees on the latest start, a send sends its own, a receive
 * receives its sender's. */
static double *new_stamp(comm_request *req) {
  req->stamp = xmalloc(sizeof *req->stamp, "test delay stamp");
  *req->stamp = now_seconds();
  return req->stamp;
}

static void stamp_collective(comm *c, comm_request *req) {
  if (c->stamps == MPI_COMM_NULL) return;
  MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, new_stamp(req), 1, MPI_DOUBLE, MPI_MAX, c->stamps, &req->stamp_mpi));
}

static void stamp_send(comm *c, comm_request *req, int peer, int tag) {
  if (c->stamps == MPI_COMM_NULL) return;
  MPI_CHECK(MPI_Isend(new_stamp(req), 1, MPI_DOUBLE, peer, tag, c->stamps, &req->stamp_mpi));
}

static void stamp_recv(comm *c, comm_request *req, int peer, int tag) {
  if (c->stamps == MPI_COMM_NULL) return;
  MPI_CHECK(MPI_Irecv(new_stamp(req), 1, MPI_DOUBLE, peer, tag, c->stamps, &req->stamp_mpi));
}

/* After the call itself completed: sleeps until its stamp + the delay. So
 * a call costs max(delay, its transfer), not their sum: within one delay of
 * a real link's latency plus transfer. Asleep, not spinning: where ranks
 * outnumber cores the others compute meanwhile, as they would. */
static void pay_test_delay(comm_request *req) {
  if (!req->stamp) return;
  MPI_CHECK(MPI_Wait(&req->stamp_mpi, MPI_STATUS_IGNORE));
  const double due = *req->stamp + 1e-6 * (double)test_delay_us;
  free(req->stamp);
  req->stamp = NULL;
  struct timespec until = {.tv_sec = (time_t)due};
  until.tv_nsec = (long)((due - (double)until.tv_sec) * 1e9);
  if (until.tv_nsec > 999999999L) until.tv_nsec = 999999999L;
  int rc;
  while ((rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL)) == EINTR) {
  }
  ENSURE(rc == 0, "clock_nanosleep: %s", strerror(rc));
}

/* Reads TESSERA_FAULT ("skip|exit:RANK:GROUP:SEQ") for this rank and group. */
static void read_fault(comm *c) {
  const char *spec = getenv("TESSERA_FAULT");
  if (!spec) return;
  char kind[8] = "", group[16] = "";
  int rank = -1, world_rank = -1;
  unsigned long long seq = 0;
  if (sscanf(spec, "%7[a-z]:%d:%15[a-z_]:%llu", kind, &rank, group, &seq) != 4) return;
  MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank));
  if (rank != world_rank || strcmp(group, c->name) != 0) return;
  c->fault = strcmp(kind, "exit") == 0    ? COMM_FAULT_EXIT
             : strcmp(kind, "stall") == 0 ? COMM_FAULT_STALL
             : strcmp(kind, "skip") == 0  ? COMM_FAULT_SKIP
                                          : COMM_FAULT_NONE;
  c->fault_seq = seq;
}

static void finish_create(comm *c, const char *name) {
  MPI_CHECK(MPI_Comm_set_errhandler(c->mpi, MPI_ERRORS_RETURN));
  MPI_CHECK(MPI_Comm_rank(c->mpi, &c->rank));
  MPI_CHECK(MPI_Comm_size(c->mpi, &c->size));
  snprintf(c->name, sizeof c->name, "%s", name);
  read_fault(c);
  c->stamps = MPI_COMM_NULL;
  if (comm_test_delay_us() > 0) MPI_CHECK(MPI_Comm_dup(c->mpi, &c->stamps));
}

void comm_create(comm *c, MPI_Comm parent, const char *name) {
  memset(c, 0, sizeof *c);
  read_test_delay(parent);
  MPI_CHECK(MPI_Comm_dup(parent, &c->mpi));
  finish_create(c, name);
  c->roll_call = parent == MPI_COMM_WORLD; /* the watchdog's questions (roll_call.h) */
  if (c->roll_call) roll_call_init();
}

void comm_split(comm *c, const comm *parent, int color, int key, const char *name) {
  memset(c, 0, sizeof *c);
  read_test_delay(parent->mpi);
  MPI_CHECK(MPI_Comm_split(parent->mpi, color, key, &c->mpi));
  finish_create(c, name);
}

void comm_free(comm *c) {
  if (c->mpi != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&c->mpi));
  if (c->stamps != MPI_COMM_NULL) MPI_CHECK(MPI_Comm_free(&c->stamps));
  if (c->roll_call) roll_call_release(), c->roll_call = false;
}

void comm_set_watchdog(comm *c, double seconds, double phase_seconds) {
  c->watchdog_s = seconds;
  c->phase_watchdog_s = seconds <= 0 ? 0 : phase_seconds > 0 ? phase_seconds : 10 * seconds;
}

/* Numbers the call; returns false when fault injection says to skip it. */
static bool begin(comm *c, comm_kind kind, comm_request *req) {
  req->owner = c;
  req->kind = kind;
  req->seq = c->next_seq++;
  req->started = MPI_Wtime();
  req->mpi = MPI_REQUEST_NULL;
  req->stamp = NULL;
  req->stamp_mpi = MPI_REQUEST_NULL;
  if (c->fault != COMM_FAULT_NONE && req->seq == c->fault_seq) {
    fprintf(stderr, "tessera: rank %d: injected fault: %s %s #%llu of group %s\n", c->rank,
            c->fault == COMM_FAULT_EXIT ? "dying in" : c->fault == COMM_FAULT_STALL ? "stalling in" : "skipping",
            kind_names[kind], (unsigned long long)req->seq, c->name);
    fflush(stderr);
    if (c->fault == COMM_FAULT_EXIT) _exit(9);
    while (c->fault == COMM_FAULT_STALL) sleep(1); /* until the job is aborted */
    return false;
  }
  if (kind != COMM_SENDRECV) stamp_collective(c, req); /* messages: their start functions */
  return true;
}

/* The world ranks of a group, for the watchdog's report ("0,1,2,3"). */
void comm_describe_members(const comm *c, char *out, size_t out_bytes) {
  MPI_Group group, world;
  int n = c->size < 16 ? c->size : 16, ranks[16], world_ranks[16];
  for (int i = 0; i < n; i++) ranks[i] = i;
  MPI_CHECK(MPI_Comm_group(c->mpi, &group));
  MPI_CHECK(MPI_Comm_group(MPI_COMM_WORLD, &world));
  MPI_CHECK(MPI_Group_translate_ranks(group, n, ranks, world, world_ranks));
  MPI_CHECK(MPI_Group_free(&group));
  MPI_CHECK(MPI_Group_free(&world));
  size_t used = 0;
  out[0] = '\0';
  for (int i = 0; i < n && used + 12 < out_bytes; i++)
    used += (size_t)snprintf(out + used, out_bytes - used, "%s%d", i ? "," : "", world_ranks[i]);
  if (c->size > n && used + 4 < out_bytes) snprintf(out + used, out_bytes - used, ",...");
}

/* The watchdog's report: the collective, its group and their world ranks
 * (and the phase it waited for), then the job is aborted. */
static void report_hang(const comm_request *req, double bound, const char *phase) {
  const comm *c = req->owner;
  char members[200], waiting_for[96] = "", roll[600];
  comm_describe_members(c, members, sizeof members);
  if (phase) snprintf(waiting_for, sizeof waiting_for, " waiting for the %s phase of other ranks", phase);
  /* who is missing: the others' answers within a short wait (roll_call.h) */
  roll_call_ask(c->mpi, c->rank, kind_names[req->kind], req->seq, c->name, bound < 2 ? bound : 2, roll,
                sizeof roll);
  fail_local(EXIT_INTERNAL_ERROR,
             "watchdog: no progress for %.0f s in %s #%llu of group %s (%d ranks: world "
             "ranks %s)%s; %s%sa peer is missing from this collective or has died — the job is "
             "aborted",
             bound, kind_names[req->kind], (unsigned long long)req->seq, c->name, c->size, members,
             waiting_for, roll, roll[0] ? "; " : "");
}

/* Every so often while waiting: answers the watchdog questions of others. */
static void answer_roll_call(const comm_request *req, double *last) {
  const double now = MPI_Wtime();
  if (now - *last < 0.05) return;
  *last = now;
  roll_call_answer(kind_names[req->kind], req->seq, req->owner->name);
}

void comm_wait(comm_request *req) {
  comm *c = req->owner;
  /* skipped by fault injection, or already done (its delay, if any, still due) */
  if (req->mpi == MPI_REQUEST_NULL && !req->stamp) return;
  double start = MPI_Wtime();
  if (req->mpi == MPI_REQUEST_NULL) {
  } else if (c->watchdog_s <= 0) {
    MPI_CHECK(MPI_Wait(&req->mpi, MPI_STATUS_IGNORE));
  } else {
    int done = 0;
    double answered = start;
    while (!done) {
      MPI_CHECK(MPI_Test(&req->mpi, &done, MPI_STATUS_IGNORE));
      if (done) break;
      if (MPI_Wtime() - start > c->watchdog_s) report_hang(req, c->watchdog_s, NULL);
      answer_roll_call(req, &answered);
      sched_yield(); /* ranks may outnumber cores: let the peers run */
    }
  }
  pay_test_delay(req);
  c->counters.seconds[req->kind] += MPI_Wtime() - start;
}

void comm_poke(comm_request *reqs, int n_reqs) {
  for (int i = 0; i < n_reqs; i++) {
    int done = 0;
    if (reqs[i].mpi != MPI_REQUEST_NULL) MPI_CHECK(MPI_Test(&reqs[i].mpi, &done, MPI_STATUS_IGNORE));
  }
}

static void count(comm *c, comm_kind kind, size_t n_bytes) {
  c->counters.calls[kind]++;
  c->counters.bytes[kind] += n_bytes;
}

uint64_t comm_take_seq(comm *c) { return c->next_seq++; }
void comm_count(comm *c, comm_kind kind, size_t n_bytes) { count(c, kind, n_bytes); }
void comm_charge_seconds(comm *c, comm_kind kind, double seconds) { c->counters.seconds[kind] += seconds; }

/* MPI counts are int: a larger buffer is reduced in pieces. */
#define MAX_PIECE ((size_t)1 << 30)

static void allreduce(comm *c, void *buffer, size_t n_elems, size_t elem_bytes,
                      MPI_Datatype type, MPI_Op op) {
  for (size_t done = 0; done < n_elems; done += MAX_PIECE) {
    size_t piece = n_elems - done < MAX_PIECE ? n_elems - done : MAX_PIECE;
    comm_request req;
    if (begin(c, COMM_ALLREDUCE, &req))
      MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, (char *)buffer + done * elem_bytes, (int)piece, type,
                               op, c->mpi, &req.mpi));
    comm_wait(&req);
  }
  count(c, COMM_ALLREDUCE, n_elems * elem_bytes);
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
  comm_request req;
  if (begin(c, COMM_ALLGATHER, &req))
    MPI_CHECK(MPI_Iallgather(in, (int)n_per_rank, MPI_FLOAT, out, (int)n_per_rank, MPI_FLOAT, c->mpi,
                             &req.mpi));
  comm_wait(&req);
  count(c, COMM_ALLGATHER, n_per_rank * (size_t)c->size * sizeof(float));
}

void comm_allgatherv_inplace_f32(comm *c, float *buffer, const int *counts, const int *displs) {
  comm_request req;
  if (begin(c, COMM_ALLGATHER, &req))
    MPI_CHECK(MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buffer, counts, displs, MPI_FLOAT,
                              c->mpi, &req.mpi));
  comm_wait(&req);
  size_t total = 0;
  for (int r = 0; r < c->size; r++) total += (size_t)counts[r];
  count(c, COMM_ALLGATHER, total * sizeof(float));
}

void comm_reduce_scatter_sum_f32(comm *c, const float *in, float *out, size_t n_per_rank) {
  ENSURE(n_per_rank <= MAX_PIECE, "reduce-scatter of %zu elements per rank is too large", n_per_rank);
  comm_request req;
  if (begin(c, COMM_REDUCE_SCATTER, &req))
    MPI_CHECK(MPI_Ireduce_scatter_block(in, out, (int)n_per_rank, MPI_FLOAT, MPI_SUM, c->mpi,
                                        &req.mpi));
  comm_wait(&req);
  count(c, COMM_REDUCE_SCATTER, n_per_rank * (size_t)c->size * sizeof(float));
}

void comm_alltoall_f32(comm *c, const float *in, float *out, size_t n_per_rank) {
  ENSURE(n_per_rank <= MAX_PIECE, "all-to-all of %zu elements per rank is too large", n_per_rank);
  comm_request req;
  if (begin(c, COMM_ALLTOALL, &req))
    MPI_CHECK(MPI_Ialltoall(in, (int)n_per_rank, MPI_FLOAT, out, (int)n_per_rank, MPI_FLOAT, c->mpi, &req.mpi));
  comm_wait(&req);
  count(c, COMM_ALLTOALL, n_per_rank * (size_t)c->size * sizeof(float));
}

void comm_allgatherv_f32_start(comm *c, const float *send, int send_count, float *out,
                               const int *counts, const int *displs, comm_request *req) {
  size_t total = 0;
  for (int r = 0; r < c->size; r++) total += (size_t)counts[r];
  if (begin(c, COMM_ALLGATHER, req))
    MPI_CHECK(MPI_Iallgatherv(send, send_count, MPI_FLOAT, out, counts, displs, MPI_FLOAT, c->mpi,
                              &req->mpi));
  count(c, COMM_ALLGATHER, total * sizeof(float));
}

void comm_reduce_scatter_sum_f32_start(comm *c, const float *in, float *out, const int *counts,
                                       comm_request *req) {
  size_t total = 0;
  for (int r = 0; r < c->size; r++) total += (size_t)counts[r];
  if (begin(c, COMM_REDUCE_SCATTER, req))
    MPI_CHECK(MPI_Ireduce_scatter(in, out, counts, MPI_FLOAT, MPI_SUM, c->mpi, &req->mpi));
  count(c, COMM_REDUCE_SCATTER, total * sizeof(float));
}

void comm_allreduce_sum_f32_start(comm *c, float *buffer, size_t n_elems, comm_request *req) {
  ENSURE(n_elems <= MAX_PIECE, "non-blocking all-reduce of %zu elements: split into buckets",
         n_elems);
  if (begin(c, COMM_ALLREDUCE, req))
    MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buffer, (int)n_elems, MPI_FLOAT, MPI_SUM, c->mpi,
                             &req->mpi));
  count(c, COMM_ALLREDUCE, n_elems * sizeof(float));
}

void comm_broadcast(comm *c, void *buffer, size_t n_bytes, int root) {
  for (size_t done = 0; done < n_bytes; done += MAX_PIECE) {
    size_t piece = n_bytes - done < MAX_PIECE ? n_bytes - done : MAX_PIECE;
    comm_request req;
    if (begin(c, COMM_BROADCAST, &req))
      MPI_CHECK(MPI_Ibcast((char *)buffer + done, (int)piece, MPI_BYTE, root, c->mpi, &req.mpi));
    comm_wait(&req);
  }
  count(c, COMM_BROADCAST, n_bytes);
}

void comm_broadcast_start(comm *c, void *buffer, size_t n_bytes, int root, comm_request *req) {
  ENSURE(n_bytes <= MAX_PIECE, "non-blocking broadcast of %zu bytes is too large", n_bytes);
  if (begin(c, COMM_BROADCAST, req))
    MPI_CHECK(MPI_Ibcast(buffer, (int)n_bytes, MPI_BYTE, root, c->mpi, &req->mpi));
  count(c, COMM_BROADCAST, n_bytes);
}

void comm_send_f32_start(comm *c, const float *buffer, size_t n_elems, int peer, int tag,
                         comm_request *req) {
  ENSURE(n_elems <= MAX_PIECE, "message of %zu elements is too large", n_elems);
  if (begin(c, COMM_SENDRECV, req)) {
    MPI_CHECK(MPI_Isend(buffer, (int)n_elems, MPI_FLOAT, peer, tag, c->mpi, &req->mpi));
    stamp_send(c, req, peer, tag);
  }
  count(c, COMM_SENDRECV, n_elems * sizeof(float));
}

void comm_recv_f32_start(comm *c, float *buffer, size_t n_elems, int peer, int tag,
                         comm_request *req) {
  ENSURE(n_elems <= MAX_PIECE, "message of %zu elements is too large", n_elems);
  if (begin(c, COMM_SENDRECV, req)) {
    MPI_CHECK(MPI_Irecv(buffer, (int)n_elems, MPI_FLOAT, peer, tag, c->mpi, &req->mpi));
    stamp_recv(c, req, peer, tag);
  }
  c->counters.calls[COMM_SENDRECV]++;
}

void comm_send_f32(comm *c, const float *buffer, size_t n_elems, int peer, int tag) {
  comm_request req;
  comm_send_f32_start(c, buffer, n_elems, peer, tag, &req);
  comm_wait(&req);
}

void comm_recv_f32(comm *c, float *buffer, size_t n_elems, int peer, int tag) {
  comm_request req;
  comm_recv_f32_start(c, buffer, n_elems, peer, tag, &req);
  comm_wait(&req);
}

void comm_barrier(comm *c) {
  comm_request req;
  if (begin(c, COMM_BARRIER, &req)) MPI_CHECK(MPI_Ibarrier(c->mpi, &req.mpi));
  comm_wait(&req);
  count(c, COMM_BARRIER, 0);
}

/* A barrier (an all-reduce of one float) tested every half millisecond,
 * asleep in between; past `bound` seconds (0: never) a report. */
static void quiet_barrier(comm *c, double bound, const char *phase) {
  float token = 0;
  comm_request req;
  comm_allreduce_sum_f32_start(c, &token, 1, &req);
  const struct timespec pause = {0, 500 * 1000};
  const double start = now_seconds();
  double answered = MPI_Wtime();
  for (;;) {
    comm_poke(&req, 1); /* MPI_Test: the request becomes MPI_REQUEST_NULL once complete */
    if (req.mpi == MPI_REQUEST_NULL) break;
    if (bound > 0 && now_seconds() - start > bound) report_hang(&req, bound, phase);
    if (bound > 0) answer_roll_call(&req, &answered);
    nanosleep(&pause, NULL);
  }
  comm_wait(&req); /* done: only its test delay, if one is set */
}

void comm_quiet_barrier(comm *c) { quiet_barrier(c, c->watchdog_s, NULL); }

void comm_phase_wait(comm *c, const char *phase) { quiet_barrier(c, c->phase_watchdog_s, phase); }

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

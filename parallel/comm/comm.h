/* comm — the one communication layer (DESIGN.md principle 4).
 *
 * A `comm` wraps one process group (the grid's world, tp, sp, dp, pp or
 * dp×sp: grid.h) and is the only way the rest of tessera talks to other
 * ranks. Every call counts itself:
 * calls, payload bytes (the bytes of the buffer handed to the collective, per
 * rank — doc/design.md relates them to bytes on the wire) and seconds spent
 * waiting, per collective kind. These calls take host buffers and go
 * through MPI; parallel/comm/device_comm.h takes a backend's buffers (act_t,
 * f32_t) and uses these calls on their host view (CPU), on a host copy
 * (--comm mpi on a GPU) or NCCL (--comm nccl), counting into the same
 * counters.
 * Non-blocking calls return a request that comm_wait completes; time is
 * charged to the wait, which is where a rank actually stalls.
 * Counted bytes are the logical tensor a collective produces or consumes
 * (all-reduce: the buffer; all-gather: the gathered result; reduce-scatter:
 * the input), not wire bytes: doc/design.md relates the two.
 *
 * Hang diagnosis: every call on a group gets the next sequence number of
 * that group. Every collective is started non-blocking and completed by one
 * wait; with a watchdog set (comm_set_watchdog, `--watchdog SECONDS`) the
 * wait polls, and a rank stuck longer than that prints which collective,
 * group, sequence number and peers it waits on — and, from a roll call
 * (roll_call.h), which peers are missing and where the others wait — then
 * aborts the job (MPI_Abort) instead of hanging forever. Mismatched collectives — one rank
 * skipping a call the others make — show up exactly so.
 *
 * Slow phases: some work is done by some ranks alone while the others have
 * nothing to do — the first replica generates a sample, rank 0 writes a
 * checkpoint. The others wait for them in comm_phase_wait, a quiet barrier
 * named after the phase whose bound is the group's phase bound (by default
 * 10 × the watchdog; `--watchdog-phase`), not in the next collective under
 * the plain bound, where a legitimately slow sample would read as a hang.
 * Collectives inside the phase keep the plain bound, so a hang among the
 * working ranks is still reported as soon as before, and a phase that
 * outlasts its own bound is reported by name.
 *
 * Fault injection for tests (never set in production): the environment
 * variable TESSERA_FAULT="skip:RANK:GROUP:SEQ" makes world rank RANK return
 * at once from call SEQ of group GROUP without communicating (a mismatched
 * collective), "stall:..." makes it stop there forever (a hung rank), and
 * "exit:..." makes it die there (exit status 9), as a crashed node would.
 *
 * Link latency for tests and benchmarks (never a tuning knob): this
 * machine's kernel has no netem, so TESSERA_TEST_COMM_DELAY_US=D, read once
 * when the first group is created (the same on every rank), makes every MPI
 * call complete no earlier than D microseconds after its message or
 * collective started: a receive D after its sender started the message (the
 * sender's start time travels beside it on a shadow communicator, so ranks
 * must share one clock: one machine, or jobs/cluster's hosts), a send D
 * after it started, a collective D after its last rank started it. A
 * blocking call pays it inside; a started request in comm_wait, so work
 * between start and wait hides it as it hides a real link's latency
 * (doc/design.md, "A test-only link latency"). NCCL's calls are not delayed.
 */
#ifndef TESSERA_COMM_H
#define TESSERA_COMM_H

#include <mpi.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum comm_kind {
  COMM_ALLREDUCE,
  COMM_BROADCAST,
  COMM_ALLGATHER,
  COMM_REDUCE_SCATTER,
  COMM_SENDRECV,
  COMM_BARRIER,
  COMM_ALLTOALL,
  COMM_N_KINDS
} comm_kind;

typedef struct comm_counters {
  uint64_t calls[COMM_N_KINDS];
  uint64_t bytes[COMM_N_KINDS];
  double seconds[COMM_N_KINDS];
} comm_counters;

typedef enum comm_fault { COMM_FAULT_NONE, COMM_FAULT_SKIP, COMM_FAULT_STALL, COMM_FAULT_EXIT } comm_fault;

struct nccl_group;

typedef struct comm {
  MPI_Comm mpi;
  int rank, size;
  char name[16];
  comm_counters counters;
  uint64_t next_seq;   /* sequence number of the next call on this group */
  double watchdog_s;   /* 0: wait without a limit */
  double phase_watchdog_s; /* comm_phase_wait's bound; 0: wait without a limit */
  bool roll_call;      /* holds the roll-call communicator (a copy of MPI_COMM_WORLD) */
  comm_fault fault;    /* test-only fault injection (TESSERA_FAULT) */
  uint64_t fault_seq;
  /* The group's NCCL communicator (parallel/comm/nccl_comm.h), created by
   * grid_enable_nccl; NULL: device buffers of this group go through MPI,
   * staged in host memory (parallel/comm/device_comm.h). */
  struct nccl_group *nccl;
  /* TESSERA_TEST_COMM_DELAY_US: a duplicate of mpi carrying the calls'
   * start times; MPI_COMM_NULL when no delay is set */
  MPI_Comm stamps;
} comm;

typedef struct comm_request {
  MPI_Request mpi;
  comm *owner;
  comm_kind kind;
  uint64_t seq;
  double started;
  /* test-only delay: the start time sent, received or agreed (max over
   * the group) beside the call, and its request; NULL when not delayed */
  double *stamp;
  MPI_Request stamp_mpi;
} comm_request;

/* Sets the hang watchdog of this group (seconds; 0 turns it off) and its
 * bound for slow phases: phase_seconds, or 10 × seconds when that is 0. */
void comm_set_watchdog(comm *c, double seconds, double phase_seconds);

/* Takes a duplicate of `parent` so tessera's traffic never mixes with others'. */
void comm_create(comm *c, MPI_Comm parent, const char *name);
/* Splits parent by color (ranks with equal color form one group, ordered by key). */
void comm_split(comm *c, const comm *parent, int color, int key, const char *name);
void comm_free(comm *c);

void comm_allreduce_sum_f32(comm *c, float *buffer, size_t n_elems);
void comm_allreduce_sum_f64(comm *c, double *buffer, size_t n_elems);
void comm_allreduce_max_i64(comm *c, int64_t *buffer, size_t n_elems);
void comm_allreduce_max_f32(comm *c, float *buffer, size_t n_elems);
void comm_allreduce_sum_f32_start(comm *c, float *buffer, size_t n_elems, comm_request *req);
/* All-gather of equal blocks in rank order: out[r·n_per_rank ...] = rank r's in.
 * Counted bytes: the gathered size (size · n_per_rank · 4). */
void comm_allgather_f32(comm *c, const float *in, float *out, size_t n_per_rank);
/* In-place all-gather of uneven blocks: rank r contributes
 * buffer[displs[r] ... + counts[r]) and every rank ends with the whole
 * buffer. Counted bytes: the whole buffer. */
void comm_allgatherv_inplace_f32(comm *c, float *buffer, const int *counts, const int *displs);
/* Non-blocking all-gather of uneven blocks into out (rank r's send_count
 * elements land at displs[r]). counts and displs must stay valid until
 * comm_wait. Counted bytes: the gathered size. */
void comm_allgatherv_f32_start(comm *c, const float *send, int send_count, float *out,
                               const int *counts, const int *displs, comm_request *req);
/* Non-blocking reduce-scatter of uneven blocks: rank r receives into out the
 * sum over ranks of in[Σ_{q<r} counts[q] ...] (counts[r] elements). counts
 * must stay valid until comm_wait. Counted bytes: the input size. */
void comm_reduce_scatter_sum_f32_start(comm *c, const float *in, float *out, const int *counts,
                                       comm_request *req);
/* Reduce-scatter of equal blocks: rank r receives the sum over ranks of
 * in[r·n_per_rank ...]. Counted bytes: the input size (size · n_per_rank · 4). */
void comm_reduce_scatter_sum_f32(comm *c, const float *in, float *out, size_t n_per_rank);
/* All-to-all of equal blocks: rank r's out[q·n_per_rank ...] = rank q's
 * in[r·n_per_rank ...]. Counted bytes: the input size (size · n_per_rank · 4);
 * the rank's own block stays home, so (size−1)/size of it crosses the wire. */
void comm_alltoall_f32(comm *c, const float *in, float *out, size_t n_per_rank);
void comm_broadcast(comm *c, void *buffer, size_t n_bytes, int root);
void comm_broadcast_start(comm *c, void *buffer, size_t n_bytes, int root, comm_request *req);
/* Point to point (pipeline stages, rings): peers are ranks of the group; a
 * call with the same tag pairs a send with a receive. Counted bytes: the
 * message, on the sending side only. */
void comm_send_f32(comm *c, const float *buffer, size_t n_elems, int peer, int tag);
void comm_recv_f32(comm *c, float *buffer, size_t n_elems, int peer, int tag);
void comm_send_f32_start(comm *c, const float *buffer, size_t n_elems, int peer, int tag,
                         comm_request *req);
void comm_recv_f32_start(comm *c, float *buffer, size_t n_elems, int peer, int tag,
                         comm_request *req);
void comm_barrier(comm *c);
/* A barrier that sleeps while it waits (an all-reduce of one float, tested
 * every half millisecond). Ranks with nothing to do would otherwise wait in
 * MPI, which polls (Open MPI spins, at best yielding the core between
 * polls) and, where ranks outnumber cores, takes CPU time from the ranks
 * that work (doc/performance.md: 4 ranks on 2 cores writing a checkpoint).
 * With a watchdog set, after that long it hands the wait to comm_wait,
 * which reports a missing peer. */
void comm_quiet_barrier(comm *c);
/* Every rank of c calls it after a slow phase that only some of them work
 * in (`phase` names it: "sample", "checkpoint save"): a quiet barrier under
 * the group's phase bound. A rank that waits longer reports the barrier and
 * the phase and aborts the job, as the watchdog does. */
void comm_phase_wait(comm *c, const char *phase);
void comm_wait(comm_request *req);
/* Lets MPI progress outstanding requests (call between compute phases). */
void comm_poke(comm_request *reqs, int n_reqs);

const char *comm_kind_name(comm_kind kind);

/* The test-only delay (TESSERA_TEST_COMM_DELAY_US) in microseconds; 0: none. */
long comm_test_delay_us(void);

/* For the group's other transport (parallel/comm/nccl_comm): the next sequence
 * number, the counters (a call and its payload bytes; time waited), and the
 * group's world ranks for a watchdog report ("0,2,4,6"). */
uint64_t comm_take_seq(comm *c);
void comm_count(comm *c, comm_kind kind, size_t n_bytes);
void comm_charge_seconds(comm *c, comm_kind kind, double seconds);
void comm_describe_members(const comm *c, char *out, size_t out_bytes);
uint64_t comm_total_bytes(const comm *c);
double comm_total_seconds(const comm *c);

#endif

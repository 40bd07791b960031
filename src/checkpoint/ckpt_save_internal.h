/* ckpt_save_internal — what the saver (ckpt_save.c) and its two writers
 * (ckpt_write.c) share; not for the rest of tessera. */
#ifndef TESSERA_CKPT_SAVE_INTERNAL_H
#define TESSERA_CKPT_SAVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "checkpoint.h"
#include "fail.h"

/* Everything a writer needs, captured at the step boundary so that the
 * background thread reads nothing the training loop changes. */
typedef struct save_job {
  int64_t step, optimizer_step;
  char final_path[JOINED_PATH_BYTES], tmp_path[JOINED_PATH_BYTES];
  double start_time;
  int status; /* 0, or the exit status of a failure described in err */
  char err[2 * MESSAGE_BYTES]; /* what failed (a message of its own) and what is left */
  checkpoint_stats stats;
} save_job;

struct checkpoint_saver {
  ckpt_save_options options;
  ckpt_run_info info;
  grid *g;
  model *m;
  optimizer *opt;
  bool single_writer;  /* world rank 0 writes every region (serial HDF5 or async) */
  bool first_replica;  /* dp and sp rank 0: holds the tp shards that get written */
  registry whole;      /* every tensor of the model, as this rank's tp would shard it */
  int *owner;          /* per tensor of `whole`: the pipeline stage that writes it */
  float *state[OPT_N_STATES];  /* this rank's tp shard of its stage, gathered over its ZeRO group */
  float *shards[OPT_N_STATES]; /* single writer: every tp shard of every stage (state_gather.h) */
  float *scratch;      /* other first-replica tp ranks: receive buffer of the tp gather */
  size_t staging_bytes;
  save_job job;
  pthread_t thread;
  bool in_flight;      /* a background write was started and not yet joined */
  atomic_bool written; /* set by the background thread when it is done */
  bool unreported;     /* `report` holds a finished background save poll has not returned yet */
  checkpoint_stats report;
};

/* World rank 0 writes every region from s->shards; no MPI calls, so it can
 * run on the background thread. Fills job->status, err and stats. */
void ckpt_write_single(checkpoint_saver *s, save_job *job);
/* Parallel HDF5, collective over the world: the first replica's tp ranks
 * write their own shards. */
void ckpt_write_collective(checkpoint_saver *s, save_job *job);

#endif

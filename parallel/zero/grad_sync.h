/* grad_sync — bucketed, overlapped all-reduce of the flat gradient buffer.
 *
 * Data-parallel ranks each hold the gradient of their share of the global
 * batch; the sum over the dp group is the gradient of the whole batch (the
 * trainer scales losses by 1/global_tokens, so the sum is the mean).
 *
 * The buffer is cut into buckets of about `bucket_elems` counted from its END,
 * because the backward pass finishes the last blocks first: when the model
 * reports "everything at offset >= o is final", every bucket lying wholly at
 * or after o starts its non-blocking all-reduce while the backward continues
 * (the overlap DDP and Megatron use). grad_sync_finish() starts what is left
 * and waits for all. Only the last micro-batch of a step reports readiness;
 * earlier ones just accumulate locally. The buffer is the backend's
 * (act_t): parallel/comm/device_comm reduces it in place on the CPU, through a
 * host copy per bucket with --comm mpi on a GPU, or with NCCL on the dp×sp
 * group's stream with --comm nccl.
 */
#ifndef TESSERA_GRAD_SYNC_H
#define TESSERA_GRAD_SYNC_H

#include <stddef.h>

#include "backend.h"
#include "comm.h"
#include "device_comm.h"

typedef struct grad_sync {
  comm *group;
  const backend *be;
  act_t *grads; /* the flat gradient buffer */
  size_t n_elems;
  int n_buckets;
  size_t *bucket_start; /* bucket b covers [start[b], start[b+1]); b = 0 is the LAST range */
  dcomm_request *requests;
  int n_started;        /* buckets 0..n_started-1 are in flight */
} grad_sync;

void grad_sync_create(grad_sync *gs, comm *group, const backend *be, act_t *grads, size_t n_elems,
                      size_t bucket_elems);
void grad_sync_free(grad_sync *gs);
/* Every gradient at index >= offset is final: start the buckets that allows. */
void grad_sync_ready_from(grad_sync *gs, size_t offset);
/* Start the remaining buckets and wait for all of them. */
void grad_sync_finish(grad_sync *gs);

#endif

/* plan — the layouts a model can run in on N ranks, and for each one what
 * the runtime will hold and send, predicted before any cluster is booked.
 *
 * One implementation: validity is train's own checks (grid, pipeline plan,
 * config cross-checks, called here, never copied); memory comes from the
 * sizing functions the allocation sites themselves call, so a prediction
 * equals the run's memory report to the byte; communication bytes come from
 * the formulas the runtime's counters are checked against. Pure (no MPI, no
 * allocation of model buffers): a 175B model on 1536 ranks plans in a laptop.
 *
 * The interface shared with plan_time.{c,h} (the time model) is fixed in
 * PLAN-INTERFACE.md; this header is that interface, with six additions
 * marked "(added)".
 */
#ifndef TESSERA_PLAN_H
#define TESSERA_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct plan_layout {
  int world, dp, tp, pp, sp;
  int zero_stage;        /* 0..3 */
  int micro_batch;       /* sequences per micro-batch */
  int n_micro;           /* micro-batches per step per dp×sp replica (global batch = dp·micro_batch·n_micro) */
  int virtual_stages;    /* chunks per pipeline stage (1: plain) */
  int schedule;          /* config's pipeline-schedule choice (pp_schedule_choice) */
  int recompute;         /* config's recompute choice (recompute_choice) */
  int sp_kind;           /* config's sp_kind_choice */
  bool tp_seq_shard;
  int gpus_per_node;     /* ranks per node, for which links a group crosses (0: the machine profile's) */
  int offload;           /* (added) optimizer offload: offload_kind (none, host, nvme); nvme's folder is cfg's */
} plan_layout;

/* bytes per rank on the most loaded rank, by the kinds memory_tally reports;
 * total: the device's (what a memory budget is about); offloaded (added):
 * host RAM of the optimizer offload, not in total */
typedef struct plan_memory {
  uint64_t weights, grads, optimizer, activations, other, total, offloaded;
} plan_memory;

/* (added) PLAN_WORLD: every rank (the per-step check that no data file changed) */
typedef enum plan_group { PLAN_TP, PLAN_SP, PLAN_DP, PLAN_DP_SP, PLAN_PP, PLAN_WORLD, PLAN_GROUPS } plan_group;
typedef enum plan_op_kind {
  PLAN_ALLREDUCE,
  PLAN_ALLGATHER,
  PLAN_REDUCE_SCATTER,
  PLAN_ALLTOALL,
  PLAN_SENDRECV,
  PLAN_BROADCAST
} plan_op_kind;
/* When a collective can hide behind compute in the runtime as it really is */
typedef enum plan_overlap {
  PLAN_EXPOSED,
  PLAN_BEHIND_BACKWARD,
  PLAN_BEHIND_FORWARD,
  PLAN_BEHIND_ATTENTION
} plan_overlap;

/* One kind of communication in a step, on one rank: `count` operations of
 * `bytes` each (the bytes the runtime's counters count for one of them),
 * over a group of `group_size` ranks. */
typedef struct plan_comm_op {
  plan_group group;
  int group_size;
  plan_op_kind kind;
  uint64_t bytes;
  uint64_t count;
  plan_overlap overlap;
  const char *what; /* "ZeRO-3 weight gather", "tp all-reduce after attention", ... */
} plan_comm_op;

/* Compute of one rank in one step */
typedef struct plan_compute {
  double gemm_flops;      /* matrix products (forward + backward + recomputation) */
  double attention_flops; /* attention core (softmax or linear) */
  double other_bytes;     /* elementwise/norm traffic, bytes moved, for a bandwidth term */
  int pipeline_stages, micro_batches, virtual_stages, schedule; /* for the bubble */
} plan_compute;

/* 0 when the layout is valid for train (the SAME rules train applies,
 * called, never copied); otherwise EXIT_USER_ERROR and train's message in err. */
int plan_layout_check(const config *cfg, const plan_layout *l, char *err, size_t err_bytes);

plan_memory plan_predict_memory(const config *cfg, const plan_layout *l);
/* (added) The same for one pipeline stage (its rank 0 of tp, sp and dp×sp, which
 * holds the largest ZeRO range): what that rank's run reports. */
plan_memory plan_predict_memory_of_stage(const config *cfg, const plan_layout *l, int pp_rank);

/* The communication of world rank 0 (pipeline stage 0, rank 0 of every
 * group: where the runtime's metrics count): fills up to max_ops entries;
 * returns how many there are */
int plan_predict_comm(const config *cfg, const plan_layout *l, plan_comm_op *ops, int max_ops);
/* (added) The bytes of ops[0..n) on group g: what the runtime's counter of
 * that group adds in a step (metrics comm_bytes_<group>). */
uint64_t plan_group_bytes(const plan_comm_op *ops, int n, plan_group g);

plan_compute plan_predict_compute(const config *cfg, const plan_layout *l);

/* every valid layout of world ranks (calls plan_layout_check); caller frees *out.
 * global_batch 0: cfg->batch_size. Returns how many (0: none valid). */
int plan_enumerate(const config *cfg, int world, int gpus_per_node, int global_batch, plan_layout **out);

/* (added) Knobs held at cfg's value instead of enumerated (the settings a
 * user gives `plan` on its command line): large worlds have millions of
 * layouts, and fixing tp or the recompute mode cuts them to what matters. */
typedef struct plan_fixed {
  bool tp, pp, sp, zero, micro_batch, schedule, virtual_stages, recompute, sp_kind, tp_seq_shard;
  /* (added) the one knob enumerated only when asked (it trades step time
   * for device memory): true: none, host and nvme (cfg's folder, else
   * "DIR"); false: cfg's offload_optimizer held */
  bool enumerate_offload;
} plan_fixed;
int plan_enumerate_fixed(const config *cfg, int world, int gpus_per_node, int global_batch, const plan_fixed *fixed,
                         plan_layout **out);

/* (added) The config a run of layout l reads: cfg with the layout's keys set
 * (an nvme offload keeps cfg's folder, else names the placeholder "DIR"). */
void plan_layout_apply(config *cfg, const plan_layout *l);

#endif

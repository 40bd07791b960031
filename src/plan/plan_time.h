/* plan_time — how long a step of a layout takes on a machine, predicted
 * from the planner's FLOPs and bytes (plan.h) and a machine profile
 * (machine_profile.h); doc/design.md, "The time model".
 *
 *   compute       FLOPs per op at the profile's rates: GEMMs at the rate of
 *                 their shape (the smallest of M, N, K of each of the
 *                 block's products), the attention core at the attention
 *                 kernel's rate, elementwise traffic at the memory bandwidth
 *   communication each collective by α–β on the link its group crosses
 *                 (ranks to nodes by grid.h's order and gpus_per_node):
 *                 ring all-reduce 2(p−1)α + 2(p−1)/p·n/β (or a tree,
 *                 2⌈log2 p⌉α + 2n/β, when shorter: NCCL picks), all-gather,
 *                 reduce-scatter and all-to-all (p−1)α + (p−1)/p·n/β,
 *                 send/recv α + n/β, broadcast ⌈log2 p⌉α + n/β; the pp
 *                 group's messages go through MPI from host memory (grid.h),
 *                 so on a GPU each also pays a device-to-host and a
 *                 host-to-device copy (the profile's host_staging link)
 *   overlaps      what the runtime really hides: gradient buckets behind the
 *                 backward (the last bucket stays exposed), ZeRO-3 gathers
 *                 behind the passes (the first one exposed), sp ring hops
 *                 behind the attention core; the rest is exposed
 *   pipeline      the schedule's bubble: (p−1)/m of a stage's work for
 *                 GPipe and 1F1B, (p−1)/(v·m) interleaved
 *   oversubscribed CPU hosts (profile's cores_per_node): each of R ranks on
 *                 C < R cores computes at C/R of a core's rate
 */
#ifndef TESSERA_PLAN_TIME_H
#define TESSERA_PLAN_TIME_H

#include "config.h"
#include "machine_profile.h"
#include "plan.h"

typedef struct plan_time {
  double step_s, compute_s, exposed_comm_s, bubble_s, tokens_per_s, mfu, tflops_per_gpu;
  double comm_s;        /* all communication, hidden or not */
  double gemm_rate;     /* the GEMM rate the layout's shapes get (FLOP/s) */
} plan_time;

plan_time plan_predict_time(const config *cfg, const plan_layout *l, const machine_profile *m);

/* The same from the parts plan_predict_compute and plan_predict_comm give
 * (for tests that hand in their own). */
plan_time plan_time_from_parts(const config *cfg, const plan_layout *l, const machine_profile *m,
                               const plan_compute *c, const plan_comm_op *ops, int n_ops);

/* Seconds of one collective of `bytes` over `group_size` ranks on a link. */
double plan_collective_seconds(plan_op_kind kind, int group_size, double bytes, const profile_link *link);

/* The link a group of layout l crosses: inside a node or between nodes
 * (then with the bandwidth per rank of the node's shared NICs). */
profile_link plan_group_link(const plan_layout *l, plan_group group, int group_size, const machine_profile *m);

/* Measures this machine (collective over MPI_COMM_WORLD; ranks per host
 * from the hosts MPI reports) and writes a profile to out_path (a temporary
 * name renamed into place). 0, or an exit status with err. */
int plan_calibrate(const config *cfg, const char *out_path, char *err, size_t err_bytes);

#endif

/* machine_profile — what one machine computes and sends per second, read
 * from a JSON file (doc/design.md, "Machine profiles"): the shipped
 * profiles of DGX A100 and DGX H100 nodes (profiles/), or one that
 * `tessera plan --calibrate` measured here.
 *
 * Every rate in the file is either measured ({"value": V, "source": S}) or
 * a datasheet peak times the fraction of it assumed achievable
 * ({"peak": P, "fraction": f, "source": S}); the source is required, so a
 * profile always says where each number comes from.
 */
#ifndef TESSERA_MACHINE_PROFILE_H
#define TESSERA_MACHINE_PROFILE_H

#include <stddef.h>

#define PROFILE_MAX_GEMM_POINTS 16
#define PROFILE_NAME_BYTES 160

/* One link kind: time of a message of n bytes = alpha + n / bandwidth. */
typedef struct profile_link {
  double alpha_s;         /* latency per message (per ring step) */
  double bandwidth;       /* bytes/s one rank achieves on it, one direction */
} profile_link;

typedef struct machine_profile {
  char name[PROFILE_NAME_BYTES];
  char dtype[16];              /* the compute dtype the rates are for: "bf16", "fp32" */
  int gpus_per_node;           /* ranks (GPUs, or processes on a CPU host) per node */
  int cores_per_node;          /* CPU hosts: cores the ranks share (0: not a CPU profile) */
  double peak_flops;           /* dense peak of one device in dtype, for MFU */
  double memory_bytes;         /* device memory of one rank */
  /* GEMM rate by the smallest of M, N, K: sorted points, log-linear between them */
  int n_gemm;
  double gemm_min_dim[PROFILE_MAX_GEMM_POINTS], gemm_flops[PROFILE_MAX_GEMM_POINTS];
  double attention_flops;      /* softmax attention core (forward + backward) */
  double linear_attention_flops; /* chunkwise linear attention core */
  double elementwise_bandwidth;  /* bytes/s of norms, activations, residuals */
  profile_link intra_node;     /* NVLink / shared memory */
  profile_link inter_node;     /* per NIC */
  int nics_per_node;           /* NICs a node's ranks share between nodes */
  /* device <-> host copies of messages MPI carries from host memory (the pp
   * group's sends, grid.h); bandwidth 0: none (a CPU profile) */
  profile_link host_staging;
} machine_profile;

/* The profile in `path`, or NULL with one line in err naming the file and
 * what is wrong (not JSON, a missing or non-positive number, a rate
 * without its source, ...). */
machine_profile *machine_profile_load(const char *path, char *err, size_t err_bytes);
void machine_profile_free(machine_profile *p);

/* The GEMM rate (FLOP/s) of a product whose smallest dimension is min_dim. */
double machine_profile_gemm_rate(const machine_profile *p, double min_dim);

/* Bytes/s one rank gets between nodes when every rank of its node sends at
 * once (the NICs are shared): nics · NIC bandwidth / ranks per node. */
double machine_profile_inter_bandwidth_per_rank(const machine_profile *p);

/* Where a profile named by a bare name ("a100-80gb") is looked for: the
 * installed profiles folder; a name with a '/' or ending in .json is a path.
 * Writes the path into out. */
void machine_profile_resolve(const char *name, char *out, size_t out_bytes);

#endif

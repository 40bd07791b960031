/* zero_partition — the one cut of a flat buffer into per-rank ranges.
 *
 * ZeRO (Rajbhandari et al.) gives each rank of the dp×sp group a contiguous
 * range of the stage's flat parameter buffer: rank r of D holds
 * [displs[r], displs[r] + counts[r]), the ranges in rank order, the first
 * n_elems mod D of them one element longer than the rest. The optimizer
 * keeps its master weights and moments for its range, the gradient
 * reduce-scatter and the weight gathers follow the same ranges, and a
 * checkpoint load without ZeRO splits its reads between replicas the same
 * way. Counts are int because MPI's are: a range must stay under 2^31
 * elements.
 */
#ifndef TESSERA_ZERO_PARTITION_H
#define TESSERA_ZERO_PARTITION_H

#include <stdbool.h>
#include <stddef.h>

#include "comm.h"

typedef struct zero_partition {
  size_t n_elems;       /* the whole flat buffer */
  int n_ranks, rank;
  int *counts, *displs; /* per rank, in elements */
  size_t start, n_own;  /* this rank's range */
} zero_partition;

/* Whether ranges of n_elems over n_ranks fit MPI's int counts (a layout
 * rule: src/train/layout_rules.c refuses the layouts where they do not). */
bool zero_partition_fits(size_t n_elems, int n_ranks);

/* n_ranks = 1 gives one range, the whole buffer. */
void zero_partition_make(zero_partition *p, size_t n_elems, int n_ranks, int rank);
void zero_partition_free(zero_partition *p);

/* host (n_elems floats) holds this rank's range in place; fills in every
 * other rank's (collective over group, whose size is n_ranks; nothing to
 * do for one rank). */
void zero_partition_allgather_host(const zero_partition *p, comm *group, float *host);

#endif

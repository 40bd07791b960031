/* zero_partition — see zero_partition.h. */
#include "zero_partition.h"

#include <stdlib.h>
#include <string.h>

#include "fail.h"

bool zero_partition_fits(size_t n_elems, int n_ranks) {
  /* the largest range is one longer than the quotient when it does not divide */
  return n_elems / (size_t)n_ranks + 1 < (size_t)1 << 31;
}

void zero_partition_make(zero_partition *p, size_t n_elems, int n_ranks, int rank) {
  memset(p, 0, sizeof *p);
  ENSURE(n_ranks >= 1 && rank >= 0 && rank < n_ranks, "rank %d of %d ranges", rank, n_ranks);
  ENSURE(zero_partition_fits(n_elems, n_ranks), "a range of %zu elements is too large for MPI's counts",
         n_elems / (size_t)n_ranks);
  p->n_elems = n_elems;
  p->n_ranks = n_ranks;
  p->rank = rank;
  p->counts = xmalloc((size_t)n_ranks * sizeof *p->counts, "ZeRO ranges");
  p->displs = xmalloc((size_t)n_ranks * sizeof *p->displs, "ZeRO ranges");
  for (int r = 0, displ = 0; r < n_ranks; r++) { /* the first n mod D ranges are one longer */
    p->counts[r] = (int)(n_elems / (size_t)n_ranks + ((size_t)r < n_elems % (size_t)n_ranks));
    p->displs[r] = displ;
    displ += p->counts[r];
  }
  p->start = (size_t)p->displs[rank];
  p->n_own = (size_t)p->counts[rank];
}

void zero_partition_free(zero_partition *p) {
  free(p->counts);
  free(p->displs);
  memset(p, 0, sizeof *p);
}

void zero_partition_allgather_host(const zero_partition *p, comm *group, float *host) {
  if (p->n_ranks > 1) comm_allgatherv_inplace_f32(group, host, p->counts, p->displs);
}

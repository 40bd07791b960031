/* prep_parallel — the MPI side of `tessera prep`: the ranks agree on
 * errors, write their token bytes in rank order into one file (MPI-IO), and
 * rank 0 gathers the documents' lengths for the index. Collective over
 * MPI_COMM_WORLD (one rank without mpirun). */
#ifndef TESSERA_PREP_PARALLEL_H
#define TESSERA_PREP_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

/* Every rank's status (0 or an exit status) combined: the first failing
 * rank's status, and its message copied into err on every rank; 0 when none
 * failed. */
int prep_agree(int status, char *err, size_t err_bytes);

/* Writes each rank's n_bytes of data at the sum of the lower ranks' n_bytes
 * into path (created, truncated to the total) and flushes it to disk.
 * *total: every rank's bytes together. Returns this rank's status (0 or
 * EXIT_IO_ERROR with err): pass it to prep_agree. */
int prep_write_in_rank_order(const char *path, const void *data, uint64_t n_bytes, uint64_t *total, char *err,
                             size_t err_bytes);

/* Every rank's document lengths, in rank order, on rank 0 (malloc'd; NULL on
 * the other ranks); *n_total (every rank) is their number. */
int32_t *prep_gather_lengths(const int32_t *lengths, uint64_t n, uint64_t *n_total);

/* Rank 0's process id, on every rank: names the job's temporary files. */
long prep_shared_tag(void);

/* Waits for every rank without polling MPI in a busy loop: ranks that
 * finish tokenizing early leave the cores to those still at it (several
 * ranks per core, as in tests). */
void prep_quiet_barrier(void);

/* Sums over the ranks. */
uint64_t prep_sum(uint64_t value);

#endif

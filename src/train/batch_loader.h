/* batch_loader — which tokens each rank trains on at each step.
 *
 * DESIGN.md principle 2: the global batch of step s (counted from 1) is the
 * global samples [(s−1)·G, s·G) for a global batch of G sequences, each mapped
 * to a dataset window by data_order (a pure function of seed and index). Data-
 * parallel rank r of dp takes the contiguous slice [r·G/dp, (r+1)·G/dp) of
 * it, cut into micro-batches of M sequences. Whatever dp is, the union over
 * ranks is the same batch, so the mean gradient is the same.
 *
 * Validation uses the first S held-out windows in order (no shuffling,
 * wrapping if the split is smaller); dp rank r evaluates the contiguous slice
 * [r·S/dp, (r+1)·S/dp), so the validation set does not depend on dp.
 */
#ifndef TESSERA_BATCH_LOADER_H
#define TESSERA_BATCH_LOADER_H

#include <stdint.h>

#include "token_dataset.h"

typedef struct data_split {
  const token_dataset *ds;
  uint64_t first_window, n_windows;
} data_split;

typedef struct batch_loader {
  data_split train, val;
  int seq_len, global_batch, micro_batch, dp_rank, dp_size;
  uint64_t seed;
} batch_loader;

/* Fills inputs and targets (micro_batch × seq_len each) for micro-batch
 * `micro_index` of this rank at `step`. Returns the worst token id read
 * (token_id_worse: a negative one, else the largest) and, through max_sample,
 * the global sample index where it was read. */
int32_t batch_load_train(const batch_loader *bl, int64_t step, int micro_index, int32_t *inputs,
                         int32_t *targets, int64_t *max_sample);
/* Fills n_rows validation sequences starting at validation sequence `first`. */
int32_t batch_load_val(const batch_loader *bl, int64_t first, int n_rows, int32_t *inputs,
                       int32_t *targets, int64_t *max_sample);

#endif

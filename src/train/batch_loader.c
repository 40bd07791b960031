/* batch_loader — see batch_loader.h. */
#include "batch_loader.h"

#include <stdlib.h>

#include "data_order.h"
#include "fail.h"

static int32_t load_rows(const batch_loader *bl, const data_split *split, const uint64_t *windows,
                         int n_rows, int32_t *inputs, int32_t *targets, int64_t *sample_ids,
                         int64_t *max_sample) {
  const int T = bl->seq_len;
  int32_t window_tokens[T + 1];
  int32_t max_id = -1;
  for (int row = 0; row < n_rows; row++) {
    int32_t row_max = dataset_read_window(split->ds, windows[row], T, window_tokens);
    if (row == 0 || token_id_worse(row_max, max_id)) {
      max_id = row_max;
      *max_sample = sample_ids[row];
    }
    for (int t = 0; t < T; t++) {
      inputs[row * T + t] = window_tokens[t];
      targets[row * T + t] = window_tokens[t + 1];
    }
  }
  return max_id;
}

int32_t batch_load_train(const batch_loader *bl, int64_t step, int micro_index, int32_t *inputs,
                         int32_t *targets, int64_t *max_sample) {
  const int M = bl->micro_batch;
  const int64_t local_batch = bl->global_batch / bl->dp_size;
  const int64_t first = (step - 1) * bl->global_batch + bl->dp_rank * local_batch +
                        (int64_t)micro_index * M;
  uint64_t windows[M];
  int64_t samples[M];
  for (int row = 0; row < M; row++) {
    samples[row] = first + row;
    windows[row] = data_order_window(bl->seed, (uint64_t)samples[row], bl->train.first_window,
                                     bl->train.n_windows);
  }
  return load_rows(bl, &bl->train, windows, M, inputs, targets, samples, max_sample);
}

int32_t batch_load_val(const batch_loader *bl, int64_t first, int n_rows, int32_t *inputs,
                       int32_t *targets, int64_t *max_sample) {
  uint64_t windows[n_rows];
  int64_t samples[n_rows];
  for (int row = 0; row < n_rows; row++) {
    samples[row] = first + row;
    windows[row] = bl->val.first_window + (uint64_t)samples[row] % bl->val.n_windows;
  }
  return load_rows(bl, &bl->val, windows, n_rows, inputs, targets, samples, max_sample);
}

/* fuzz_dataset — the token dataset reader (io/token_dataset): a Megatron-LM
 * PREFIX.idx + PREFIX.bin pair or an llm.c token file, then every window the
 * trainer could read from it.
 *
 * Input: byte 0 picks the format (even: Megatron, odd: llm.c), byte 1 the
 * window length − 1; Megatron: a 4-byte length L, then L bytes of .idx and
 * the rest as .bin; llm.c: the rest is the file. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "fuzz.h"
#include "token_dataset.h"

/* windows read per input: the reader's checks are what is fuzzed, not the copy */
#define MAX_WINDOWS 64

static void read_windows(const token_dataset *ds, int seq_len) {
  const uint64_t n = dataset_n_windows(ds, seq_len);
  FUZZ_ASSERT(n == 0 || n * (uint64_t)seq_len + 1 <= ds->n_tokens, "%llu windows of %d do not fit %llu tokens",
              (unsigned long long)n, seq_len, (unsigned long long)ds->n_tokens);
  int32_t *window = malloc(((size_t)seq_len + 1) * sizeof *window);
  FUZZ_ASSERT(window, "out of memory");
  for (uint64_t w = 0; w < n; w += n > MAX_WINDOWS ? n / MAX_WINDOWS : 1) {
    const int32_t worst = dataset_read_window(ds, w, seq_len, window);
    for (int i = 0; i <= seq_len; i++)
      FUZZ_ASSERT(!token_id_worse(window[i], worst), "window %llu: id %d is worse than the reported %d",
                  (unsigned long long)w, window[i], worst);
  }
  if (n > 0) dataset_read_window(ds, n - 1, seq_len, window); /* the last one touches the end */
  free(window);
  volatile int64_t sum = dataset_token(ds, 0) + dataset_token(ds, ds->n_tokens - 1); /* both ends */
  (void)sum;
}

int fuzz_dataset(const uint8_t *data, size_t size) {
  fuzz_input in = {data, size, 0};
  const int llmc = fuzz_u8(&in) & 1;
  const int seq_len = fuzz_u8(&in) + 1;
  char path[512], prefix[512], err[MESSAGE_BYTES] = "";
  size_t rest_bytes;
  if (llmc) {
    const uint8_t *rest = fuzz_rest(&in, &rest_bytes);
    fuzz_write_file("tokens.bin", rest, rest_bytes, path, sizeof path);
    snprintf(prefix, sizeof prefix, "%s", path);
  } else {
    size_t idx_bytes = fuzz_u32(&in);
    const uint8_t *rest = fuzz_rest(&in, &rest_bytes);
    if (idx_bytes > rest_bytes) idx_bytes = rest_bytes;
    fuzz_write_file("data.idx", rest, idx_bytes, path, sizeof path);
    fuzz_write_file("data.bin", rest + idx_bytes, rest_bytes - idx_bytes, path, sizeof path);
    snprintf(prefix, sizeof prefix, "%s/data", fuzz_scratch_dir());
  }
  token_dataset ds;
  if (dataset_open(&ds, prefix, err, sizeof err) == 0) {
    FUZZ_ASSERT(ds.n_tokens > 0, "an open dataset with no tokens");
    FUZZ_ASSERT(dataset_check_unchanged(&ds, err, sizeof err) == 0, "unchanged file reported: %s", err);
    read_windows(&ds, seq_len);
    dataset_close(&ds);
  } else {
    fuzz_refused(err);
  }
  /* the next input must not find this one's files */
  unlink(path);
  if (!llmc) {
    snprintf(path, sizeof path, "%s/data.idx", fuzz_scratch_dir());
    unlink(path);
  }
  return 0;
}

FUZZ_ENTRY(fuzz_dataset)

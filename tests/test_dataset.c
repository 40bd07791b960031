/* test_dataset — the data layer: tokenizer, our Megatron writer, reading
 * files written by independent writers (plain fwrite code below that follows
 * the published layouts, not our writer), the data order permutation, and a
 * clear error for every kind of damaged file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data_order.h"
#include "fail.h"
#include "indexed_writer.h"
#include "testing.h"
#include "token_dataset.h"
#include "tokenizer.h"

static char dir[] = "/tmp/tessera-dataset-XXXXXX";

static const char *path_of(const char *name) {
  static char paths[8][512];
  static int next;
  char *p = paths[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

static void test_tokenizer(void) {
  char text[256];
  int32_t ids[256];
  tokenizer *t = tokenizer_bytes();
  for (int i = 0; i < 256; i++) text[i] = (char)i;
  CHECK(tokenizer_encode(t, text, 256, ids) == 256, "one id per byte");
  int ok = 1;
  char scratch[32];
  const char *bytes;
  for (int i = 0; i < 256; i++)
    ok &= ids[i] == i && tokenizer_token_bytes(t, ids[i], scratch, &bytes) == 1 && bytes[0] == (char)i;
  CHECK(ok, "all 256 bytes round-trip");
  size_t n = tokenizer_token_bytes(t, TOKENIZER_BYTES_EOT, scratch, &bytes);
  CHECK(n == 13 && memcmp(bytes, "<|endoftext|>", 13) == 0, "end-of-text decodes to its name");
  CHECK(tokenizer_vocab_size(t) == 257 && tokenizer_eot(t) == 256, "257 ids, end-of-text 256");
  tokenizer_free(t);
}

/* Independent Megatron writer: header, int32 lengths, int64 byte pointers,
 * int64 document index [0..n], straight from the format description. */
static void write_megatron_independently(const char *prefix, const int32_t *tokens,
                                         const int *doc_lengths, int n_docs, int use_int32) {
  char path[600];
  snprintf(path, sizeof path, "%s.bin", prefix);
  FILE *bin = fopen(path, "wb");
  size_t total = 0;
  for (int d = 0; d < n_docs; d++) total += (size_t)doc_lengths[d];
  for (size_t i = 0; i < total; i++) {
    if (use_int32) fwrite(&tokens[i], 4, 1, bin);
    else {
      uint16_t t = (uint16_t)tokens[i];
      fwrite(&t, 2, 1, bin);
    }
  }
  fclose(bin);
  snprintf(path, sizeof path, "%s.idx", prefix);
  FILE *idx = fopen(path, "wb");
  fwrite("MMIDIDX\0\0", 1, 9, idx);
  uint64_t version = 1, n = (uint64_t)n_docs, n_entries = n + 1;
  uint8_t code = use_int32 ? 4 : 8;
  fwrite(&version, 8, 1, idx);
  fwrite(&code, 1, 1, idx);
  fwrite(&n, 8, 1, idx);
  fwrite(&n_entries, 8, 1, idx);
  for (int d = 0; d < n_docs; d++) fwrite(&doc_lengths[d], 4, 1, idx);
  int64_t pointer = 0;
  for (int d = 0; d < n_docs; d++) {
    fwrite(&pointer, 8, 1, idx);
    pointer += doc_lengths[d] * (use_int32 ? 4 : 2);
  }
  for (int64_t d = 0; d <= n_docs; d++) fwrite(&d, 8, 1, idx);
  fclose(idx);
}

/* Independent llm.c writer: 256 int32 header (magic, version, count), uint16 tokens. */
static void write_llmc_independently(const char *path, const uint16_t *tokens, int n, int magic) {
  int32_t header[256] = {0};
  header[0] = magic;
  header[1] = 1;
  header[2] = n;
  FILE *f = fopen(path, "wb");
  fwrite(header, 4, 256, f);
  fwrite(tokens, 2, (size_t)n, f);
  fclose(f);
}

static void test_independent_writers(void) {
  int32_t tokens[40];
  for (int i = 0; i < 40; i++) tokens[i] = (i * 977 + 13) % 50000; /* beyond 8 bits */
  const int lengths[3] = {10, 25, 5};
  for (int use_int32 = 0; use_int32 < 2; use_int32++) {
    const char *prefix = path_of(use_int32 ? "meg32" : "meg16");
    write_megatron_independently(prefix, tokens, lengths, 3, use_int32);
    token_dataset ds;
    char err[MESSAGE_BYTES];
    int status = dataset_open(&ds, prefix, err, sizeof err);
    CHECK(status == 0, "independent Megatron file (int32=%d) opens: %s", use_int32, err);
    if (status) continue;
    CHECK(ds.format == TOKEN_FORMAT_MEGATRON && ds.n_tokens == 40 && ds.n_documents == 3,
          "Megatron header read: %llu tokens %llu docs", (unsigned long long)ds.n_tokens,
          (unsigned long long)ds.n_documents);
    int same = 1;
    for (int i = 0; i < 40; i++) same &= dataset_token(&ds, (uint64_t)i) == tokens[i];
    CHECK(same, "Megatron tokens read back exactly (int32=%d)", use_int32);
    /* windows of T+1 = 8 tokens every 7 */
    int32_t window[8];
    CHECK(dataset_n_windows(&ds, 7) == 5, "window count (40-1)/7 = 5");
    int32_t max_id = dataset_read_window(&ds, 2, 7, window);
    int32_t want_max = -1;
    for (int i = 0; i < 8; i++) {
      same &= window[i] == tokens[14 + i];
      if (tokens[14 + i] > want_max) want_max = tokens[14 + i];
    }
    CHECK(same && max_id == want_max, "window 2 holds tokens 14..21 and its max id");
    dataset_close(&ds);
  }
  uint16_t small[30];
  for (int i = 0; i < 30; i++) small[i] = (uint16_t)(i * 2111 % 65535);
  write_llmc_independently(path_of("shard.bin"), small, 30, 20240520);
  token_dataset ds;
  char err[MESSAGE_BYTES];
  int status = dataset_open(&ds, path_of("shard.bin"), err, sizeof err);
  CHECK(status == 0, "independent llm.c file opens: %s", err);
  if (status == 0) {
    int same = ds.format == TOKEN_FORMAT_LLMC && ds.n_tokens == 30;
    for (int i = 0; i < 30; i++) same &= dataset_token(&ds, (uint64_t)i) == small[i];
    CHECK(same, "llm.c tokens read back exactly");
    dataset_close(&ds);
  }
}

/* The token bytes as prep's ranks write them, under the temporary name. */
static void write_raw_tokens(const char *path, const int32_t *ids, int n, token_dtype dtype) {
  FILE *f = fopen(path, "wb");
  for (int i = 0; i < n; i++) {
    const uint16_t narrow = (uint16_t)ids[i];
    if (dtype == TOKEN_DTYPE_U16) fwrite(&narrow, 2, 1, f);
    else fwrite(&ids[i], 4, 1, f);
  }
  fclose(f);
}

/* The writer's index and publication: the dataset reads back exactly, no
 * temporary file stays, and a dataset published without a sidecar removes
 * an old one (an old sidecar must not describe new data). */
static void test_our_writer(void) {
  for (int use_int32 = 0; use_int32 < 2; use_int32++) {
    const char *prefix = path_of("ours");
    const token_dtype dtype = use_int32 ? TOKEN_DTYPE_I32 : TOKEN_DTYPE_U16;
    char err[MESSAGE_BYTES], sidecar[600];
    snprintf(sidecar, sizeof sidecar, "%s.tokenizer.json", prefix);
    FILE *old = fopen(sidecar, "w"); /* left by an earlier dataset of this prefix */
    fputs("{}", old);
    fclose(old);
    indexed_temp_paths tmp;
    indexed_temp_paths_of(prefix, 4242, &tmp);
    int32_t ids[5 * 35], lengths[5];
    int total = 0;
    for (int d = 1; d <= 5; d++) {
      for (int i = 0; i < d * 7; i++) ids[total + i] = (d * 1000 + i) % 60000;
      lengths[d - 1] = d * 7;
      total += d * 7;
    }
    write_raw_tokens(tmp.bin, ids, total, dtype);
    CHECK(indexed_write_index(tmp.idx, dtype, lengths, 5, err, sizeof err) == 0, "index: %s", err);
    CHECK(indexed_publish(prefix, &tmp, 0, err, sizeof err) == 0, "publish: %s", err);
    token_dataset ds;
    CHECK(dataset_open(&ds, prefix, err, sizeof err) == 0, "our file opens: %s", err);
    CHECK(ds.n_tokens == (uint64_t)total && ds.n_documents == 5, "counts");
    int same = 1;
    for (int k = 0; k < total; k++) same &= dataset_token(&ds, (uint64_t)k) == ids[k];
    CHECK(same, "our writer round-trips (int32=%d)", use_int32);
    dataset_close(&ds);
    CHECK(access(tmp.bin, F_OK) != 0 && access(tmp.idx, F_OK) != 0, "no temporary file left behind");
    CHECK(access(sidecar, F_OK) != 0, "a dataset without a tokenizer leaves no old sidecar");
  }
}

static void test_data_order(void) {
  const uint64_t sizes[] = {1, 2, 3, 7, 1000, 4097};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
    for (uint64_t key = 1; key <= 3; key++) {
      const uint64_t n = sizes[s];
      char *seen = calloc(n, 1);
      int ok = 1;
      for (uint64_t i = 0; i < n; i++) {
        uint64_t p = data_order_permute(i, n, key);
        ok &= p < n && !seen[p];
        if (p < n) seen[p] = 1;
      }
      CHECK(ok, "permutation of [0,%llu) with key %llu is a bijection", (unsigned long long)n,
            (unsigned long long)key);
      free(seen);
    }
  int differs = 0, moved = 0;
  for (uint64_t i = 0; i < 1000; i++) {
    differs += data_order_permute(i, 1000, 1) != data_order_permute(i, 1000, 2);
    moved += data_order_permute(i, 1000, 1) != i;
  }
  CHECK(differs > 900 && moved > 900, "keys give different orders (%d), far from identity (%d)",
        differs, moved);
  /* windows stay in [first, first+n); each epoch visits every window once */
  const uint64_t first = 50, n = 37;
  int ok = 1, epochs_differ = 0;
  for (uint64_t epoch = 0; epoch < 3; epoch++) {
    char seen[37] = {0};
    for (uint64_t i = epoch * n; i < (epoch + 1) * n; i++) {
      uint64_t w = data_order_window(9, i, first, n);
      ok &= w >= first && w < first + n && !seen[w - first];
      if (w >= first && w < first + n) seen[w - first] = 1;
      if (epoch > 0) epochs_differ += w != data_order_window(9, i - n, first, n);
    }
  }
  CHECK(ok, "every epoch is a permutation of the split's windows");
  CHECK(epochs_differ > 30, "epochs are shuffled differently");
  CHECK(data_order_window(9, 123, first, n) == data_order_window(9, 123, first, n), "pure function");
}

static void copy_truncated(const char *from, const char *to, long keep_bytes) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  int c;
  long n = 0;
  while ((keep_bytes < 0 || n < keep_bytes) && (c = fgetc(in)) != EOF) fputc(c, out), n++;
  fclose(in);
  fclose(out);
}

static void expect_error(const char *path, int want_status, const char *mention, const char *what) {
  token_dataset ds;
  char err[MESSAGE_BYTES] = "";
  int status = dataset_open(&ds, path, err, sizeof err);
  CHECK(status == want_status, "%s: status %d, want %d (%s)", what, status, want_status, err);
  CHECK(strstr(err, mention) != NULL, "%s: message '%s' mentions '%s'", what, err, mention);
  if (status == 0) dataset_close(&ds);
}

static void test_bad_files(void) {
  const int32_t tokens[20] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const int lengths[2] = {12, 8};
  write_megatron_independently(path_of("good"), tokens, lengths, 2, 0);
  char good_idx[600], good_bin[600];
  snprintf(good_idx, sizeof good_idx, "%s.idx", path_of("good"));
  snprintf(good_bin, sizeof good_bin, "%s.bin", path_of("good"));

  expect_error(path_of("absent"), EXIT_USER_ERROR, "absent", "missing prefix");
  /* each damaged copy: prefix X with X.idx and X.bin */
  struct {
    const char *name;
    long idx_keep, bin_keep;
    int patch_at;
    unsigned char patch;
  } cases[] = {
      {"trunc_idx", 30, -1, -1, 0},  {"short_idx", 60, -1, -1, 0}, {"trunc_bin", -1, 30, -1, 0},
      {"magic", -1, -1, 0, 'X'},     {"version", -1, -1, 9, 2},    {"dtype", -1, -1, 17, 6},
  };
  const char *mentions[] = {"trunc_idx.idx", "short_idx.idx", "trunc_bin.bin",
                            "wrong magic",   "version 2",     "dtype code 6"};
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char idx[600], bin[600];
    snprintf(idx, sizeof idx, "%s.idx", path_of(cases[i].name));
    snprintf(bin, sizeof bin, "%s.bin", path_of(cases[i].name));
    copy_truncated(good_idx, idx, cases[i].idx_keep);
    copy_truncated(good_bin, bin, cases[i].bin_keep);
    if (cases[i].patch_at >= 0) {
      FILE *f = fopen(idx, "r+b");
      fseek(f, cases[i].patch_at, SEEK_SET);
      fputc(cases[i].patch, f);
      fclose(f);
    }
    expect_error(path_of(cases[i].name), EXIT_IO_ERROR, mentions[i], cases[i].name);
  }
  uint16_t small[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  write_llmc_independently(path_of("llmc_magic.bin"), small, 10, 12345);
  expect_error(path_of("llmc_magic.bin"), EXIT_IO_ERROR, "wrong magic", "llm.c wrong magic");
  write_llmc_independently(path_of("llmc_trunc.bin"), small, 10, 20240520);
  copy_truncated(path_of("llmc_trunc.bin"), path_of("llmc_short.bin"), 1024 + 6);
  expect_error(path_of("llmc_short.bin"), EXIT_IO_ERROR, "truncated", "llm.c truncated");
  write_llmc_independently(path_of("empty.bin"), small, 0, 20240520);
  expect_error(path_of("empty.bin"), EXIT_IO_ERROR, "no tokens", "empty dataset");
}

int main(void) {
  if (!mkdtemp(dir)) return 99;
  test_tokenizer();
  test_independent_writers();
  test_our_writer();
  test_data_order();
  test_bad_files();
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary("test_dataset");
}

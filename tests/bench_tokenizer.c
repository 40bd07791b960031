/* bench_tokenizer — tessera's BPE encoder's throughput, one thread, for
 * jobs/bench-tokenizer (which measures tiktoken and HF tokenizers on the same
 * text and compares the ids).
 *
 *   bench_tokenizer TOKENIZER TEXT LENGTHS IDS_OUT [REPEATS]
 *
 * TEXT is encoded document by document, LENGTHS giving each document's byte
 * count, one per line. Each repeat loads a fresh tokenizer (not timed: its
 * word cache starts empty) and encodes every document; the median repeat is
 * printed as `tessera bytes=... tokens=... seconds=... mb_per_s=...`
 * (MB = 10^6 bytes). The ids of the last repeat go to IDS_OUT (int32). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tokenizer.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static char *read_all(const char *path, size_t *n_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
  if (text && fread(text, 1, (size_t)n, f) != (size_t)n) text = (free(text), NULL);
  fclose(f);
  *n_bytes = (size_t)n;
  return text;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

int main(int argc, char **argv) {
  if (argc < 5) return fprintf(stderr, "usage: bench_tokenizer TOKENIZER TEXT LENGTHS IDS_OUT [REPEATS]\n"), 1;
  int repeats = argc > 5 ? atoi(argv[5]) : 3;
  size_t n_bytes, n_docs = 0, docs_cap = 1024;
  char *text = read_all(argv[2], &n_bytes);
  FILE *lengths = fopen(argv[3], "r");
  size_t *doc_bytes = malloc(docs_cap * sizeof *doc_bytes);
  int32_t *ids = text ? malloc((n_bytes + 1) * sizeof *ids) : NULL;
  if (!text || !lengths || !doc_bytes || !ids || repeats < 1) return fprintf(stderr, "bench_tokenizer: bad input\n"), 1;
  size_t total = 0;
  while (fscanf(lengths, "%zu", &doc_bytes[n_docs]) == 1) {
    total += doc_bytes[n_docs++];
    if (n_docs == docs_cap && !(doc_bytes = realloc(doc_bytes, (docs_cap *= 2) * sizeof *doc_bytes))) return 1;
  }
  fclose(lengths);
  if (total != n_bytes) return fprintf(stderr, "bench_tokenizer: lengths sum to %zu, text has %zu bytes\n", total, n_bytes), 1;
  double seconds[64];
  size_t n_ids = 0;
  if (repeats > 64) repeats = 64;
  for (int r = 0; r < repeats; r++) {
    char err[8192];
    tokenizer *t = tokenizer_load(argv[1], err, sizeof err);
    if (!t) return fprintf(stderr, "bench_tokenizer: %s\n", err), 1;
    double start = now();
    size_t at = 0;
    n_ids = 0;
    for (size_t d = 0; d < n_docs; d++) {
      n_ids += tokenizer_encode(t, text + at, doc_bytes[d], ids + n_ids);
      at += doc_bytes[d];
    }
    seconds[r] = now() - start;
    tokenizer_free(t);
  }
  qsort(seconds, (size_t)repeats, sizeof *seconds, by_value);
  double median = seconds[repeats / 2];
  printf("tessera bytes=%zu docs=%zu tokens=%zu seconds=%.4f mb_per_s=%.2f\n", n_bytes, n_docs, n_ids, median,
         (double)n_bytes / median / 1e6);
  FILE *out = fopen(argv[4], "wb");
  if (!out || fwrite(ids, sizeof *ids, n_ids, out) != n_ids || fclose(out) != 0)
    return fprintf(stderr, "bench_tokenizer: cannot write '%s'\n", argv[4]), 1;
  free(ids);
  free(text);
  free(doc_bytes);
  return 0;
}

/* tokenize_dump — a test tool that gets ids out of tessera's tokenizer for
 * the reference comparisons (tests/tokenizer_reference.py); not a user
 * command (`tessera prep --tokenizer` is).
 *
 *   tokenize_dump encode TOKENIZER OUT FILE...   each FILE's ids into OUT:
 *       per file a uint32 count, then that many int32 ids (little-endian).
 *       Also checks decode(encode(text)) == text and fails if not.
 *   tokenize_dump json TOKENIZER OUT             tokenizer_to_json into OUT
 *
 * TOKENIZER is what tokenizer_load takes. Exit 1 on any error, with one line. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "token_round_trip.h"
#include "tokenizer.h"

static char *read_all(const char *path, size_t *n_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *text = malloc(cap);
  while (text) {
    n += fread(text + n, 1, cap - n, f);
    if (n < cap) break;
    char *bigger = realloc(text, cap *= 2);
    if (!bigger) free(text);
    text = bigger;
  }
  fclose(f);
  *n_bytes = n;
  return text;
}

static int encode_files(tokenizer *t, const char *out_path, char **files, int n_files) {
  FILE *out = fopen(out_path, "wb");
  if (!out) return fprintf(stderr, "tokenize_dump: cannot write '%s'\n", out_path), 1;
  for (int f = 0; f < n_files; f++) {
    size_t n_bytes;
    char *text = read_all(files[f], &n_bytes);
    int32_t *ids = text ? malloc((n_bytes + 1) * sizeof *ids) : NULL;
    if (!ids) return fprintf(stderr, "tokenize_dump: cannot read '%s'\n", files[f]), 1;
    size_t n_ids = tokenizer_encode(t, text, n_bytes, ids);
    if (!round_trips(t, ids, n_ids, text, n_bytes))
      return fprintf(stderr, "tokenize_dump: decode(encode(x)) != x for '%s'\n", files[f]), 1;
    uint32_t count = (uint32_t)n_ids;
    if (fwrite(&count, 4, 1, out) != 1 || fwrite(ids, 4, n_ids, out) != n_ids)
      return fprintf(stderr, "tokenize_dump: write failed\n"), 1;
    free(ids);
    free(text);
  }
  return fclose(out) != 0;
}

int main(int argc, char **argv) {
  if (argc < 4 || (strcmp(argv[1], "encode") != 0 && strcmp(argv[1], "json") != 0)) {
    fprintf(stderr, "usage: tokenize_dump encode TOKENIZER OUT FILE... | json TOKENIZER OUT\n");
    return 1;
  }
  char err[8192];
  tokenizer *t = tokenizer_load(argv[2], err, sizeof err);
  if (!t) return fprintf(stderr, "tokenize_dump: %s\n", err), 1;
  int status;
  if (strcmp(argv[1], "encode") == 0) {
    status = encode_files(t, argv[3], argv + 4, argc - 4);
  } else {
    char *json = tokenizer_to_json(t);
    FILE *out = json ? fopen(argv[3], "wb") : NULL;
    status = !out || fputs(json, out) < 0;
    if (out) status |= fclose(out) != 0;
    free(json);
    if (status) fprintf(stderr, "tokenize_dump: cannot write '%s'\n", argv[3]);
  }
  tokenizer_free(t);
  return status;
}

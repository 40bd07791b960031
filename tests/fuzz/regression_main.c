/* regression_main — `make check`'s run of the fuzz harnesses: each harness
 * over every file of its committed corpus, tests/fuzz/corpus/<reader>/ (the
 * seeds and every input that once found a bug), built with the ordinary
 * compiler, so the regressions run without clang or libFuzzer.
 *
 * Usage: regression [CORPUS_ROOT [READER [FILE...]]]; CORPUS_ROOT defaults
 * to $TESTS_SRCDIR/fuzz/corpus. A finding aborts (exit by SIGABRT, the
 * input's name printed first); a reader with an empty corpus fails. */
#include <dirent.h>
#include <errno.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static const struct {
  const char *name;
  fuzz_harness run;
} readers[] = {
    {"dataset", fuzz_dataset}, {"config", fuzz_config},       {"safetensors", fuzz_safetensors},
    {"llmc", fuzz_llmc},       {"tokenizer", fuzz_tokenizer}, {"checkpoint", fuzz_checkpoint},
    {"task", fuzz_task},
};

static uint8_t *read_input(const char *path, size_t *n_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  uint8_t *data = malloc(cap);
  while (data) {
    n += fread(data + n, 1, cap - n, f);
    if (n < cap) break;
    uint8_t *bigger = realloc(data, cap *= 2);
    if (!bigger) free(data);
    data = bigger;
  }
  const int failed = ferror(f);
  fclose(f);
  if (failed) {
    free(data);
    return NULL;
  }
  *n_bytes = n;
  return data;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Runs one input; 0, or 1 when it cannot be read. */
static int run_file(fuzz_harness run, const char *path) {
  size_t n_bytes = 0;
  uint8_t *data = read_input(path, &n_bytes);
  if (!data) {
    fprintf(stderr, "regression: cannot read %s: %s\n", path, strerror(errno));
    return 1;
  }
  fprintf(stderr, "-- %s (%zu bytes)\n", path, n_bytes);
  fuzz_run(run, data, n_bytes);
  free(data);
  return 0;
}

/* Every file of root/reader, in name order. Returns the number run, or -1. */
static int run_corpus(const char *root, const char *reader, fuzz_harness run) {
  char dir_path[4096];
  if (snprintf(dir_path, sizeof dir_path, "%s/%s", root, reader) >= (int)sizeof dir_path) {
    fprintf(stderr, "regression: the corpus path %s is too long\n", root);
    return -1;
  }
  DIR *dir = opendir(dir_path);
  if (!dir) {
    fprintf(stderr, "regression: no corpus %s: %s\n", dir_path, strerror(errno));
    return -1;
  }
  char **names = NULL;
  int n = 0;
  for (struct dirent *e; (e = readdir(dir));) {
    if (e->d_name[0] == '.') continue;
    char **more = realloc(names, (size_t)(n + 1) * sizeof *names);
    if (!more || !(more[n] = strdup(e->d_name))) {
      fprintf(stderr, "regression: out of memory\n");
      exit(1);
    }
    names = more;
    n++;
  }
  closedir(dir);
  qsort(names, (size_t)n, sizeof *names, by_name);
  int failed = 0;
  for (int i = 0; i < n; i++) {
    char path[4096 + 512];
    snprintf(path, sizeof path, "%s/%s", dir_path, names[i]);
    failed |= run_file(run, path);
    free(names[i]);
  }
  free(names);
  if (n == 0) fprintf(stderr, "regression: the corpus %s is empty\n", dir_path);
  return failed || n == 0 ? -1 : n;
}

int main(int argc, char **argv) {
  /* the checkpoint harness uses the HDF5 of the build, which may be the MPI one */
  MPI_Init(&argc, &argv);
  fuzz_verbose = 1;
  char default_root[4096];
  const char *srcdir = getenv("TESTS_SRCDIR");
  snprintf(default_root, sizeof default_root, "%s/fuzz/corpus", srcdir ? srcdir : "tests");
  const char *root = argc > 1 ? argv[1] : default_root;
  int status = 0;
  for (size_t r = 0; r < sizeof readers / sizeof readers[0]; r++) {
    if (argc > 2 && strcmp(argv[2], readers[r].name) != 0) continue;
    if (argc > 3) {
      for (int i = 3; i < argc; i++) status |= run_file(readers[r].run, argv[i]);
      continue;
    }
    const int n = run_corpus(root, readers[r].name, readers[r].run);
    if (n < 0) status = 1;
    else printf("%s: %d inputs, no finding\n", readers[r].name, n);
  }
  MPI_Finalize();
  return status;
}

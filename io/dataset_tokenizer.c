/* dataset_tokenizer — see dataset_tokenizer.h. */
#include "dataset_tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"

void dataset_sidecar_path(const char *data_path, char *out, size_t out_bytes) {
  size_t n = strlen(data_path);
  if (n > 4 && strcmp(data_path + n - 4, ".bin") == 0) n -= 4;
  snprintf(out, out_bytes, "%.*s%s", (int)n, data_path, DATASET_SIDECAR_SUFFIX);
}

int dataset_sidecar_write(const char *path, const tokenizer *t, char *err, size_t err_bytes) {
  char *text = tokenizer_to_json(t);
  if (!text) {
    snprintf(err, err_bytes, "the tokenizer %s has no tokenizer.json text", tokenizer_description(t));
    return -1;
  }
  FILE *f = fopen(path, "wb");
  const size_t n = strlen(text);
  int failed = !f;
  if (f) {
    failed |= fwrite(text, 1, n, f) != n;
    failed |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    failed |= fclose(f) != 0;
  }
  if (failed) snprintf(err, err_bytes, "writing '%s' failed: %s", path, strerror(errno));
  free(text);
  return failed ? -1 : 0;
}

/* The whole file, NUL-terminated; NULL with errno set. */
static char *read_whole(const char *path, size_t *n_bytes) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *data = NULL;
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    data = malloc((size_t)size + 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
      free(data);
      data = NULL;
      errno = EIO;
    }
  }
  fclose(f);
  if (!data) return NULL;
  data[size] = '\0';
  *n_bytes = (size_t)size;
  return data;
}

int dataset_sidecar_read(const char *data_path, tokenizer **t, char *err, size_t err_bytes) {
  *t = NULL;
  char path[JOINED_PATH_BYTES];
  dataset_sidecar_path(data_path, path, sizeof path);
  if (access(path, F_OK) != 0) return 0; /* none: the caller knows what that means */
  size_t n = 0;
  char *text = read_whole(path, &n);
  if (!text) {
    snprintf(err, err_bytes, "cannot read the dataset's tokenizer '%s': %s", path, strerror(errno));
    return EXIT_IO_ERROR;
  }
  char why[MESSAGE_BYTES];
  *t = tokenizer_from_json(text, n, why, sizeof why);
  free(text);
  if (!*t) {
    snprintf(err, err_bytes, "the dataset's tokenizer '%s' is not usable: %s", path, why);
    return EXIT_IO_ERROR;
  }
  return 0;
}

bool tokenizers_agree(const tokenizer *a, const tokenizer *b) {
  if (tokenizer_kind_of(a) != tokenizer_kind_of(b) || tokenizer_vocab_size(a) != tokenizer_vocab_size(b)) return false;
  if (tokenizer_kind_of(a) == TOKENIZER_BYTES) return true;
  char *text_a = tokenizer_to_json(a), *text_b = tokenizer_to_json(b);
  const bool same = text_a && text_b && strcmp(text_a, text_b) == 0;
  free(text_a);
  free(text_b);
  return same;
}

/* indexed_writer — see indexed_writer.h; the format is in doc/data-format.md. */
#include "indexed_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset_tokenizer.h"

void indexed_temp_paths_of(const char *prefix, long tag, indexed_temp_paths *tmp) {
  snprintf(tmp->bin, sizeof tmp->bin, "%s.bin.tmp.%ld", prefix, tag);
  snprintf(tmp->idx, sizeof tmp->idx, "%s.idx.tmp.%ld", prefix, tag);
  snprintf(tmp->sidecar, sizeof tmp->sidecar, "%s%s.tmp.%ld", prefix, DATASET_SIDECAR_SUFFIX, tag);
}

int64_t token_dtype_bytes(token_dtype dtype) { return dtype == TOKEN_DTYPE_U16 ? 2 : 4; }

static int flush_and_close(FILE *f, const char *path, char *err, size_t err_bytes) {
  int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
  failed |= fclose(f) != 0;
  if (failed) snprintf(err, err_bytes, "writing '%s' failed: %s", path, strerror(errno));
  return failed ? -1 : 0;
}

int indexed_write_index(const char *path, token_dtype dtype, const int32_t *lengths, uint64_t n_docs,
                        char *err, size_t err_bytes) {
  FILE *idx = fopen(path, "wb");
  if (!idx) {
    snprintf(err, err_bytes, "cannot create '%s': %s", path, strerror(errno));
    return -1;
  }
  const uint64_t version = 1, n_doc_entries = n_docs + 1;
  const uint8_t dtype_code = dtype == TOKEN_DTYPE_U16 ? 8 : 4;
  const int64_t token_bytes = token_dtype_bytes(dtype);
  int ok = fwrite("MMIDIDX\x00\x00", 1, 9, idx) == 9;
  ok &= fwrite(&version, 8, 1, idx) == 1;
  ok &= fwrite(&dtype_code, 1, 1, idx) == 1;
  ok &= fwrite(&n_docs, 8, 1, idx) == 1;
  ok &= fwrite(&n_doc_entries, 8, 1, idx) == 1;
  ok &= fwrite(lengths, 4, n_docs, idx) == n_docs;
  int64_t pointer = 0;
  for (uint64_t i = 0; ok && i < n_docs; i++) {
    ok &= fwrite(&pointer, 8, 1, idx) == 1;
    pointer += lengths[i] * token_bytes;
  }
  for (int64_t i = 0; ok && i <= (int64_t)n_docs; i++) ok &= fwrite(&i, 8, 1, idx) == 1;
  if (!ok) {
    snprintf(err, err_bytes, "writing '%s' failed: %s", path, strerror(errno));
    fclose(idx);
    return -1;
  }
  return flush_and_close(idx, path, err, err_bytes);
}

static int remove_if_there(const char *path, char *err, size_t err_bytes) {
  if (remove(path) == 0 || errno == ENOENT) return 0;
  snprintf(err, err_bytes, "cannot remove the old '%s': %s", path, strerror(errno));
  return -1;
}

static int rename_or_say(const char *from, const char *to, char *err, size_t err_bytes) {
  if (rename(from, to) == 0) return 0;
  snprintf(err, err_bytes, "renaming '%s' to '%s' failed: %s", from, to, strerror(errno));
  return -1;
}

int indexed_publish(const char *prefix, const indexed_temp_paths *tmp, int has_sidecar, char *err,
                    size_t err_bytes) {
  char bin[JOINED_PATH_BYTES], idx[JOINED_PATH_BYTES], sidecar[JOINED_PATH_BYTES];
  snprintf(bin, sizeof bin, "%s.bin", prefix);
  snprintf(idx, sizeof idx, "%s.idx", prefix);
  snprintf(sidecar, sizeof sidecar, "%s%s", prefix, DATASET_SIDECAR_SUFFIX);
  if (remove_if_there(idx, err, err_bytes)) return -1;
  if (has_sidecar ? rename_or_say(tmp->sidecar, sidecar, err, err_bytes)
                  : remove_if_there(sidecar, err, err_bytes))
    return -1;
  if (rename_or_say(tmp->bin, bin, err, err_bytes)) return -1;
  return rename_or_say(tmp->idx, idx, err, err_bytes);
}

void indexed_discard(const indexed_temp_paths *tmp) {
  remove(tmp->bin);
  remove(tmp->idx);
  remove(tmp->sidecar);
}

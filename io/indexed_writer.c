/* indexed_writer — see indexed_writer.h; the format is in doc/data-format.md.
 *
 * Tokens stream into PREFIX.bin.tmp.PID as documents arrive; the sequence
 * lengths are kept in memory (4 bytes per document) and the index is written
 * at close. Only when both files are complete and fsync'ed are they renamed
 * into place, .bin first: a reader that finds PREFIX.idx also finds the .bin
 * it describes.
 */
#include "indexed_writer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"

struct indexed_writer {
  char prefix[PATH_BYTES], bin_tmp[JOINED_PATH_BYTES], idx_tmp[JOINED_PATH_BYTES];
  FILE *bin;
  token_dtype dtype;
  int32_t *lengths;
  uint64_t n_documents, capacity, n_tokens;
};

indexed_writer *indexed_writer_open(const char *prefix, token_dtype dtype, char *err,
                                    size_t err_bytes) {
  indexed_writer *w = xcalloc(1, sizeof *w, "dataset writer");
  snprintf(w->prefix, sizeof w->prefix, "%s", prefix);
  snprintf(w->bin_tmp, sizeof w->bin_tmp, "%s.bin.tmp.%ld", prefix, (long)getpid());
  snprintf(w->idx_tmp, sizeof w->idx_tmp, "%s.idx.tmp.%ld", prefix, (long)getpid());
  w->dtype = dtype;
  w->bin = fopen(w->bin_tmp, "wb");
  if (!w->bin) {
    snprintf(err, err_bytes, "cannot create '%s': %s", w->bin_tmp, strerror(errno));
    free(w);
    return NULL;
  }
  return w;
}

int indexed_writer_add_document(indexed_writer *w, const int32_t *tokens, size_t n_tokens,
                                char *err, size_t err_bytes) {
  if (n_tokens > INT32_MAX) {
    snprintf(err, err_bytes, "a document of %zu tokens exceeds the format's int32 length", n_tokens);
    return -1;
  }
  enum { CHUNK = 4096 };
  uint16_t narrow[CHUNK];
  for (size_t done = 0; done < n_tokens;) {
    size_t piece = n_tokens - done < CHUNK ? n_tokens - done : CHUNK;
    size_t written;
    if (w->dtype == TOKEN_DTYPE_U16) {
      for (size_t i = 0; i < piece; i++) {
        int32_t t = tokens[done + i];
        if (t < 0 || t > UINT16_MAX) {
          snprintf(err, err_bytes, "token id %d does not fit uint16 storage; use --dtype int32", t);
          return -1;
        }
        narrow[i] = (uint16_t)t;
      }
      written = fwrite(narrow, sizeof(uint16_t), piece, w->bin);
    } else {
      written = fwrite(tokens + done, sizeof(int32_t), piece, w->bin);
    }
    if (written != piece) {
      snprintf(err, err_bytes, "writing '%s' failed: %s", w->bin_tmp, strerror(errno));
      return -1;
    }
    done += piece;
  }
  if (w->n_documents == w->capacity) {
    w->capacity = w->capacity ? 2 * w->capacity : 1024;
    int32_t *grown = realloc(w->lengths, w->capacity * sizeof *grown);
    if (!grown) {
      snprintf(err, err_bytes, "out of memory for the document index");
      return -1;
    }
    w->lengths = grown;
  }
  w->lengths[w->n_documents++] = (int32_t)n_tokens;
  w->n_tokens += n_tokens;
  return 0;
}

static int flush_and_close(FILE *f, const char *path, char *err, size_t err_bytes) {
  int failed = fflush(f) != 0 || fsync(fileno(f)) != 0;
  failed |= fclose(f) != 0;
  if (failed) snprintf(err, err_bytes, "writing '%s' failed: %s", path, strerror(errno));
  return failed ? -1 : 0;
}

static int write_index(indexed_writer *w, char *err, size_t err_bytes) {
  FILE *idx = fopen(w->idx_tmp, "wb");
  if (!idx) {
    snprintf(err, err_bytes, "cannot create '%s': %s", w->idx_tmp, strerror(errno));
    return -1;
  }
  const uint64_t version = 1, n_docs = w->n_documents, n_doc_entries = n_docs + 1;
  const uint8_t dtype_code = w->dtype == TOKEN_DTYPE_U16 ? 8 : 4;
  const int64_t token_bytes = w->dtype == TOKEN_DTYPE_U16 ? 2 : 4;
  int ok = fwrite("MMIDIDX\x00\x00", 1, 9, idx) == 9;
  ok &= fwrite(&version, 8, 1, idx) == 1;
  ok &= fwrite(&dtype_code, 1, 1, idx) == 1;
  ok &= fwrite(&n_docs, 8, 1, idx) == 1;
  ok &= fwrite(&n_doc_entries, 8, 1, idx) == 1;
  ok &= fwrite(w->lengths, 4, n_docs, idx) == n_docs;
  int64_t pointer = 0;
  for (uint64_t i = 0; ok && i < n_docs; i++) {
    ok &= fwrite(&pointer, 8, 1, idx) == 1;
    pointer += w->lengths[i] * token_bytes;
  }
  for (int64_t i = 0; ok && i <= (int64_t)n_docs; i++) ok &= fwrite(&i, 8, 1, idx) == 1;
  if (!ok) {
    snprintf(err, err_bytes, "writing '%s' failed: %s", w->idx_tmp, strerror(errno));
    fclose(idx);
    return -1;
  }
  return flush_and_close(idx, w->idx_tmp, err, err_bytes);
}

int indexed_writer_close(indexed_writer *w, char *err, size_t err_bytes) {
  int status = flush_and_close(w->bin, w->bin_tmp, err, err_bytes);
  w->bin = NULL;
  if (status == 0) status = write_index(w, err, err_bytes);
  char bin_path[JOINED_PATH_BYTES], idx_path[JOINED_PATH_BYTES];
  snprintf(bin_path, sizeof bin_path, "%s.bin", w->prefix);
  snprintf(idx_path, sizeof idx_path, "%s.idx", w->prefix);
  if (status == 0 && (rename(w->bin_tmp, bin_path) != 0 || rename(w->idx_tmp, idx_path) != 0)) {
    snprintf(err, err_bytes, "renaming into '%s.{bin,idx}' failed: %s", w->prefix, strerror(errno));
    status = -1;
  }
  if (status != 0) {
    remove(w->bin_tmp);
    remove(w->idx_tmp);
  }
  free(w->lengths);
  free(w);
  return status;
}

void indexed_writer_discard(indexed_writer *w) {
  if (w->bin) fclose(w->bin);
  remove(w->bin_tmp);
  remove(w->idx_tmp);
  free(w->lengths);
  free(w);
}

uint64_t indexed_writer_n_tokens(const indexed_writer *w) { return w->n_tokens; }
uint64_t indexed_writer_n_documents(const indexed_writer *w) { return w->n_documents; }

/* token_dataset — see token_dataset.h; formats in doc/data-format.md.
 *
 * Files are memory-mapped read-only: opening a 100 GB dataset costs nothing
 * until tokens are touched, and every rank on a node shares the page cache.
 * Every size and offset in an index is checked against the file sizes before
 * any token is read, so a truncated or foreign file is an error message, not
 * a crash.
 */
#include "token_dataset.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"

#define MEGATRON_MAGIC "MMIDIDX\x00\x00"
#define MEGATRON_MAGIC_BYTES 9
#define MEGATRON_HEADER_BYTES (9 + 8 + 1 + 8 + 8)
#define LLMC_MAGIC 20240520
#define LLMC_HEADER_BYTES (256 * 4)

static int file_exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Maps a whole file read-only. Returns 0 or EXIT_IO_ERROR with err set. */
static int map_file(const char *path, void **data, size_t *n_bytes, struct stat *mapped_st, char *err,
                    size_t err_bytes) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    snprintf(err, err_bytes, "cannot open data file '%s': %s", path, strerror(errno));
    return EXIT_IO_ERROR;
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    snprintf(err, err_bytes, "cannot stat data file '%s': %s", path, strerror(errno));
    close(fd);
    return EXIT_IO_ERROR;
  }
  *n_bytes = (size_t)st.st_size;
  if (mapped_st) *mapped_st = st;
  *data = NULL;
  if (*n_bytes > 0) {
    void *mapped = mmap(NULL, *n_bytes, PROT_READ, MAP_SHARED, fd, 0);
    if (mapped == MAP_FAILED) {
      snprintf(err, err_bytes, "cannot map data file '%s': %s", path, strerror(errno));
      close(fd);
      return EXIT_IO_ERROR;
    }
    *data = mapped;
  }
  close(fd);
  return 0;
}

/* Maps the file holding the tokens (mapping 0) and remembers which file it was,
 * for dataset_check_unchanged. */
static int map_tokens_file(token_dataset *ds, const char *path, char *err, size_t err_bytes) {
  struct stat st;
  int status = map_file(path, &ds->mappings[0], &ds->mapping_bytes[0], &st, err, err_bytes);
  if (status) return status;
  snprintf(ds->tokens_path, sizeof ds->tokens_path, "%s", path);
  ds->tokens_device = (uint64_t)st.st_dev;
  ds->tokens_inode = (uint64_t)st.st_ino;
  return 0;
}

static uint64_t read_u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, sizeof v); /* little-endian hosts only (x86-64, aarch64) */
  return v;
}

static int open_megatron(token_dataset *ds, const char *prefix, char *err, size_t err_bytes) {
  char idx_path[JOINED_PATH_BYTES], bin_path[JOINED_PATH_BYTES];
  snprintf(idx_path, sizeof idx_path, "%s.idx", prefix);
  snprintf(bin_path, sizeof bin_path, "%s.bin", prefix);
  int status = map_file(idx_path, &ds->mappings[1], &ds->mapping_bytes[1], NULL, err, err_bytes);
  if (status) return status;
  status = map_tokens_file(ds, bin_path, err, err_bytes);
  if (status) return status;
  const unsigned char *idx = ds->mappings[1];
  const size_t idx_bytes = ds->mapping_bytes[1];
  if (idx_bytes < MEGATRON_HEADER_BYTES || memcmp(idx, MEGATRON_MAGIC, MEGATRON_MAGIC_BYTES) != 0) {
    snprintf(err, err_bytes,
             "data file '%s' has %s (not a Megatron-LM indexed dataset index); re-create it "
             "with `tessera prep`",
             idx_path, idx_bytes < MEGATRON_HEADER_BYTES ? "a truncated header" : "the wrong magic");
    return EXIT_IO_ERROR;
  }
  const uint64_t version = read_u64(idx + 9);
  if (version != 1) {
    snprintf(err, err_bytes, "data file '%s' has index version %llu; only version 1 is known",
             idx_path, (unsigned long long)version);
    return EXIT_IO_ERROR;
  }
  const unsigned dtype_code = idx[17];
  size_t token_bytes;
  if (dtype_code == 8) {
    ds->dtype = TOKEN_DTYPE_U16;
    token_bytes = 2;
  } else if (dtype_code == 4) {
    ds->dtype = TOKEN_DTYPE_I32;
    token_bytes = 4;
  } else {
    snprintf(err, err_bytes,
             "data file '%s' stores tokens as dtype code %u; tessera reads uint16 (8) and int32 (4)",
             idx_path, dtype_code);
    return EXIT_IO_ERROR;
  }
  const uint64_t n_sequences = read_u64(idx + 18), n_doc_entries = read_u64(idx + 26);
  /* header, int32 lengths, int64 pointers, int64 document indices */
  const unsigned long long want_bytes =
      MEGATRON_HEADER_BYTES + 4ULL * n_sequences + 8ULL * n_sequences + 8ULL * n_doc_entries;
  if (n_sequences > idx_bytes || n_doc_entries > idx_bytes || want_bytes != idx_bytes) {
    snprintf(err, err_bytes,
             "data file '%s' is %zu bytes but its header promises %llu (%llu sequences, %llu "
             "document entries): the index is truncated or damaged; re-create it with `tessera prep`",
             idx_path, idx_bytes, want_bytes, (unsigned long long)n_sequences,
             (unsigned long long)n_doc_entries);
    return EXIT_IO_ERROR;
  }
  const unsigned char *lengths = idx + MEGATRON_HEADER_BYTES;
  const unsigned char *pointers = lengths + 4 * n_sequences;
  uint64_t n_tokens = 0;
  for (uint64_t i = 0; i < n_sequences; i++) {
    int32_t length;
    memcpy(&length, lengths + 4 * i, 4);
    uint64_t pointer = read_u64(pointers + 8 * i);
    if (length < 0 || pointer != n_tokens * token_bytes) {
      snprintf(err, err_bytes,
               "data file '%s': sequence %llu has length %d at byte %llu, expected byte %llu; the "
               "index is damaged",
               idx_path, (unsigned long long)i, (int)length, (unsigned long long)pointer,
               (unsigned long long)(n_tokens * token_bytes));
      return EXIT_IO_ERROR;
    }
    n_tokens += (uint64_t)length;
  }
  if (ds->mapping_bytes[0] != n_tokens * token_bytes) {
    snprintf(err, err_bytes,
             "data file '%s' is %zu bytes but its index '%s' describes %llu tokens (%llu bytes): "
             "the file is truncated or does not belong to this index",
             bin_path, ds->mapping_bytes[0], idx_path, (unsigned long long)n_tokens,
             (unsigned long long)(n_tokens * token_bytes));
    return EXIT_IO_ERROR;
  }
  ds->format = TOKEN_FORMAT_MEGATRON;
  ds->tokens = ds->mappings[0];
  ds->n_tokens = n_tokens;
  ds->n_documents = n_doc_entries > 0 ? n_doc_entries - 1 : 0;
  return 0;
}

static int open_llmc(token_dataset *ds, const char *path, char *err, size_t err_bytes) {
  int status = map_tokens_file(ds, path, err, err_bytes);
  if (status) return status;
  const size_t n_bytes = ds->mapping_bytes[0];
  int32_t header[3] = {0, 0, 0};
  if (n_bytes >= sizeof header) memcpy(header, ds->mappings[0], sizeof header);
  if (n_bytes < LLMC_HEADER_BYTES || header[0] != LLMC_MAGIC) {
    snprintf(err, err_bytes,
             "data file '%s' is neither a Megatron-LM prefix nor an llm.c token file (%s); create a "
             "dataset with `tessera prep`",
             path, n_bytes < LLMC_HEADER_BYTES ? "too short for the 1024-byte header" : "wrong magic");
    return EXIT_IO_ERROR;
  }
  if (header[1] != 1) {
    snprintf(err, err_bytes, "llm.c data file '%s' has version %d; only version 1 (uint16) is known",
             path, header[1]);
    return EXIT_IO_ERROR;
  }
  const unsigned long long want = LLMC_HEADER_BYTES + 2ULL * (uint32_t)header[2];
  if (header[2] < 0 || n_bytes != want) {
    snprintf(err, err_bytes,
             "llm.c data file '%s' is %zu bytes but its header promises %d tokens (%llu bytes): "
             "the file is truncated or damaged",
             path, n_bytes, header[2], want);
    return EXIT_IO_ERROR;
  }
  ds->format = TOKEN_FORMAT_LLMC;
  ds->dtype = TOKEN_DTYPE_U16;
  ds->tokens = (const char *)ds->mappings[0] + LLMC_HEADER_BYTES;
  ds->n_tokens = (uint64_t)header[2];
  ds->n_documents = 0;
  return 0;
}

int dataset_open(token_dataset *ds, const char *path, char *err, size_t err_bytes) {
  memset(ds, 0, sizeof *ds);
  snprintf(ds->path, sizeof ds->path, "%s", path);
  char idx_path[JOINED_PATH_BYTES], bin_path[JOINED_PATH_BYTES];
  snprintf(idx_path, sizeof idx_path, "%s.idx", path);
  snprintf(bin_path, sizeof bin_path, "%s.bin", path);
  int status;
  if (file_exists(idx_path) && file_exists(bin_path)) {
    status = open_megatron(ds, path, err, err_bytes);
  } else if (file_exists(path)) {
    status = open_llmc(ds, path, err, err_bytes);
  } else {
    snprintf(err, err_bytes,
             "data '%s' not found: expected %s.idx and %s.bin (Megatron-LM indexed dataset) or an "
             "llm.c .bin file; create one with `tessera prep INPUT.txt -o %s`",
             path, path, path, path);
    return EXIT_USER_ERROR;
  }
  if (status == 0 && ds->n_tokens == 0) {
    snprintf(err, err_bytes, "data '%s' holds no tokens", path);
    status = EXIT_IO_ERROR;
  }
  if (status) dataset_close(ds);
  return status;
}

void dataset_close(token_dataset *ds) {
  for (int i = 0; i < 2; i++)
    if (ds->mappings[i]) munmap(ds->mappings[i], ds->mapping_bytes[i]);
  memset(ds, 0, sizeof *ds);
}

int dataset_check_unchanged(const token_dataset *ds, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(ds->tokens_path, &st) != 0) {
    snprintf(err, err_bytes, "data file '%s' disappeared while training (%s): it must stay in place until the run ends",
             ds->tokens_path, strerror(errno));
    return EXIT_IO_ERROR;
  }
  if ((uint64_t)st.st_dev != ds->tokens_device || (uint64_t)st.st_ino != ds->tokens_inode) {
    snprintf(err, err_bytes, "data file '%s' was replaced while training: the run read another file; "
             "data must not change until the run ends", ds->tokens_path);
    return EXIT_IO_ERROR;
  }
  if ((uint64_t)st.st_size != (uint64_t)ds->mapping_bytes[0]) {
    snprintf(err, err_bytes, "data file '%s' was %s while training (%llu bytes at the start, %llu now); "
             "data must not change until the run ends", ds->tokens_path,
             (uint64_t)st.st_size < (uint64_t)ds->mapping_bytes[0] ? "truncated" : "extended",
             (unsigned long long)ds->mapping_bytes[0], (unsigned long long)st.st_size);
    return EXIT_IO_ERROR;
  }
  return 0;
}

uint64_t dataset_n_windows(const token_dataset *ds, int seq_len) {
  return ds->n_tokens >= (uint64_t)seq_len + 1 ? (ds->n_tokens - 1) / (uint64_t)seq_len : 0;
}

int64_t dataset_token(const token_dataset *ds, uint64_t i) {
  if (ds->dtype == TOKEN_DTYPE_U16) return ((const uint16_t *)ds->tokens)[i];
  return ((const int32_t *)ds->tokens)[i];
}

int32_t dataset_read_window(const token_dataset *ds, uint64_t window, int seq_len, int32_t *out) {
  const uint64_t first = window * (uint64_t)seq_len;
  int32_t max_id = -1; /* the worst id: a negative one if any (token_id_worse) */
  if (ds->dtype == TOKEN_DTYPE_U16) {
    const uint16_t *src = (const uint16_t *)ds->tokens + first;
    for (int i = 0; i <= seq_len; i++) {
      out[i] = src[i];
      if (out[i] > max_id) max_id = out[i];
    }
  } else {
    const int32_t *src = (const int32_t *)ds->tokens + first;
    max_id = src[0];
    for (int i = 0; i <= seq_len; i++) {
      out[i] = src[i];
      if (token_id_worse(out[i], max_id)) max_id = out[i];
    }
  }
  return max_id;
}

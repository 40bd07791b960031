/* llmc_model — see llmc_model.h. */
#include "llmc_model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fail.h"
#include "file_range.h"

int llmc_padded_vocab(int vocab_size) { return (vocab_size + 127) / 128 * 128; }

int64_t llmc_slice_elems(const llmc_sizes *s, llmc_tensor k) {
  const int64_t C = s->channels;
  switch (k) {
    case LLMC_WTE: return (int64_t)s->padded_vocab_size * C;
    case LLMC_WPE: return (int64_t)s->max_seq_len * C;
    case LLMC_QKVW: return 3 * C * C;
    case LLMC_QKVB: return 3 * C;
    case LLMC_ATTPROJW: return C * C;
    case LLMC_FCW: case LLMC_FCPROJW: return 4 * C * C;
    case LLMC_FCB: return 4 * C;
    default: return C; /* the norms, attprojb, fcprojb */
  }
}

static bool per_layer(llmc_tensor k) { return k != LLMC_WTE && k != LLMC_WPE && k != LLMC_LNFW && k != LLMC_LNFB; }

/* Sizes and offsets of every tensor from the header's sizes. */
static void lay_out(llmc_file *f) {
  uint64_t offset = LLMC_HEADER_INTS * sizeof(int32_t);
  for (int k = 0; k < LLMC_N_TENSORS; k++) {
    f->elems[k] = llmc_slice_elems(&f->sizes, (llmc_tensor)k) * (per_layer((llmc_tensor)k) ? f->sizes.n_layer : 1);
    f->offsets[k] = offset;
    offset += (uint64_t)f->elems[k] * (uint64_t)f->elem_bytes;
  }
}

static uint64_t file_bytes(const llmc_file *f) {
  return f->offsets[LLMC_N_TENSORS - 1] + (uint64_t)f->elems[LLMC_N_TENSORS - 1] * (uint64_t)f->elem_bytes;
}

/* The header's sizes: 0, or -1 with err. */
static int check_header(llmc_file *f, const int32_t *h, char *err, size_t err_bytes) {
  if (h[0] != LLMC_MAGIC) {
    snprintf(err, err_bytes, "'%s' is not an llm.c model file (magic %d, expected %d)", f->path, h[0], LLMC_MAGIC);
    return -1;
  }
  if (h[1] != 3 && h[1] != 5) {
    snprintf(err, err_bytes, "llm.c model file '%s' has version %d; tessera reads 3 (fp32) and 5 (bf16)", f->path, h[1]);
    return -1;
  }
  f->version = h[1];
  f->elem_bytes = h[1] == 3 ? 4 : 2;
  f->sizes = (llmc_sizes){h[2], h[3], h[4], h[5], h[6], h[7]};
  const llmc_sizes *s = &f->sizes;
  if (s->max_seq_len < 1 || s->vocab_size < 1 || s->n_layer < 1 || s->n_head < 1 || s->channels < 1 ||
      s->max_seq_len > (1 << 24) || s->vocab_size > (1 << 24) || s->n_layer > 4096 || s->channels > (1 << 20) ||
      s->channels % s->n_head != 0 || s->padded_vocab_size < s->vocab_size || s->padded_vocab_size > (1 << 25)) {
    snprintf(err, err_bytes,
             "llm.c model file '%s' has impossible sizes (T %d, V %d, L %d, NH %d, C %d, Vp %d)", f->path,
             s->max_seq_len, s->vocab_size, s->n_layer, s->n_head, s->channels, s->padded_vocab_size);
    return -1;
  }
  return 0;
}

int llmc_open(llmc_file *f, const char *path, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", path);
  f->fd = open(path, O_RDONLY | O_CLOEXEC);
  if (f->fd < 0) {
    snprintf(err, err_bytes, "cannot open llm.c model file '%s': %s", path, strerror(errno));
    return EXIT_USER_ERROR;
  }
  int32_t header[LLMC_HEADER_INTS];
  struct stat st;
  if (fstat(f->fd, &st) != 0 || file_read_exact(f->fd, header, sizeof header, 0) != 0) {
    snprintf(err, err_bytes, "llm.c model file '%s' is shorter than its %zu-byte header", path, sizeof header);
    llmc_close(f);
    return EXIT_IO_ERROR;
  }
  if (check_header(f, header, err, err_bytes) != 0) {
    llmc_close(f);
    return EXIT_IO_ERROR;
  }
  lay_out(f);
  if ((uint64_t)st.st_size != file_bytes(f)) {
    snprintf(err, err_bytes, "llm.c model file '%s' has %lld bytes; its header calls for %llu (%s)", path,
             (long long)st.st_size, (unsigned long long)file_bytes(f),
             (uint64_t)st.st_size < file_bytes(f) ? "truncated" : "trailing bytes");
    llmc_close(f);
    return EXIT_IO_ERROR;
  }
  return 0;
}

int llmc_read(llmc_file *f, llmc_tensor k, int layer, int64_t n, float *out, char *err, size_t err_bytes) {
  const int64_t slice = llmc_slice_elems(&f->sizes, k);
  ENSURE(n >= 0 && n <= slice, "llm.c read past tensor %d", (int)k);
  const uint64_t at = f->offsets[k] + (uint64_t)(per_layer(k) ? layer : 0) * (uint64_t)slice * (uint64_t)f->elem_bytes;
  /* version 5 stores bf16 */
  const int failed = file_read_floats(f->fd, f->elem_bytes == 4 ? STORED_F32 : STORED_BF16, n, at, out);
  if (!failed) return 0;
  snprintf(err, err_bytes, "cannot read tensor %d of llm.c model file '%s'", (int)k, f->path);
  return EXIT_IO_ERROR;
}

void llmc_close(llmc_file *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
}

int llmc_create(llmc_file *f, const char *path, const llmc_sizes *sizes, char *err, size_t err_bytes) {
  memset(f, 0, sizeof *f);
  snprintf(f->path, sizeof f->path, "%s", path);
  f->version = 3, f->elem_bytes = 4, f->sizes = *sizes;
  lay_out(f);
  int32_t header[LLMC_HEADER_INTS] = {LLMC_MAGIC, 3, sizes->max_seq_len, sizes->vocab_size, sizes->n_layer,
                                      sizes->n_head, sizes->channels, sizes->padded_vocab_size};
  f->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (f->fd >= 0 && file_write_exact(f->fd, header, sizeof header, 0) == 0 && ftruncate(f->fd, (off_t)file_bytes(f)) == 0)
    return 0;
  snprintf(err, err_bytes, "cannot create llm.c model file '%s': %s", path, strerror(errno));
  llmc_close(f);
  return EXIT_IO_ERROR;
}

int llmc_write(llmc_file *f, llmc_tensor k, int layer, int64_t first, const float *data, int64_t n, char *err,
               size_t err_bytes) {
  const int64_t slice = llmc_slice_elems(&f->sizes, k);
  ENSURE(first >= 0 && first + n <= slice, "llm.c write past tensor %d", (int)k);
  const uint64_t at = f->offsets[k] + ((uint64_t)(per_layer(k) ? layer : 0) * (uint64_t)slice + (uint64_t)first) * 4;
  if (file_write_exact(f->fd, data, (size_t)n * 4, at) == 0) return 0;
  snprintf(err, err_bytes, "cannot write llm.c model file '%s': %s", f->path, strerror(errno));
  return EXIT_IO_ERROR;
}

int llmc_finish(llmc_file *f, char *err, size_t err_bytes) {
  const int failed = fsync(f->fd) != 0;
  const int close_failed = close(f->fd) != 0;
  f->fd = -1;
  if (!failed && !close_failed) return 0;
  snprintf(err, err_bytes, "cannot finish llm.c model file '%s': %s", f->path, strerror(errno));
  return EXIT_IO_ERROR;
}

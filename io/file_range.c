/* file_range — see file_range.h. */
#include "file_range.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"

/* Elements converted per pread when widening F16/BF16. */
#define WIDEN_BLOCK_ELEMS ((size_t)1 << 18)

int file_read_exact(int fd, void *buf, size_t n, uint64_t offset) {
  char *p = buf;
  while (n > 0) {
    const ssize_t got = pread(fd, p, n, (off_t)offset);
    if (got < 0 && errno == EINTR) continue;
    if (got == 0) errno = ENODATA; /* the file ended before the range did */
    if (got <= 0) return -1;
    p += got, n -= (size_t)got, offset += (uint64_t)got;
  }
  return 0;
}

int file_write_exact(int fd, const void *buf, size_t n, uint64_t offset) {
  const char *p = buf;
  while (n > 0) {
    const ssize_t put = pwrite(fd, p, n, (off_t)offset);
    if (put < 0 && errno == EINTR) continue;
    if (put == 0) errno = EIO;
    if (put <= 0) return -1;
    p += put, n -= (size_t)put, offset += (uint64_t)put;
  }
  return 0;
}

static float half_to_float(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0x1f) bits = sign | 0x7f800000 | mantissa << 13; /* inf, NaN */
  else if (exponent != 0) bits = sign | (exponent + 112) << 23 | mantissa << 13;
  else if (mantissa == 0) bits = sign;
  else { /* subnormal: normalise */
    int shift = 0;
    uint32_t m = mantissa;
    while (!(m & 0x400)) m <<= 1, shift++;
    bits = sign | (uint32_t)(113 - shift) << 23 | (m & 0x3ff) << 13;
  }
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

/* bf16 is the upper half of an fp32 */
static float bf16_to_float(uint16_t b) {
  const uint32_t bits = (uint32_t)b << 16;
  float out;
  memcpy(&out, &bits, sizeof out);
  return out;
}

int file_read_floats(int fd, stored_float kind, int64_t n, uint64_t offset, float *out) {
  if (kind == STORED_F32) return file_read_exact(fd, out, (size_t)n * sizeof *out, offset);
  uint16_t *block = xmalloc(WIDEN_BLOCK_ELEMS * sizeof *block, "16-bit float block");
  int64_t done = 0;
  while (done < n) {
    const size_t m = n - done < (int64_t)WIDEN_BLOCK_ELEMS ? (size_t)(n - done) : WIDEN_BLOCK_ELEMS;
    if (file_read_exact(fd, block, m * 2, offset + (uint64_t)done * 2)) break;
    for (size_t i = 0; i < m; i++)
      out[done + (int64_t)i] = kind == STORED_F16 ? half_to_float(block[i]) : bf16_to_float(block[i]);
    done += (int64_t)m;
  }
  free(block);
  return done == n ? 0 : -1;
}

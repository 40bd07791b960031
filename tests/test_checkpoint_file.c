/* test_checkpoint_file — the HDF5 tensor store under the checkpoints:
 *  - CRC-32C against its published check value and the extend property;
 *  - a tensor written shard by shard (split along dimension 1, a short last
 *    shard, as a padded split leaves it) reads back exactly through
 *    hyperslabs that cut across tiles and shards (bit-exact: no arithmetic);
 *  - one flipped byte in the file makes every read touching its tile fail,
 *    while reads of other tiles still succeed;
 *  - a dataset without its checksums is reported as damaged;
 *  - tensors of 1 MiB and more whose shards are contiguous runs of the file
 *    (split along dimension 0, or one shard) go by the O_DIRECT path, with
 *    unaligned starts and ends: they read back exactly too;
 *  - the CRC-32C's three-chain path (long buffers) against a bit-by-bit
 *    reference and against the same bytes fed in short pieces;
 *  - reads of part of a hyperslab (ckpt_tensor_read_part: a ZeRO range,
 *    starting and ending inside rows and tiles) return exactly that part;
 *  - every read works both ways a file is read: by O_DIRECT when the file is
 *    not in the page cache (as a save leaves it) and through the page cache
 *    when it is, and a flipped byte fails its tile either way;
 *  - the O_DIRECT reader itself: pieces at odd offsets that cross its blocks,
 *    forwards and back, the file's last byte, and a read past the end.
 * Runs in one process, no MPI job: serial file access in either HDF5 build. */
#include <fcntl.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint_file.h"
#include "crc32c.h"
#include "direct_reader.h"
#include "fail.h"
#include "testing.h"

enum { ROWS = 37, COLS = 2600, SHARD = 1000 }; /* shards of 1000, 1000 and 600 columns */

static float value_at(int64_t r, int64_t c) { return (float)(r * 10000 + c) * 0.25f; }

/* the CRC-32C one bit at a time: the definition, nothing shared with crc32c.c */
static uint32_t crc_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  while (n--) {
    c ^= *p++;
    for (int i = 0; i < 8; i++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

/* Puts the file in the page cache (read it all) or out of it (flush, then
 * drop its pages), so a reader takes the path it would take then. */
static void set_cached(const char *path, bool cached) {
  int fd = open(path, O_RDONLY);
  if (fd < 0) return;
  if (cached) {
    char buffer[1 << 16];
    while (read(fd, buffer, sizeof buffer) > 0) {
    }
  } else {
    fsync(fd);
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  }
  close(fd);
}

/* reads elements [first, first + n) of rows [r0, r1) x columns [c0, c1)
 * (row-major) and compares with value_at; -1 when the read fails */
static int read_part_and_compare(ckpt_file *f, const char *path, int64_t r0, int64_t r1, int64_t c0,
                                 int64_t c1, int64_t first, int64_t n, char *err, size_t err_bytes) {
  const int64_t start[2] = {r0, c0}, count[2] = {r1 - r0, c1 - c0};
  float *got = malloc((size_t)n * sizeof *got);
  int status = ckpt_tensor_read_part(f, path, 2, start, count, first, n, got, err, err_bytes);
  int wrong = 0;
  for (int64_t i = 0; status == 0 && i < n; i++)
    wrong += got[i] != value_at(r0 + (first + i) / count[1], c0 + (first + i) % count[1]);
  free(got);
  return status ? -1 : wrong;
}

/* reads rows [r0, r1) x columns [c0, c1) and compares with value_at */
static int read_and_compare(ckpt_file *f, const char *path, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                            char *err, size_t err_bytes) {
  const int64_t start[2] = {r0, c0}, count[2] = {r1 - r0, c1 - c0};
  float *got = malloc((size_t)(count[0] * count[1]) * sizeof *got);
  int status = ckpt_tensor_read(f, path, 2, start, count, got, err, err_bytes);
  int wrong = 0;
  for (int64_t r = 0; status == 0 && r < count[0]; r++)
    for (int64_t c = 0; c < count[1]; c++) wrong += got[r * count[1] + c] != value_at(r0 + r, c0 + c);
  free(got);
  return status ? -1 : wrong;
}

/* Flips bits `mask` of byte `byte_in_element` of element `element` of a
 * contiguous dataset, in the file itself. */
static void flip_byte(const char *path, const char *dataset, int64_t element, int byte_in_element, unsigned char mask) {
  char err[MESSAGE_BYTES];
  ckpt_file f;
  CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "open: %s", err);
  hid_t dset = H5Dopen2(f.file, dataset, H5P_DEFAULT);
  const haddr_t offset = H5Dget_offset(dset);
  H5Dclose(dset);
  ckpt_file_close(&f);
  CHECK(offset != HADDR_UNDEF, "contiguous dataset has a file offset");
  const int fd = open(path, O_RDWR);
  const off_t at = (off_t)offset + (off_t)(element * (int64_t)sizeof(float)) + byte_in_element;
  unsigned char byte;
  CHECK(pread(fd, &byte, 1, at) == 1, "read the byte");
  byte ^= mask;
  CHECK(pwrite(fd, &byte, 1, at) == 1, "flip the byte");
  close(fd);
}

/* CRC-32C: the standard check value, continuation, odd lengths, and the
 * three-chain path of long buffers against a bit-by-bit CRC. */
static void test_crc32c(void) {
  CHECK(crc32c("123456789", 9) == 0xE3069283u, "crc32c check value: %08x", crc32c("123456789", 9));
  const char text[] = "tessera writes universal checkpoints";
  CHECK(crc32c_extend(crc32c(text, 10), text + 10, sizeof text - 10) == crc32c(text, sizeof text),
        "crc32c_extend continues a CRC");
  unsigned char odd[1003];
  for (size_t i = 0; i < sizeof odd; i++) odd[i] = (unsigned char)(i * 7 + 3);
  uint32_t whole_crc = crc32c(odd, sizeof odd), split = crc32c_extend(crc32c(odd, 5), odd + 5, sizeof odd - 5);
  CHECK(whole_crc == split, "crc32c over a length not a multiple of 8: %08x vs %08x", whole_crc, split);
  /* long buffers take the three-chain path (blocks of 3 x 8 KiB, then 3 x
   * 256 bytes): lengths around those sizes, at odd addresses */
  enum { LONG_TEST = 3 * 8192 * 3 + 3 * 256 * 2 + 77 };
  unsigned char *noise = malloc(LONG_TEST + 8);
  uint32_t state = 12345;
  for (size_t i = 0; i < LONG_TEST + 8; i++) state = state * 1103515245u + 12345u, noise[i] = (unsigned char)(state >> 16);
  const size_t lengths[] = {767, 768, 769, 24575, 24576, 24577, 3 * 24576 + 768, LONG_TEST};
  for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
    const size_t n = lengths[i];
    const unsigned char *at = noise + 1 + i % 7;
    uint32_t pieces = 0; /* fed in pieces shorter than any three-chain block */
    for (size_t done = 0; done < n; done += 700) pieces = crc32c_extend(pieces, at + done, n - done < 700 ? n - done : 700);
    CHECK(crc32c(at, n) == crc_bitwise(at, n) && pieces == crc_bitwise(at, n),
          "crc32c of %zu bytes: %08x, in pieces %08x, bit by bit %08x", n, crc32c(at, n), pieces, crc_bitwise(at, n));
  }
  free(noise);
}

/* A [ROWS, COLS] tensor written in column shards with small tiles: boxes
 * and parts of hyperslabs read back exactly, a dataset without checksums
 * and a flipped byte are refused, undamaged tiles still read. */
static void test_sharded_tensor(const char *path) {
  char err[MESSAGE_BYTES];
  const int64_t shape[2] = {ROWS, COLS};
  const ckpt_tiling tiling = ckpt_tiling_for(2, shape, 1, SHARD);
  CHECK(tiling.rows == (1 << 20) / SHARD || tiling.rows >= ROWS, "tile rows %lld", (long long)tiling.rows);
  const int64_t n_slots = ckpt_tiling_slots(&tiling, 2, shape);
  CHECK(n_slots == 3 * ((ROWS + tiling.rows - 1) / tiling.rows), "%lld checksum slots", (long long)n_slots);

  /* small tiles (3 rows) so reads cross tile boundaries within a shard */
  const ckpt_tiling small = {1, SHARD, 3};
  const int64_t n_small = ckpt_tiling_slots(&small, 2, shape);
  ckpt_file f;
  CHECK(ckpt_file_create(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "create: %s", err);
  const int64_t at_weight = ckpt_tensor_create(&f, "params/t/weight", 2, shape);
  const int64_t at_bare = ckpt_tensor_create(&f, "params/t/bare", 2, shape);
  uint32_t *crcs = calloc((size_t)n_small, sizeof *crcs);
  for (int64_t s = 0; s * SHARD < COLS; s++) {
    const int64_t c0 = s * SHARD, width = c0 + SHARD <= COLS ? SHARD : COLS - c0;
    float *shard = malloc((size_t)(ROWS * width) * sizeof *shard);
    for (int64_t r = 0; r < ROWS; r++)
      for (int64_t c = 0; c < width; c++) shard[r * width + c] = value_at(r, c0 + c);
    const int64_t start[2] = {0, c0}, count[2] = {ROWS, width};
    ckpt_tensor_write(&f, "params/t/weight", at_weight, 2, shape, &small, start, count, shard, true, crcs);
    ckpt_tensor_write(&f, "params/t/bare", at_bare, 2, shape, &small, start, count, shard, true, crcs);
    free(shard);
  }
  int filled = 0;
  for (int64_t i = 0; i < n_small; i++) filled += crcs[i] != 0;
  CHECK(filled == n_small, "every tile got a CRC (%d of %lld)", filled, (long long)n_small);
  ckpt_tensor_write_checksums(&f, "params/t/weight", &small, crcs, n_small);
  ckpt_file_close(&f);

  CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "open: %s", err);
  const int64_t boxes[][4] = {{0, ROWS, 0, COLS}, {0, ROWS, 1000, 2000}, {2, 9, 950, 1050},
                              {36, 37, 2599, 2600}, {4, 5, 0, 2600}, {0, 3, 0, 1000}};
  for (size_t i = 0; i < sizeof boxes / sizeof boxes[0]; i++) {
    const int64_t *b = boxes[i];
    int wrong = read_and_compare(&f, "params/t/weight", b[0], b[1], b[2], b[3], err, sizeof err);
    CHECK(wrong == 0, "rows %lld-%lld, columns %lld-%lld: %d wrong values (%s)", (long long)b[0],
          (long long)b[1], (long long)b[2], (long long)b[3], wrong, wrong < 0 ? err : "");
  }
  CHECK(read_and_compare(&f, "params/t/bare", 0, 3, 0, 10, err, sizeof err) < 0 && strstr(err, "lacks its checksums"),
        "a dataset without checksums is damaged: '%s'", err);
  /* parts of hyperslabs: the whole tensor from inside row 4 to inside row
   * 30; one row of a box that crosses shards; the last element */
  const int64_t parts[][6] = {{0, ROWS, 0, COLS, 4 * COLS + 1234, 26 * COLS + 17},
                              {2, 9, 950, 1050, 100, 100}, {0, ROWS, 0, COLS, ROWS * COLS - 1, 1}};
  for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
    const int64_t *b = parts[i];
    int wrong = read_part_and_compare(&f, "params/t/weight", b[0], b[1], b[2], b[3], b[4], b[5], err, sizeof err);
    CHECK(wrong == 0, "part %lld+%lld of rows %lld-%lld, columns %lld-%lld: %d wrong values (%s)", (long long)b[4],
          (long long)b[5], (long long)b[0], (long long)b[1], (long long)b[2], (long long)b[3], wrong, wrong < 0 ? err : "");
  }

  ckpt_file_close(&f);
  /* flip a byte of element (10, 1500): shard 1, tile rows 9-11 */
  flip_byte(path, "params/t/weight", 10 * COLS + 1500, 1, 0x40);
  CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "reopen: %s", err);
  CHECK(read_and_compare(&f, "params/t/weight", 10, 11, 1400, 1600, err, sizeof err) < 0 &&
            strstr(err, "fails its checksum"),
        "a read covering the flipped byte fails: '%s'", err);
  CHECK(read_and_compare(&f, "params/t/weight", 9, 10, 1000, 1001, err, sizeof err) < 0,
        "any read touching the damaged tile fails");
  CHECK(read_and_compare(&f, "params/t/weight", 0, 9, 0, COLS, err, sizeof err) == 0,
        "rows of undamaged tiles still read: %s", err);
  CHECK(read_and_compare(&f, "params/t/weight", 9, 12, 0, 1000, err, sizeof err) == 0,
        "the same rows of another shard still read: %s", err);
  ckpt_file_close(&f);
  free(crcs);
}

/* The direct path's tensor: [600, 1001] in shards of 250 rows. */
enum { R2 = 600, C2 = 1001, SHARD2 = 250 };

/* The direct path (pwrite/O_DIRECT): row shards and a tensor held whole
 * read back exactly, cached or not; a flipped byte fails its tile only.
 * has_direct: the file system gives O_DIRECT. */
static void test_direct_path(const char *path, bool *has_direct_out) {
  char err[MESSAGE_BYTES];
  ckpt_file f;
  /* the direct path: [600, 1001] in shards of 250 rows (runs starting at
   * unaligned byte offsets), and [3, 1000, 200] held whole */
  const int64_t shape2[2] = {R2, C2}, shape3[3] = {3, 1000, 200};
  const ckpt_tiling rows_split = ckpt_tiling_for(2, shape2, 0, SHARD2);
  const ckpt_tiling one_shard = ckpt_tiling_for(3, shape3, 1, 1000);
  const int64_t n_rows = ckpt_tiling_slots(&rows_split, 2, shape2), n_whole = ckpt_tiling_slots(&one_shard, 3, shape3);
  uint32_t *crc2 = calloc((size_t)n_rows, sizeof *crc2), *crc3 = calloc((size_t)n_whole, sizeof *crc3);
  CHECK(ckpt_file_create(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "create: %s", err);
  const int64_t at_r = ckpt_tensor_create(&f, "params/r/weight", 2, shape2);
  const int64_t at_w = ckpt_tensor_create(&f, "params/w/weight", 3, shape3);
  for (int64_t r0 = 0; r0 < R2; r0 += SHARD2) {
    const int64_t rows = r0 + SHARD2 <= R2 ? SHARD2 : R2 - r0;
    float *shard = malloc((size_t)(rows * C2) * sizeof *shard);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < C2; c++) shard[r * C2 + c] = value_at(r0 + r, c);
    const int64_t start[2] = {r0, 0}, count[2] = {rows, C2};
    ckpt_tensor_write(&f, "params/r/weight", at_r, 2, shape2, &rows_split, start, count, shard, true, crc2);
    free(shard);
  }
  const size_t n3 = 3 * 1000 * 200;
  float *all3 = malloc(n3 * sizeof *all3);
  for (size_t i = 0; i < n3; i++) all3[i] = (float)i * 0.5f;
  const int64_t zero3[3] = {0, 0, 0};
  ckpt_tensor_write(&f, "params/w/weight", at_w, 3, shape3, &one_shard, zero3, shape3, all3, true, crc3);
  ckpt_tensor_write_checksums(&f, "params/r/weight", &rows_split, crc2, n_rows);
  ckpt_tensor_write_checksums(&f, "params/w/weight", &one_shard, crc3, n_whole);
  ckpt_file_close(&f);
  /* where the file system gives O_DIRECT, a file out of the page cache is
   * read by it and a cached one through the cache */
  int probe = open(path, O_RDONLY | O_DIRECT);
  const bool has_direct = probe >= 0;
  if (probe >= 0) close(probe);
  float *back3 = malloc(n3 * sizeof *back3);
  for (int cached = 0; cached < 2; cached++) {
    set_cached(path, cached);
    CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "open: %s", err);
    int64_t cuts[][2] = {{0, R2}, {249, 251}, {499, 600}, {123, 124}};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
      int wrong = read_and_compare(&f, "params/r/weight", cuts[i][0], cuts[i][1], 0, C2, err, sizeof err);
      CHECK(wrong == 0, "direct path (%s), rows %lld-%lld: %d wrong values (%s)", cached ? "cached" : "uncached",
            (long long)cuts[i][0], (long long)cuts[i][1], wrong, wrong < 0 ? err : "");
    }
    CHECK((f.reader != NULL) == (has_direct && !cached), "%s file read %s O_DIRECT", cached ? "a cached" : "an uncached",
          f.reader ? "with" : "without");
    /* a range from inside shard 0 to inside shard 2 */
    int wrong = read_part_and_compare(&f, "params/r/weight", 0, R2, 0, C2, 200 * C2 + 3, 320 * C2 + 5, err, sizeof err);
    CHECK(wrong == 0, "direct path (%s), a part across shards: %d wrong values (%s)", cached ? "cached" : "uncached",
          wrong, wrong < 0 ? err : "");
    memset(back3, 0, n3 * sizeof *back3);
    CHECK(ckpt_tensor_read(&f, "params/w/weight", 3, zero3, shape3, back3, err, sizeof err) == 0, "read: %s", err);
    CHECK(memcmp(back3, all3, n3 * sizeof *all3) == 0, "direct path (%s): a tensor held whole reads back exactly",
          cached ? "cached" : "uncached");
    ckpt_file_close(&f);
  }

  free(crc2), free(crc3), free(all3), free(back3);
  *has_direct_out = has_direct;
}

/* A flipped byte in element (300, 10) of the row-sharded tensor
 * test_direct_path wrote: shard 1 (rows 250-499) fails every read that
 * touches it, by either path; the other tiles still read. */
static void test_direct_path_damage(const char *path) {
  char err[MESSAGE_BYTES];
  ckpt_file f;
  flip_byte(path, "params/r/weight", 300 * C2 + 10, 2, 0x08);
  for (int cached = 0; cached < 2; cached++) {
    set_cached(path, cached);
    CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "reopen: %s", err);
    const char *how = cached ? "cached" : "uncached";
    CHECK(read_and_compare(&f, "params/r/weight", 0, R2, 0, C2, err, sizeof err) < 0 && strstr(err, "fails its checksum") &&
              strstr(err, "tile 1"),
          "direct path (%s): a read over the flipped byte fails in tile 1: '%s'", how, err);
    CHECK(read_part_and_compare(&f, "params/r/weight", 0, R2, 0, C2, 499 * C2 + 1000, 1, err, sizeof err) < 0,
          "direct path (%s): one element of the damaged tile fails", how);
    CHECK(read_part_and_compare(&f, "params/r/weight", 0, R2, 0, C2, 0, 250 * C2, err, sizeof err) == 0 &&
              read_and_compare(&f, "params/r/weight", 500, 600, 0, C2, err, sizeof err) == 0,
          "direct path (%s): the other tiles still read: %s", how, err);
    ckpt_file_close(&f);
  }
}

/* The O_DIRECT reader alone, forwards, backwards and past the end. */
static void test_direct_reader(const char *path, bool has_direct) {
  int fd;
  /* the reader alone: a file of 9 MiB + 123 bytes, byte i = (i * 7) mod 251 */
  const size_t file_bytes = ((size_t)9 << 20) + 123;
  unsigned char *pattern = malloc(file_bytes), *got = malloc(file_bytes);
  for (size_t i = 0; i < file_bytes; i++) pattern[i] = (unsigned char)(i * 7 % 251);
  fd = open(path, O_WRONLY | O_TRUNC);
  CHECK(fd >= 0 && write(fd, pattern, file_bytes) == (ssize_t)file_bytes, "write the reader's file");
  close(fd);
  set_cached(path, false);
  direct_reader *reader = direct_reader_open(path);
  CHECK((reader != NULL) == has_direct, "direct_reader_open %s", reader ? "worked" : "was refused");
  if (reader) {
    const size_t pieces[][2] = {{0, 1}, {1, 1000003}, {1000004, 4194304}, {5194308, 3000000}, /* forwards */
                                {17, 4194310},                                                /* back */
                                {file_bytes - 5000, 5000}, {file_bytes - 1, 1}};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++) {
      const size_t at = pieces[i][0], n = pieces[i][1];
      memset(got, 0, n);
      const int status = direct_reader_read(reader, got, n, (off_t)at);
      CHECK(status == 0 && memcmp(got, pattern + at, n) == 0, "direct_reader: %zu bytes at %zu (status %d)", n, at, status);
    }
    CHECK(direct_reader_read(reader, got, 200, (off_t)(file_bytes - 100)) == -1,
          "direct_reader: a read past the end of the file fails");
    direct_reader_close(reader);
  }
  free(pattern), free(got);
}

/* A byte string dataset (a checkpoint's tokenizer.json): read back equal,
 * absent is -1, one flipped bit is a damaged file. */
static void test_byte_string(const char *path) {
  char err[MESSAGE_BYTES];
  static const char text[] = "{\"model\": {\"type\": \"BPE\"}, \"ids\": [1, 2, 3]}";
  ckpt_file f;
  CHECK(ckpt_file_create(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "create: %s", err);
  ckpt_bytes_write(&f, "/text.json", text, strlen(text));
  ckpt_bytes_write(&f, "/empty", "", 0);
  ckpt_file_close(&f);
  CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "open: %s", err);
  char *got = NULL;
  size_t n = 0;
  CHECK(ckpt_bytes_read(&f, "/text.json", &got, &n, err, sizeof err) == 0, "read: %s", err);
  CHECK(got && n == strlen(text) && strcmp(got, text) == 0, "byte string read back equal");
  free(got);
  CHECK(ckpt_bytes_read(&f, "/empty", &got, &n, err, sizeof err) == 0 && n == 0 && got && got[0] == '\0',
        "an empty byte string reads back empty");
  free(got);
  CHECK(ckpt_bytes_read(&f, "/missing", &got, &n, err, sizeof err) == -1 && !got, "absent dataset: -1");
  ckpt_file_close(&f);
  flip_byte(path, "/text.json", 3, 1, 0x02);
  CHECK(ckpt_file_open(&f, path, MPI_COMM_NULL, err, sizeof err) == 0, "open: %s", err);
  CHECK(ckpt_bytes_read(&f, "/text.json", &got, &n, err, sizeof err) == EXIT_IO_ERROR && !got,
        "a flipped bit fails the checksum");
  CHECK(strstr(err, "checksum") != NULL, "the message names the checksum: %s", err);
  ckpt_file_close(&f);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  test_crc32c();
  char path_template[] = "/tmp/tessera-ckpt-XXXXXX";
  int fd = mkstemp(path_template);
  CHECK(fd >= 0, "temporary file");
  close(fd);
  test_sharded_tensor(path_template);
  bool has_direct = false;
  test_direct_path(path_template, &has_direct);
  test_direct_path_damage(path_template);
  test_direct_reader(path_template, has_direct);
  test_byte_string(path_template);
  unlink(path_template);
  MPI_Finalize();
  return test_summary("test_checkpoint_file");
}

/* test_model_files — io/safetensors and io/llmc_model without Python: files
 * written and read back element for element; F16 and BF16 widened exactly;
 * every damaged header refused with a message naming the file and tensor
 * (a length past the file, bytes that do not match shape × dtype, ranges
 * past the end, overlaps, unknown dtypes, duplicate names, not JSON); llm.c
 * files with another magic, version or length refused, the padded
 * vocabulary rows left zero, bf16 files (version 5) widened. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fail.h"
#include "llmc_model.h"
#include "safetensors.h"
#include "testing.h"

static char dir[] = "/tmp/tessera-model-files.XXXXXX";

static void path_of(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", dir, name); }

/* A safetensors file from a header text and `n_data` data bytes of 0x3c. */
static void write_raw(const char *path, const char *header, size_t n_data) {
  FILE *f = fopen(path, "wb");
  const uint64_t n = strlen(header);
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(n >> (8 * i));
  fwrite(len, 1, 8, f);
  fwrite(header, 1, n, f);
  for (size_t i = 0; i < n_data; i++) fputc(0x3c, f);
  fclose(f);
}

static void check_refused(const char *name, const char *header, size_t n_data, const char *needle) {
  char path[512], err[MESSAGE_BYTES] = "";
  path_of(path, sizeof path, name);
  write_raw(path, header, n_data);
  st_file f;
  const int status = st_open(&f, path, err, sizeof err);
  CHECK(status == EXIT_IO_ERROR, "%s: status %d (want 2)", name, status);
  CHECK(strstr(err, needle) && strstr(err, name), "%s: message '%s' lacks '%s' or the file", name, err, needle);
}

static void test_safetensors_round_trip(void) {
  char path[512], err[MESSAGE_BYTES];
  path_of(path, sizeof path, "round.safetensors");
  const char *names[2] = {"a.weight", "b"};
  const int n_dims[2] = {2, 1};
  const int64_t shapes[2][ST_MAX_DIMS] = {{3, 5}, {7}};
  float a[15], b[7];
  for (int i = 0; i < 15; i++) a[i] = (float)i * 0.25f - 1;
  for (int i = 0; i < 7; i++) b[i] = (float)i * 1e-3f;
  st_writer w;
  CHECK(st_writer_create(&w, path, 2, names, n_dims, shapes, err, sizeof err) == 0, "create: %s", err);
  /* b first, a in two pieces: any order */
  CHECK(st_writer_write(&w, 1, 0, b, 7, err, sizeof err) == 0, "write b");
  CHECK(st_writer_write(&w, 0, 5, a + 5, 10, err, sizeof err) == 0, "write a tail");
  CHECK(st_writer_write(&w, 0, 0, a, 5, err, sizeof err) == 0, "write a head");
  CHECK(st_writer_close(&w, err, sizeof err) == 0, "close: %s", err);
  st_file f;
  CHECK(st_open(&f, path, err, sizeof err) == 0, "open: %s", err);
  const st_tensor *ta = st_find(&f, "a.weight"), *tb = st_find(&f, "b");
  CHECK(ta && tb && ta->n_dims == 2 && ta->shape[0] == 3 && ta->shape[1] == 5 && tb->n_elems == 7, "header");
  float got[15];
  CHECK(ta && st_read_f32(&f, ta, got, err, sizeof err) == 0 && memcmp(got, a, sizeof a) == 0, "a read back");
  CHECK(tb && st_read_f32(&f, tb, got, err, sizeof err) == 0 && memcmp(got, b, sizeof b) == 0, "b read back");
  CHECK(f.tensors[0].begin % 8 == 0, "data starts 8-byte aligned");
  st_close(&f);
}

static void test_widening(void) {
  char path[512], err[MESSAGE_BYTES];
  path_of(path, sizeof path, "half.safetensors");
  /* F16: 1.0, −2.5, 2^−24 (the smallest subnormal), 65504; BF16: 1.0, −3.0 */
  const uint16_t f16[4] = {0x3c00, 0xc100, 0x0001, 0x7bff}, bf16[2] = {0x3f80, 0xc040};
  const char *header = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
                       "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[12,20]}}";
  write_raw(path, header, 0);
  FILE *file = fopen(path, "ab");
  fwrite(f16, 2, 4, file);
  fwrite(bf16, 2, 2, file);
  const int64_t i64 = 5;
  fwrite(&i64, 8, 1, file);
  fclose(file);
  st_file f;
  CHECK(st_open(&f, path, err, sizeof err) == 0, "open: %s", err);
  float got[4];
  CHECK(st_read_f32(&f, st_find(&f, "h"), got, err, sizeof err) == 0, "F16 read: %s", err);
  CHECK(got[0] == 1.0f && got[1] == -2.5f && got[2] == 0x1p-24f && got[3] == 65504.0f, "F16 values %g %g %g %g",
        got[0], got[1], got[2], got[3]);
  CHECK(st_read_f32(&f, st_find(&f, "b"), got, err, sizeof err) == 0 && got[0] == 1.0f && got[1] == -3.0f, "BF16");
  CHECK(st_read_f32(&f, st_find(&f, "i"), got, err, sizeof err) == EXIT_IO_ERROR && strstr(err, "I64"),
        "an I64 tensor is refused when read: %s", err);
  st_close(&f);
}

static void test_damaged_headers(void) {
  const char *entry = "\"t\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}";
  char header[512];
  snprintf(header, sizeof header, "{%s}", entry);
  check_refused("short_data.safetensors", header, 12, "past the end of the file");
  check_refused("lying_shape.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,16]}}", 16,
                "hold 16 bytes, but shape");
  snprintf(header, sizeof header, "{%s,\"u\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", entry);
  check_refused("overlap.safetensors", header, 16, "overlap");
  check_refused("dtype.safetensors", "{\"t\":{\"dtype\":\"F17\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
                "unknown dtype");
  snprintf(header, sizeof header, "{%s,%s}", entry, entry);
  check_refused("duplicate.safetensors", header, 16, "not a JSON object");
  check_refused("json.safetensors", "{\"t\": [1, 2", 0, "not a JSON object");
  check_refused("offsets.safetensors", "{\"t\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                "begin <= end");
  char path[512], err[MESSAGE_BYTES];
  path_of(path, sizeof path, "tiny.safetensors");
  FILE *f = fopen(path, "wb");
  fwrite("\x10\x00\x00", 1, 3, f);
  fclose(f);
  st_file sf;
  CHECK(st_open(&sf, path, err, sizeof err) == EXIT_IO_ERROR && strstr(err, "shorter"), "3-byte file: %s", err);
  path_of(path, sizeof path, "absent.safetensors");
  CHECK(st_open(&sf, path, err, sizeof err) == EXIT_USER_ERROR, "a missing file is a user error");
}

static void test_llmc(void) {
  char path[512], err[MESSAGE_BYTES];
  path_of(path, sizeof path, "model.bin");
  const llmc_sizes sizes = {8, 130, 2, 2, 4, llmc_padded_vocab(130)};
  CHECK(sizes.padded_vocab_size == 256, "padded vocab %d", sizes.padded_vocab_size);
  llmc_file f;
  CHECK(llmc_create(&f, path, &sizes, err, sizeof err) == 0, "create: %s", err);
  float wte[130 * 4], qkv[3 * 4 * 4];
  for (int i = 0; i < 130 * 4; i++) wte[i] = (float)i;
  for (int i = 0; i < 48; i++) qkv[i] = -(float)i;
  CHECK(llmc_write(&f, LLMC_WTE, 0, 0, wte, 130 * 4, err, sizeof err) == 0, "write wte");
  CHECK(llmc_write(&f, LLMC_QKVW, 1, 0, qkv, 48, err, sizeof err) == 0, "write layer 1's qkvw");
  CHECK(llmc_finish(&f, err, sizeof err) == 0, "finish");
  CHECK(llmc_open(&f, path, err, sizeof err) == 0, "open: %s", err);
  float padded[256 * 4], got[48];
  CHECK(llmc_read(&f, LLMC_WTE, 0, 256 * 4, padded, err, sizeof err) == 0, "read wte");
  CHECK(memcmp(padded, wte, sizeof wte) == 0, "wte's rows");
  bool zeros = true;
  for (int i = 130 * 4; i < 256 * 4; i++) zeros = zeros && padded[i] == 0;
  CHECK(zeros, "padding rows are zero");
  CHECK(llmc_read(&f, LLMC_QKVW, 1, 48, got, err, sizeof err) == 0 && memcmp(got, qkv, sizeof qkv) == 0, "qkvw 1");
  CHECK(llmc_read(&f, LLMC_QKVW, 0, 48, got, err, sizeof err) == 0 && got[5] == 0, "qkvw 0 untouched");
  llmc_close(&f);
  /* damage: the magic, the version, the length */
  FILE *file = fopen(path, "r+b");
  const int32_t bad_magic = 20240520, version = 4;
  fwrite(&bad_magic, 4, 1, file);
  fclose(file);
  CHECK(llmc_open(&f, path, err, sizeof err) == EXIT_IO_ERROR && strstr(err, "magic"), "magic: %s", err);
  file = fopen(path, "r+b");
  const int32_t magic = LLMC_MAGIC;
  fwrite(&magic, 4, 1, file);
  fwrite(&version, 4, 1, file);
  fclose(file);
  CHECK(llmc_open(&f, path, err, sizeof err) == EXIT_IO_ERROR && strstr(err, "version 4"), "version: %s", err);
  file = fopen(path, "r+b");
  const int32_t v3 = 3;
  fseek(file, 4, SEEK_SET);
  fwrite(&v3, 4, 1, file);
  fclose(file);
  CHECK(truncate(path, 4000) == 0, "truncate");
  CHECK(llmc_open(&f, path, err, sizeof err) == EXIT_IO_ERROR && strstr(err, "truncated"), "truncated: %s", err);
}

/* Version 5 stores bf16: read widened (1.0 and −3.0 as bf16 0x3f80, 0xc040). */
static void test_llmc_bf16(void) {
  char path[512], err[MESSAGE_BYTES];
  path_of(path, sizeof path, "bf16.bin");
  const llmc_sizes sizes = {2, 3, 1, 1, 2, 128};
  int32_t header[LLMC_HEADER_INTS] = {LLMC_MAGIC, 5, 2, 3, 1, 1, 2, 128};
  int64_t n = 0;
  for (int k = 0; k < LLMC_N_TENSORS; k++) n += llmc_slice_elems(&sizes, (llmc_tensor)k); /* one layer */
  FILE *file = fopen(path, "wb");
  fwrite(header, sizeof header, 1, file);
  for (int64_t i = 0; i < n; i++) {
    const uint16_t v = i % 2 ? 0xc040 : 0x3f80;
    fwrite(&v, 2, 1, file);
  }
  fclose(file);
  llmc_file f;
  CHECK(llmc_open(&f, path, err, sizeof err) == 0 && f.version == 5, "bf16 open: %s", err);
  float wte[6];
  CHECK(llmc_read(&f, LLMC_WTE, 0, 6, wte, err, sizeof err) == 0 && wte[0] == 1.0f && wte[1] == -3.0f &&
            wte[4] == 1.0f, "bf16 widened: %g %g", wte[0], wte[1]);
  llmc_close(&f);
}

int main(void) {
  if (!mkdtemp(dir)) return 99;
  test_safetensors_round_trip();
  test_widening();
  test_damaged_headers();
  test_llmc();
  test_llmc_bf16();
  char command[600];
  snprintf(command, sizeof command, "rm -rf '%s'", dir);
  if (system(command) != 0) fprintf(stderr, "could not remove %s\n", dir);
  return test_summary("test_model_files");
}
